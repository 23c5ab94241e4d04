// Tokenizer over a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), backed by `@huggingface/tokenizers`
// (the pure-JS port of HF tokenizers). MoCa feeds raw text: no BOS/EOS, no chat template, so `encode` never adds
// special tokens. Special tokens are matched whole wherever they occur in the text (also glued to other text).
//
// What the library does and what is added here (checked against its 0.2.0 source):
// - It supports everything Qwen2.5's tokenizer.json uses: `added_tokens` matched atomically (longest match, on the
//   raw text for non-normalized tokens) before normalization, NFC normalizer, Sequence[Split(regex, Isolated),
//   ByteLevel(use_regex=false)] with the Oniguruma pattern translated to a JS `u` regex (\s → \p{White_Space}, the
//   (?i:…) group, lookahead), the BPE model with the "a b" merge format, ByteLevel decoder. Its BPE merges by
//   (rank, leftmost position), as HF does. Checked against an independent Python implementation (the `regex` module
//   + GPT-2 `bpe()`) in test/fixtures/tokenizer/reference.json, and on 3000 fuzzed strings of odd whitespace
//   (U+0085, U+00A0, U+2028, U+3000, U+FEFF…), marks, digits and astral characters during development.
//   Known, harmless gaps: `(?i:…)` folds ASCII only (Oniguruma folds Unicode, e.g. "'ſ" — the next alternative yields
//   the same piece), and `\p{L}`/`\p{N}` follow Node's Unicode tables rather than Oniguruma's.
// - Its type declarations do not resolve under NodeNext (extension-less imports), so the parts used are typed by
//   the local `HfTokenizerLike` interface.
// - It has no way to add tokens or to save: `addSpecialToken` edits the tokenizer.json document and rebuilds the
//   library object; `save` writes the documents itself.
// - `decode([])` throws there, unknown ids silently decode to nothing, and `clean_up_tokenization_spaces` defaults to
//   true (transformers ≥ 4.45 defaults to false; Qwen's config sets false): handled below.
// - It exposes neither the vocabulary size with added tokens nor a special-id set: computed here from the JSON.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import type { AddedTokenJson, TokenizerJson } from './bpe-builder.js';

/** The subset of the library's `Tokenizer` used here (its shipped typings resolve to `any` under NodeNext). */
interface HfTokenizerLike {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: (number | undefined)[]; tokens: string[] };
  decode(
    ids: number[],
    options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean | null },
  ): string;
}

/** Loading or using a tokenizer failed; the message names the file where one is involved. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** Special-token attributes of `tokenizer_config.json` (transformers' `SPECIAL_TOKENS_ATTRIBUTES`). */
export type SpecialTokenRole =
  'bos_token' | 'eos_token' | 'unk_token' | 'sep_token' | 'pad_token' | 'cls_token' | 'mask_token';

const ROLES: readonly SpecialTokenRole[] = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
];

export interface DecodeOptions {
  /** Drop special tokens (added tokens marked special, and tokens named in tokenizer_config.json). Default false. */
  skipSpecialTokens?: boolean;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TokenizerError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new TokenizerError(`${path}: invalid JSON in ${what}: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A config token entry is a string or an AddedToken-like `{content: …}` object. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

function checkAddedToken(t: unknown, i: number, source: string): AddedTokenJson {
  if (!isObject(t) || typeof t.content !== 'string' || !Number.isSafeInteger(t.id) || (t.id as number) < 0) {
    throw new TokenizerError(`${source}: added_tokens[${i}] needs a string "content" and a non-negative integer "id"`);
  }
  return {
    id: t.id as number,
    content: t.content,
    single_word: t.single_word === true,
    lstrip: t.lstrip === true,
    rstrip: t.rstrip === true,
    special: t.special === true,
    normalized: typeof t.normalized === 'boolean' ? t.normalized : t.special !== true,
  };
}

export class Tokenizer {
  private json: TokenizerJson;
  private config: Record<string, unknown>;
  private readonly source: string;
  private hf!: HfTokenizerLike;
  private idToTok = new Map<number, string>();
  private tokToId = new Map<string, number>();
  private special = new Set<number>();
  /** True when no tokenizer_config.json came with the tokenizer; `save` then writes Qwen-style defaults. */
  private readonly freshConfig: boolean;

  private constructor(json: TokenizerJson, config: Record<string, unknown>, source: string) {
    this.json = json;
    this.config = config;
    this.freshConfig = Object.keys(config).length === 0;
    this.source = source;
    this.rebuild();
  }

  /** Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`. */
  static fromDir(dir: string): Tokenizer {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new TokenizerError(
        existsSync(dir) ? `no tokenizer.json in ${dir} (expected ${file})` : `tokenizer directory not found: ${dir}`,
      );
    }
    return Tokenizer.fromFile(file);
  }

