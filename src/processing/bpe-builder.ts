// Builds Hugging Face `tokenizer.json` documents for a byte-level BPE with Qwen2's pre-tokenizer and the
// Qwen2.5-VL special tokens, and trains the merges of such a BPE on a corpus (used to make small tokenizers for
// generated data and tiny test models). The layout mirrors `Qwen/Qwen2.5-VL-*-Instruct/tokenizer.json`:
// NFC normalizer; pre-tokenizer Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex=false)];
// ByteLevel post-processor and decoder; BPE model without unk token over the 256 GPT-2 byte-level symbols.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** Qwen2's pre-tokenizer pattern (transformers `tokenization_qwen2.PRETOKENIZE_REGEX`, Oniguruma syntax). */
export const QWEN2_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Qwen2.5-VL's special added tokens in Qwen's order; in the released tokenizer they have ids 151643…151656
 * (`<|endoftext|>`=151643, `<|vision_start|>`=151652, `<|vision_end|>`=151653, `<|image_pad|>`=151655,
 * `<|video_pad|>`=151656).
 */
export const QWEN2_VL_SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;

/**
 * The non-special added tokens that follow the special ones in Qwen2.5's tokenizer (ids 151657…151664). With them
 * the tokenizer has 151665 entries, so a token added next (stage 1's `<|mask|>`) gets 151665 as in MoCa.
 */
export const QWEN2_5_EXTRA_ADDED_TOKENS = [
  '<tool_call>',
  '</tool_call>',
  '<|fim_prefix|>',
  '<|fim_middle|>',
  '<|fim_suffix|>',
  '<|fim_pad|>',
  '<|repo_name|>',
  '<|file_sep|>',
] as const;

/** One entry of `tokenizer.json`'s `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The parts of a Hugging Face `tokenizer.json` this project reads or writes; other keys are kept as they are. */
export interface TokenizerJson {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type?: string; vocab?: Record<string, number> | unknown; merges?: unknown[]; [key: string]: unknown };
  [key: string]: unknown;
}

/**
 * GPT-2's `bytes_to_unicode`: `table[b]` is the printable character that stands for byte `b`. Printable Latin-1
 * bytes map to themselves; the other 68 bytes map to U+0100… in byte order.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return table;
}

/**
 * The 256 byte-level base symbols in GPT-2/Qwen vocabulary order (id 0 = `!`, …): the printable bytes first, then
 * the remapped ones — i.e. ordered by the code point of the symbol.
 */
export function byteLevelAlphabet(): string[] {
  return bytesToUnicode().sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false } as const;

export interface ByteLevelBpeOptions {
  /** BPE merges in rank order (each part must already be a symbol when the merge is reached). Default none. */
  merges?: readonly (readonly [string, string])[];
  /** Id of the first special token; default the BPE vocabulary size (right after the model's tokens). */
  firstSpecialId?: number;
  /** Special tokens, in order, from `firstSpecialId`; default {@link QWEN2_VL_SPECIAL_TOKENS}. */
  specialTokens?: readonly string[];
  /**
   * Also add Qwen2.5's eight non-special added tokens (`<tool_call>` … `<|file_sep|>`) after the special ones, as the
   * released tokenizer has (then a real-shape tokenizer counts 151665 entries). Default false.
   */
  includeToolAndFimTokens?: boolean;
}

/** Vocabulary of a byte-level BPE: the 256 base symbols, then each merge's result (when new) in merge order. */
export function byteLevelBpeVocab(merges: readonly (readonly [string, string])[]): Record<string, number> {
  const vocab = new Map<string, number>();
  for (const s of byteLevelAlphabet()) vocab.set(s, vocab.size);
  merges.forEach(([a, b], i) => {
    if (!vocab.has(a) || !vocab.has(b)) {
      throw new Error(`merge #${i} (${JSON.stringify(a)} ${JSON.stringify(b)}): part is not a known symbol yet`);
    }
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
  });
  return Object.fromEntries(vocab);
}

/**
 * A Hugging Face `tokenizer.json` for a byte-level BPE with Qwen2's normalizer, pre-tokenizer and decoder plus the
 * Qwen2.5-VL special tokens at `firstSpecialId`, `firstSpecialId + 1`, …. Loads in Hugging Face `tokenizers` and in
 * {@link Tokenizer}.
 */