  /**
   * Loads a `tokenizer.json`; reads `tokenizer_config.json` from `configPath`, or else from the same folder when
   * it exists there.
   */
  static fromFile(tokenizerJsonPath: string, configPath?: string): Tokenizer {
    if (!existsSync(tokenizerJsonPath)) throw new TokenizerError(`tokenizer file not found: ${tokenizerJsonPath}`);
    if (statSync(tokenizerJsonPath).isDirectory()) return Tokenizer.fromDir(tokenizerJsonPath);
    const json = readJson(tokenizerJsonPath, 'tokenizer.json');
    const cfgPath = configPath ?? join(dirname(tokenizerJsonPath), 'tokenizer_config.json');
    let config: unknown = {};
    if (configPath !== undefined || existsSync(cfgPath)) {
      config = readJson(cfgPath, 'tokenizer_config.json');
      if (!isObject(config)) throw new TokenizerError(`${cfgPath}: tokenizer_config.json must hold a JSON object`);
    }
    return Tokenizer.fromJson(json, config as Record<string, unknown>, tokenizerJsonPath);
  }

  /** From already-parsed documents; `source` names them in error messages. The documents are copied. */
  static fromJson(json: unknown, config: Record<string, unknown> = {}, source = '<tokenizer.json>'): Tokenizer {
    if (!isObject(json) || !isObject(json.model)) {
      throw new TokenizerError(`${source}: not a Hugging Face tokenizer.json (no "model" object)`);
    }
    const copy = structuredClone(json) as TokenizerJson;
    const added = copy.added_tokens ?? [];
    if (!Array.isArray(added)) throw new TokenizerError(`${source}: "added_tokens" must be an array`);
    copy.added_tokens = added.map((t, i) => checkAddedToken(t, i, source));
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const) copy[key] ??= null;
    return new Tokenizer(copy, structuredClone(config), source);
  }

  /** Re-creates the library tokenizer and the lookup tables from the JSON documents. */
  private rebuild(): void {
    try {
      this.hf = new HfTokenizer(this.json, this.config) as unknown as HfTokenizerLike;
    } catch (e) {
      throw new TokenizerError(`${this.source}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    const tokToId = new Map<string, number>();
    const idToTok = new Map<number, string>();
    const vocab = this.json.model.vocab;
    if (isObject(vocab)) {
      for (const [tok, id] of Object.entries(vocab)) {
        if (typeof id === 'number') {
          tokToId.set(tok, id);
          idToTok.set(id, tok);
        }
      }
    } else if (Array.isArray(vocab)) {
      // Unigram: [[piece, score], …], id = index.
      vocab.forEach((entry: unknown, id: number) => {
        const tok = Array.isArray(entry) ? entry[0] : undefined;
        if (typeof tok === 'string') {
          tokToId.set(tok, id);
          idToTok.set(id, tok);
        }
      });
    }
    const special = new Set<number>();
    for (const t of this.json.added_tokens) {
      tokToId.set(t.content, t.id);
      idToTok.set(t.id, t.content);
      if (t.special) special.add(t.id);
    }
    const named = [
      ...ROLES.map((r) => tokenContent(this.config[r])),
      ...(Array.isArray(this.config.additional_special_tokens) ? this.config.additional_special_tokens : []).map(
        tokenContent,
      ),
    ];
    for (const content of named) {
      const id = content === undefined ? undefined : tokToId.get(content);
      if (id !== undefined) special.add(id);
    }
    this.tokToId = tokToId;
    this.idToTok = idToTok;
    this.special = special;
  }

  /** Token ids of `text`, with no special tokens added (no BOS/EOS); special tokens in the text are kept whole. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.encode: expected a string, got ${typeof text}`);
    if (text.length === 0) return [];
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: false });
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === undefined) {
        throw new TokenizerError(`${this.source}: token ${JSON.stringify(tokens[i])} has no id (no unk_token)`);
      }
    }
    return ids as number[];
  }

  /** Text of `ids`; unknown ids are an error. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const kept: number[] = [];
    for (const id of ids) {
      if (!this.idToTok.has(id)) {
        throw new RangeError(`Tokenizer.decode: id ${id} is not in the vocabulary (${this.vocabSize} entries)`);
      }
      if (!(options.skipSpecialTokens && this.special.has(id))) kept.push(id);
    }
    if (kept.length === 0) return '';
    const cleanup = this.config.clean_up_tokenization_spaces;
    return this.hf.decode(kept, {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: typeof cleanup === 'boolean' ? cleanup : false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tokToId.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTok.get(id);
  }

  /** Number of distinct ids including added tokens (transformers' `len(tokenizer)`; 151665 for Qwen2.5). */
  get vocabSize(): number {
    return this.idToTok.size;
  }

  /** Largest id in use + 1 (the embedding matrix needs at least this many rows). */
  get idLimit(): number {
    let max = -1;
    for (const id of this.idToTok.keys()) if (id > max) max = id;
    return max + 1;
  }

  /** Ids of special tokens: added tokens marked special and tokens named in tokenizer_config.json. */
  get specialTokenIds(): ReadonlySet<number> {
    return this.special;
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  /** Added tokens (copies), in file order. */
  get addedTokens(): AddedTokenJson[] {
    return this.json.added_tokens.map((t) => ({ ...t }));
  }

  /** Id of the token named `role` in tokenizer_config.json, if it is set and known. */
  roleTokenId(role: SpecialTokenRole): number | undefined {
    const content = tokenContent(this.config[role]);
    return content === undefined ? undefined : this.tokToId.get(content);
  }

  /** Padding id: tokenizer_config.json's `pad_token`, else `<|endoftext|>` (Qwen's pad, 151643). */
  get padTokenId(): number {
    const id = this.roleTokenId('pad_token') ?? this.tokToId.get('<|endoftext|>');
    if (id === undefined) throw new TokenizerError(`${this.source}: no pad_token and no <|endoftext|> token`);
    return id;
  }

  /** `mask_token` of tokenizer_config.json (set by `addSpecialToken('<|mask|>', 'mask_token')`), if any. */
  get maskTokenId(): number | undefined {
    return this.roleTokenId('mask_token');
  }

  /**
   * Adds `token` as a special token and returns its id; as transformers' `add_special_tokens`. A token already in
   * the vocabulary keeps its id (and becomes special); a new one gets the next id after the largest in use — for
   * Qwen2.5 that is `len(tokenizer)` = 151665, a row that already exists in the embedding matrix. The token is then
   * matched whole like the other special tokens. With `role` (e.g. 'mask_token') tokenizer_config.json names it so;
   * otherwise it joins `additional_special_tokens`. Persisted by {@link save}.
   */
  addSpecialToken(token: string, role?: SpecialTokenRole): number {
    if (typeof token !== 'string' || token.length === 0) throw new TypeError('addSpecialToken: empty token');
    const json = structuredClone(this.json);
    const config = structuredClone(this.config);
    let entry = json.added_tokens.find((t) => t.content === token);
    if (entry) {
      entry.special = true;
      entry.normalized = false;
    } else {
      const id = this.tokToId.get(token) ?? this.idLimit;
      entry = {
        id,
        content: token,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      };
      json.added_tokens.push(entry);
    }
    if (role) config[role] = token;
    else {
      const list = Array.isArray(config.additional_special_tokens) ? [...config.additional_special_tokens] : [];
      if (!list.some((t) => tokenContent(t) === token)) list.push(token);
      config.additional_special_tokens = list;
    }
    const [oldJson, oldConfig] = [this.json, this.config];
    this.json = json;
    this.config = config;
    try {
      this.rebuild();
    } catch (e) {
      this.json = oldJson;
      this.config = oldConfig;
      this.rebuild();
      throw e;
    }
    return entry.id;
  }

  /** A copy of the tokenizer.json document. */
  toJSON(): TokenizerJson {
    return structuredClone(this.json);
  }

  /** A copy of tokenizer_config.json as {@link save} writes it. */
  configJSON(): Record<string, unknown> {
    const config: Record<string, unknown> = structuredClone(this.config);
    const decoderType = isObject(this.json.decoder) ? this.json.decoder.type : undefined;
    const qwenLike = this.json.model.type === 'BPE' && decoderType === 'ByteLevel';
    if (this.freshConfig) {
      // Created without a tokenizer_config.json (e.g. from bpe-builder): fill in the keys of Qwen2.5-VL's.
      const endoftext = this.tokToId.has('<|endoftext|>') ? '<|endoftext|>' : null;
      const defaults: Record<string, unknown> = {
        add_prefix_space: false,
        bos_token: null,
        clean_up_tokenization_spaces: false,
        eos_token: endoftext,
        errors: 'replace',
        model_max_length: 131072,
        pad_token: endoftext,
        split_special_tokens: false,
        unk_token: null,
      };
      for (const [key, value] of Object.entries(defaults)) if (!(key in config)) config[key] = value;
      const named = new Set(ROLES.map((r) => tokenContent(config[r])));
      const extra = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [];
      const list = this.json.added_tokens.filter((t) => t.special && !named.has(t.content)).map((t) => t.content);
      for (const t of extra) if (!list.includes(tokenContent(t) ?? '')) list.push(tokenContent(t) ?? '');
      config.additional_special_tokens = list;
    }
    config.tokenizer_class ??= qwenLike ? 'Qwen2Tokenizer' : 'PreTrainedTokenizerFast';
    const decoder: Record<string, unknown> = {};
    for (const t of [...this.json.added_tokens].sort((a, b) => a.id - b.id)) {
      decoder[String(t.id)] = {
        content: t.content,
        lstrip: t.lstrip,
        normalized: t.normalized,
        rstrip: t.rstrip,
        single_word: t.single_word,
        special: t.special,
      };
    }
    config.added_tokens_decoder = decoder;
    return config;
  }

  /** Writes `dir/tokenizer.json` and `dir/tokenizer_config.json` (loadable by transformers' AutoTokenizer). */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(this.json, null, 2) + '\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(this.configJSON(), null, 2) + '\n');
  }
}