export function buildByteLevelBpeTokenizerJson(options: ByteLevelBpeOptions = {}): TokenizerJson {
  const merges = options.merges ?? [];
  const vocab = byteLevelBpeVocab(merges);
  const vocabSize = Object.keys(vocab).length;
  const first = options.firstSpecialId ?? vocabSize;
  if (!Number.isSafeInteger(first) || first < vocabSize) {
    throw new RangeError(`firstSpecialId ${first} collides with the BPE vocabulary (ids 0…${vocabSize - 1})`);
  }
  const special = options.specialTokens ?? QWEN2_VL_SPECIAL_TOKENS;
  const extra = options.includeToolAndFimTokens ? QWEN2_5_EXTRA_ADDED_TOKENS : [];
  const seen = new Set<string>();
  const added: AddedTokenJson[] = [];
  for (const [content, isSpecial] of [
    ...special.map((t) => [t, true] as const),
    ...extra.map((t) => [t, false] as const),
  ]) {
    if (content.length === 0 || seen.has(content) || content in vocab) {
      throw new Error(`added token ${JSON.stringify(content)} is empty, repeated or already in the vocabulary`);
    }
    seen.add(content);
    added.push({
      id: first + added.length,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: isSpecial,
    });
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_PRETOKENIZE_REGEX }, behavior: 'Isolated', invert: false },
        { ...BYTE_LEVEL },
      ],
    },
    post_processor: { ...BYTE_LEVEL },
    decoder: { ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // The "a b" string form (as in the released Qwen files); byte-level symbols never contain a space.
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// BPE training

export interface TrainByteLevelBpeOptions extends Omit<ByteLevelBpeOptions, 'merges'> {
  /** Target size of the BPE vocabulary: 256 base symbols + learned tokens (special tokens not counted). */
  vocabSize: number;
  /** A pair is merged only while it occurs at least this often (weighted by word frequency). Default 2. */
  minFrequency?: number;
}

export interface TrainedByteLevelBpe {
  /** Learned merges in rank order. */
  merges: [string, string][];
  /** token → id of the BPE model (special tokens excluded). */
  vocab: Record<string, number>;
  /** Ready-to-load tokenizer.json with the special tokens placed per the options. */
  tokenizerJson: TokenizerJson;
}

interface HeapEntry {
  count: number;
  a: number;
  b: number;
}

/** Max-heap on (count desc, a asc, b asc). */
class PairHeap {
  private readonly items: HeapEntry[] = [];
  get size(): number {
    return this.items.length;
  }
  private static above(x: HeapEntry, y: HeapEntry): boolean {
    if (x.count !== y.count) return x.count > y.count;
    return x.a !== y.a ? x.a < y.a : x.b < y.b;
  }
  push(e: HeapEntry): void {
    const h = this.items;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!PairHeap.above(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): HeapEntry | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && PairHeap.above(h[l]!, h[best]!)) best = l;
        if (r < h.length && PairHeap.above(h[r]!, h[best]!)) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best]!, h[i]!];
        i = best;
      }
    }
    return top;
  }
}

const PAIR_SHIFT = 2 ** 26;
const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;

/** Splits `text` around occurrences of `tokens` (longest match first), dropping the tokens. */
function splitAround(text: string, tokens: readonly string[]): string[] {
  if (tokens.length === 0) return [text];
  const escaped = [...tokens].sort((x, y) => y.length - x.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return text.split(new RegExp(escaped.join('|'), 'u')).filter((s) => s.length > 0);
}

/**
 * Learns byte-level BPE merges on `texts` with the same normalizer and pre-tokenizer as the resulting tokenizer
 * (NFC, Qwen2 split regex, byte-level mapping); special/added tokens appearing literally in the texts are cut out
 * first, as they never reach the BPE model at encoding time. Standard BPE as Hugging Face's `BpeTrainer`: count the
 * pre-tokenized words, then repeatedly merge the most frequent adjacent pair (occurrences weighted by word count)
 * until the vocabulary has `vocabSize` tokens or no pair occurs `minFrequency` times. Ties go to the pair whose
 * (left id, right id) is smallest, ids being vocabulary ids (base symbols in code-point order, then learned tokens in
 * creation order) — the same order `BpeTrainer` uses.
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: TrainByteLevelBpeOptions): TrainedByteLevelBpe {
  const { vocabSize, minFrequency = 2 } = options;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 256 || vocabSize >= PAIR_SHIFT) {
    throw new RangeError(`vocabSize must be an integer in [256, ${PAIR_SHIFT}), got ${vocabSize}`);
  }
  if (!Number.isFinite(minFrequency) || minFrequency < 0) {
    throw new RangeError(`minFrequency must be a non-negative number, got ${minFrequency}`);
  }
  if (options.firstSpecialId !== undefined && options.firstSpecialId < vocabSize) {
    throw new RangeError(`firstSpecialId ${options.firstSpecialId} is below vocabSize ${vocabSize}`);
  }
  // Use the tokenizer's own normalizer and pre-tokenizer so training and encoding split text identically.
  const base = buildByteLevelBpeTokenizerJson({ ...options, merges: [] });
  const hf = new HfTokenizer(base, {}) as unknown as {
    normalizer: ((s: string) => string) | null;
    pre_tokenizer: ((s: string) => string[]) | null;
  };
  const normalize = hf.normalizer ?? ((s: string) => s);
  const preTokenize = hf.pre_tokenizer ?? ((s: string) => [s]);
  const addedContents = base.added_tokens.map((t) => t.content);

  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError('trainByteLevelBpe: every text must be a string');
    for (const piece of splitAround(text, addedContents)) {
      for (const w of preTokenize(normalize(piece))) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }

  const tokens = byteLevelAlphabet();
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const words: { syms: number[]; n: number }[] = [];
  for (const [w, n] of wordCounts) {
    const syms = Array.from(w, (ch) => {
      const id = idOf.get(ch);
      if (id === undefined) throw new Error(`internal: pre-tokenized symbol ${JSON.stringify(ch)} is not byte-level`);
      return id;
    });
    words.push({ syms, n });
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const add = (a: number, b: number, delta: number, word: number): void => {
    const k = pairKey(a, b);
    pairCount.set(k, (pairCount.get(k) ?? 0) + delta);
    if (delta > 0) {
      let set = pairWords.get(k);
      if (!set) pairWords.set(k, (set = new Set()));
      set.add(word);
    }
  };
  words.forEach(({ syms, n }, wi) => {
    for (let i = 0; i + 1 < syms.length; i++) add(syms[i]!, syms[i + 1]!, n, wi);
  });
  const heap = new PairHeap();
  for (const [k, count] of pairCount) heap.push({ count, a: Math.floor(k / PAIR_SHIFT), b: k % PAIR_SHIFT });

  const merges: [string, string][] = [];
  const threshold = Math.max(minFrequency, 1);
  while (idOf.size < vocabSize) {
    const top = heap.pop();
    if (!top) break;
    const k = pairKey(top.a, top.b);
    const current = pairCount.get(k) ?? 0;
    if (current !== top.count) {
      if (current > 0) heap.push({ count: current, a: top.a, b: top.b });
      continue;
    }
    if (current < threshold) break;
    const merged = tokens[top.a]! + tokens[top.b]!;
    let newId = idOf.get(merged);
    if (newId === undefined) {
      newId = tokens.length;
      tokens.push(merged);
      idOf.set(merged, newId);
    }
    merges.push([tokens[top.a]!, tokens[top.b]!]);
    const touched = new Set<number>();
    for (const wi of pairWords.get(k) ?? []) {
      const word = words[wi]!;
      const syms = word.syms;
      for (let i = 0; i + 1 < syms.length; i++) add(syms[i]!, syms[i + 1]!, -word.n, wi);
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === top.a && syms[i + 1] === top.b) {
          out.push(newId);
          i++;
        } else out.push(syms[i]!);
      }
      word.syms = out;
      for (let i = 0; i + 1 < out.length; i++) {
        add(out[i]!, out[i + 1]!, word.n, wi);
        touched.add(pairKey(out[i]!, out[i + 1]!));
      }
    }
    pairWords.delete(k);
    pairCount.delete(k);
    for (const t of touched) {
      const count = pairCount.get(t) ?? 0;
      if (count > 0) heap.push({ count, a: Math.floor(t / PAIR_SHIFT), b: t % PAIR_SHIFT });
    }
  }

  const tokenizerJson = buildByteLevelBpeTokenizerJson({ ...options, merges });
  return { merges, vocab: tokenizerJson.model.vocab as Record<string, number>, tokenizerJson };
}
