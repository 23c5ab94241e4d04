// Stage-2 (contrastive fine-tuning) training pairs (spec §3.1–§3.2): a query, its positive target and the query's
// own hard negatives, each side a text plus at most one image. This module turns one raw row — a parsed JSON Lines
// object or a Parquet row — into a checked PairSample, or a PairDataError naming the row and the field.
//
// Row formats (detected per row):
// (a) MMEB-train / MoCa-CL-Pairs / mmE5-synthetic: `qry, qry_image_path, pos_text, pos_image_path, neg_text,
//     neg_image_path` — strings; an image path "" (or null) means no image. `neg_text` / `neg_image_path` hold a
//     Python-literal list of strings (`str(list)`, what MoCa `eval()`s), a JSON array (a list<string> Parquet
//     column), or a plain string (MMEB-train classification sets store one negative label as is: "No") — see
//     {@link negativeList}. `<|image_1|>` is rewritten to the Qwen placeholder, and deleted from a text whose image
//     path is "" (spec §1.4, `TaskBatchDataset.__getitem__`). Relative image paths are resolved against `imageRoot`.
//     A row is MMEB when it has any of `pos_text`, `qry_image_path`, `pos_image_path`, `neg_text`, `neg_image_path`.
// (b) text-only pairs (the "real-world text pairs" of spec §6.4; sentence-transformers / FlagEmbedding spellings):
//     query ∈ {query, qry, anchor}, positive ∈ {positive, pos}, negatives ∈ {negatives, negative, neg}; the positive
//     may be a list (its first entry is used), the negatives a string (one negative) or a list of strings.
//
// Hard negatives (spec §3.2, `filter_hard_negtives` + `__getitem__`), with `negativeRatio` r (default 2):
// 1. if 0 < len < r, the last negative is repeated up to r; then only the first r are kept (texts and image paths
//    alike — a one-entry image list therefore applies to every negative);
// 2. an empty negative text is replaced by the positive text when all texts of the (whole, unfilled) negative list
//    are identical, else by a random non-empty text of that list (seeded: the choice depends only on `seed`, the
//    subset name and the row index, so it is the same however rows are read; MoCa re-draws it at every access);
// 3. empty image paths stay empty (= a text-only negative), as in MoCa: an image path is never invented.
// A row without negatives (empty list, "", "[]") gets `negatives: []`; the loss then uses in-batch negatives only
// for that query. With `negativeRatio` 0 the negative fields are not read at all.
//
// Checks (each failure is a PairDataError with reason `bad_field` or `placeholder_mismatch`): the fields exist (in
// format (a) all six, the negative ones only when `negativeRatio` > 0) and are strings (text fields may be UTF-8
// bytes; image fields may also be bytes or the `Image` struct `{bytes, path}`; null image = none); negative lists parse; the negative text and image lists have the
// same length (or one of them has one entry, or the image list is empty = all text-only); every side holds exactly
// one Qwen placeholder when it has an image and none otherwise (after the rewrite); no side is empty (no text and
// no image); image references are local files or data: URIs. Image files are not opened here (that happens when a
// batch is prepared).
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  countImagePlaceholders,
  QWEN_IMAGE_PLACEHOLDER,
  rewriteMmebPlaceholder,
  type ImageRef,
} from '../../processing/inputs.js';
import { rowIdOf } from '../document.js';
import { DataError, type BadRowReason, type RowLocation } from '../errors.js';
import { Rng } from '../rng.js';
import { looksLikePythonLiteral, parsePythonStringList, PythonLiteralError } from './python-literal.js';

/** An image of a pair side: a file / data: URI reference, or encoded bytes (a Parquet binary or `Image` column). */
export type PairImage = ImageRef | { kind: 'bytes'; bytes: Uint8Array };

/** One side of a pair: text (with one {@link QWEN_IMAGE_PLACEHOLDER} iff there is an image) and the image. */
export interface PairSide {
  text: string;
  image: PairImage | null;
}

export interface PairSample {
  /** `<subset>:<row id>` when the row has an `id`, else `<subset>:<row index>`. */
  id: string;
  /** Subset name. */
  subset: string;
  /** 0-based row index within the subset (all shards, blank JSON Lines lines not counted). */
  row: number;
  query: PairSide;
  positive: PairSide;
  /** `negativeRatio` hard negatives, or none (see the module comment). */
  negatives: PairSide[];
}

/** MoCa's `negative_ratio` (spec §3.2). */
export const DEFAULT_NEGATIVE_RATIO = 2;

export interface PairParseOptions {
  /** Hard negatives per sample (default 2); 0 ignores the negative fields. */
  negativeRatio?: number;
  /** Folder that relative image paths are resolved against (MoCa's `--image_dir`). Default: the data file's folder. */
  imageRoot?: string;
  /** Seed of the empty-negative replacement choice (default 0). */
  seed?: number;
}

/** Where a row is, for messages and for resolving image paths. */
export interface PairRowContext {
  subset: string;
  /** 0-based row index within the subset. */
  row: number;
  /** The data file (for messages; its folder is the default image root). */
  file?: string;
  /** 1-based line number (JSON Lines). */
  line?: number;
}

/** A bad pair row: the DataError of the stage-1 layer plus the subset and the offending field. */
export class PairDataError extends DataError {
  override name = 'PairDataError';
  constructor(
    reason: BadRowReason,
    /** The field that is wrong (`neg_text`, `neg_image_path[1]`, `row`, …). */
    readonly field: string,
    /** What is wrong with it (the message without location and field). */
    readonly problem: string,
    override readonly location: RowLocation,
    options?: { cause?: unknown },
  ) {
    super(reason, `${field}: ${problem}`, location, options);
  }

  get subset(): string {
    return this.location.source;
  }
}

const MMEB_FIELDS = ['pos_text', 'qry_image_path', 'pos_image_path', 'neg_text', 'neg_image_path'] as const;
const QUERY_KEYS = ['query', 'qry', 'anchor'] as const;
const POSITIVE_KEYS = ['positive', 'pos'] as const;
const NEGATIVE_KEYS = ['negatives', 'negative', 'neg'] as const;

/** All column names a pair row may use (the Parquet reader reads only these). */
export const PAIR_COLUMNS: readonly string[] = [
  'id',
  'qry',
  ...MMEB_FIELDS,
  ...QUERY_KEYS.filter((k) => k !== 'qry'),
  ...POSITIVE_KEYS,
  ...NEGATIVE_KEYS,
];

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 30 ? v.slice(0, 30) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * A flat copy of `s` sharing no memory with what it was cut or built from. V8 keeps slices as references into their
 * parent string and concatenations as trees of their parts; samples stay in memory for the whole run, so every
 * string they keep is copied once (measured: a resolved image path of ~75 characters takes ~430 bytes of heap as
 * returned by path.resolve, ~100 bytes as a copy). The JSON round trip keeps lone surrogates, unlike UTF-8 buffers.
 */
function ownString(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/** FNV-1a of a string (32 bit), to key the per-row random stream by subset name. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The random stream of one row: depends only on the seed, the subset and the row index. */
export function rowRng(seed: number, subset: string, row: number): Rng {
  return new Rng(seed, (fnv1a(subset) ^ Math.imul(row + 1, 0x9e3779b1)) >>> 0);
}

/** Everything a field parser needs to throw a located error. */
class RowParser {
  readonly at: RowLocation;
  readonly imageRoot: string;

  constructor(
    readonly value: Record<string, unknown>,
    readonly ctx: PairRowContext,
    options: PairParseOptions,
  ) {
    this.at = locationOf(ctx, value);
    this.at.id = ownString(this.at.id!);
    this.imageRoot = resolve(
      options.imageRoot ?? (ctx.file !== undefined ? dirname(resolve(ctx.file)) : process.cwd()),
    );
  }

  fail(reason: BadRowReason, field: string, problem: string, cause?: unknown): never {
    throw new PairDataError(reason, field, problem, this.at, cause === undefined ? undefined : { cause });
  }

  /** A text field: a string, or UTF-8 bytes. */
  text(field: string, v: unknown = this.value[field]): string {
    if (typeof v === 'string') return v;
    if (v instanceof Uint8Array) {
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(v);
      } catch {
        this.fail('bad_field', field, 'binary that is not valid UTF-8');
      }
    }
    if (v === undefined) this.fail('bad_field', field, 'missing');
    this.fail('bad_field', field, `must be a string, got ${describe(v)}`);
  }

  /** An image field value → image or null ("" / null = none). */
  image(field: string, v: unknown): PairImage | null {
    if (v === null || v === '') return null;
    if (v instanceof Uint8Array) {
      if (v.length === 0) return null;
      return { kind: 'bytes', bytes: v };
    }
    if (typeof v === 'string') return this.imagePath(field, v);
    if (isObject(v) && ('bytes' in v || 'path' in v)) {
      // The Hugging Face `Image` feature struct: bytes win; a path alone is a file.
      const { bytes, path } = v;
      if (bytes instanceof Uint8Array && bytes.length > 0) return { kind: 'bytes', bytes };
      if (bytes !== null && bytes !== undefined && !(bytes instanceof Uint8Array)) {
        this.fail('bad_field', `${field}.bytes`, `must be binary, got ${describe(bytes)}`);
      }
      if (typeof path === 'string' && path.length > 0) return this.imagePath(`${field}.path`, path);
      if (path !== null && path !== undefined && path !== '') {
        this.fail('bad_field', `${field}.path`, `must be a string, got ${describe(path)}`);
      }
      return null;
    }
    if (v === undefined) this.fail('bad_field', field, 'missing');
    this.fail('bad_field', field, `must be an image path string (or image bytes), got ${describe(v)}`);
  }

  imagePath(field: string, value: string): PairImage {
    if (/^data:/i.test(value)) {
      if (!/^data:[^,]*,/i.test(value)) this.fail('bad_field', field, 'malformed data: URI (no "," before the data)');
      return { kind: 'data', uri: value };
    }
    if (/^file:/i.test(value)) {
      try {
        return { kind: 'path', path: ownString(fileURLToPath(value)) };
      } catch (e) {
        this.fail('bad_field', field, `bad file: URL (${(e as Error).message})`);
      }
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
      this.fail('bad_field', field, `remote image URLs are not supported (${value})`);
    }
    return { kind: 'path', path: ownString(isAbsolute(value) ? value : resolve(this.imageRoot, value)) };
  }

  /** A negative-list field → its entries (see {@link negativeList}). */
  list(field: string, v: unknown): unknown[] {
    if (v === undefined) this.fail('bad_field', field, 'missing');
    if (v === null) return [];
    if (Array.isArray(v)) return v;
    if (v instanceof Uint8Array) v = this.text(field, v);
    if (typeof v !== 'string')
      this.fail('bad_field', field, `must be a list literal string or a list, got ${describe(v)}`);
    try {
      return negativeList(v);
    } catch (e) {
      if (e instanceof PythonLiteralError) this.fail('bad_field', field, `malformed list literal: ${e.message}`, e);
      throw e;
    }
  }

  /** Checks the placeholder invariant of one side; `field` names it, `note` is added to a message. */
  side(field: string, raw: string, image: PairImage | null, note = ''): PairSide {
    const text = rewriteMmebPlaceholder(raw, image !== null);
    const n = countImagePlaceholders(text);
    if (image !== null && n !== 1) {
      this.fail(
        'placeholder_mismatch',
        field,
        `the text has ${n} image placeholders (<|image_1|> or ${QWEN_IMAGE_PLACEHOLDER}) but there is 1 image${note}`,
      );
    }
    if (image === null && text.length === 0) this.fail('bad_field', field, `empty: no text and no image${note}`);
    return { text: ownString(text), image };
  }
}

function locationOf(ctx: PairRowContext, value: unknown): RowLocation {
  return {
    source: ctx.subset,
    row: ctx.row,
    id: `${ctx.subset}:${rowIdOf(value) ?? ctx.row}`,
    ...(ctx.file !== undefined ? { file: ctx.file } : {}),
    ...(ctx.line !== undefined ? { line: ctx.line } : {}),
  };
}

/**
 * A negative-list string → its entries: "" (or only whitespace) → none; a Python literal list or string literal
 * (starting with `[` or a quote) → parsed with {@link parsePythonStringList}, which throws PythonLiteralError when it
 * is malformed; anything else is one plain negative, verbatim (MMEB-train's `neg_text: "No"`).
 */
export function negativeList(value: string): string[] {
  if (value.trim() === '') return [];
  if (/^\s*\[/.test(value)) return parsePythonStringList(value);
  if (looksLikePythonLiteral(value)) {
    // A quote at the start: a string literal when it parses, else plain text that happens to start with a quote.
    try {
      return parsePythonStringList(value);
    } catch (e) {
      if (e instanceof PythonLiteralError) return [value];
      throw e;
    }
  }
  return [value];
}

/** Step 1 of the hard-negative rules: repeat the last up to `ratio`, keep the first `ratio`. */
export function fillNegatives<T>(list: readonly T[], ratio: number): T[] {
  const out = list.slice(0, ratio);
  while (out.length > 0 && out.length < ratio) out.push(out[out.length - 1]!);
  return out;
}

/**
 * Step 2: the replacement of empty negative texts in `filled`, given the whole (unfilled) list `all`: the positive
 * text when all of `all` are identical, else a random non-empty entry of `all` drawn from `rng`.
 */
export function replaceEmptyNegatives(
  filled: string[],
  all: readonly string[],
  positive: string,
  rng: () => Rng,
): string[] {
  if (!filled.includes('')) return filled;
  const identical = new Set(all).size === 1;
  const pool = all.filter((t) => t !== '');
  let r: Rng | undefined;
  return filled.map((t) => {
    if (t !== '') return t;
    if (identical) return positive;
    r ??= rng();
    return pool[r.int(pool.length)]!;
  });
}

function checkRatio(ratio: number): number {
  if (!Number.isInteger(ratio) || ratio < 0) throw new RangeError(`negativeRatio must be an integer ≥ 0, got ${ratio}`);
  return ratio;
}

function parseMmeb(p: RowParser, options: PairParseOptions): Omit<PairSample, 'id' | 'subset' | 'row'> {
  const v = p.value;
  const ratio = checkRatio(options.negativeRatio ?? DEFAULT_NEGATIVE_RATIO);
  const qryText = p.text('qry');
  const qryImage = p.image('qry_image_path', v.qry_image_path);
  const posText = p.text('pos_text');
  const posImage = p.image('pos_image_path', v.pos_image_path);
  const query = p.side('qry', qryText, qryImage);
  const positive = p.side('pos_text', posText, posImage);
  if (ratio === 0) return { query, positive, negatives: [] };

  const texts = p.list('neg_text', v.neg_text).map((t, i) => p.text(`neg_text[${i}]`, t));
  const images = p.list('neg_image_path', v.neg_image_path).map((img, i) => p.image(`neg_image_path[${i}]`, img));
  if (texts.length === 0) {
    const real = images.findIndex((img) => img !== null);
    if (real >= 0) {
      p.fail('bad_field', 'neg_image_path', `has image(s) (entry ${real}) but neg_text has no entries`);
    }
    return { query, positive, negatives: [] };
  }
  if (images.length > 1 && texts.length > 1 && images.length !== texts.length) {
    p.fail('bad_field', 'neg_image_path', `has ${images.length} entries but neg_text has ${texts.length}`);
  }
  const filledTexts = replaceEmptyNegatives(fillNegatives(texts, ratio), texts, posText, () =>
    rowRng(options.seed ?? 0, p.ctx.subset, p.ctx.row),
  );
  const filledImages = images.length === 0 ? filledTexts.map(() => null) : fillNegatives(images, ratio);
  const n = Math.min(filledTexts.length, filledImages.length);
  const negatives: PairSide[] = [];
  for (let k = 0; k < n; k++) {
    const ti = Math.min(k, texts.length - 1);
    const field =
      images.length === 0 ? `neg_text[${ti}]` : `neg_text[${ti}]/neg_image_path[${Math.min(k, images.length - 1)}]`;
    const note =
      texts[ti] === ''
        ? ` (negative ${k}: its empty text was replaced by ${JSON.stringify(filledTexts[k]!.slice(0, 40))})`
        : '';
    negatives.push(p.side(field, filledTexts[k]!, filledImages[k] ?? null, note));
  }
  return { query, positive, negatives };
}

/** The single key of `keys` present in the row (undefined when none; an error when several). */
function pick(p: RowParser, keys: readonly string[], role: string): string | undefined {
  const present = keys.filter((k) => p.value[k] !== undefined);
  if (present.length > 1) p.fail('bad_field', present.join('/'), `several spellings of the ${role} in one row`);
  return present[0];
}

function parseTextPair(p: RowParser, options: PairParseOptions): Omit<PairSample, 'id' | 'subset' | 'row'> {
  const ratio = checkRatio(options.negativeRatio ?? DEFAULT_NEGATIVE_RATIO);
  const qKey = pick(p, QUERY_KEYS, 'query');
  const posKey = pick(p, POSITIVE_KEYS, 'positive');
  if (qKey === undefined) p.fail('bad_field', QUERY_KEYS.join('/'), 'missing (no query field)');
  if (posKey === undefined) p.fail('bad_field', POSITIVE_KEYS.join('/'), 'missing (no positive field)');
  const queryText = p.text(qKey);
  let posValue = p.value[posKey];
  let posField = posKey;
  if (Array.isArray(posValue)) {
    if (posValue.length === 0) p.fail('bad_field', posKey, 'an empty list (no positive)');
    posValue = posValue[0];
    posField = `${posKey}[0]`;
  }
  const posText = p.text(posField, posValue);
  const query = p.side(qKey, queryText, null);
  const positive = p.side(posField, posText, null);
  const negKey = pick(p, NEGATIVE_KEYS, 'negatives');
  if (ratio === 0 || negKey === undefined) return { query, positive, negatives: [] };
  const raw = p.value[negKey];
  const list = raw === null ? [] : Array.isArray(raw) ? raw : [raw];
  const texts = list.map((t, i) => p.text(`${negKey}[${i}]`, t));
  if (texts.length === 0) return { query, positive, negatives: [] };
  const filled = replaceEmptyNegatives(fillNegatives(texts, ratio), texts, posText, () =>
    rowRng(options.seed ?? 0, p.ctx.subset, p.ctx.row),
  );
  return {
    query,
    positive,
    negatives: filled.map((t, k) => p.side(`${negKey}[${Math.min(k, texts.length - 1)}]`, t, null)),
  };
}

/** Whether a row uses the MMEB-train column names (format (a)); otherwise it is read as a text-only pair. */
export function isMmebRow(value: Record<string, unknown>): boolean {
  return MMEB_FIELDS.some((k) => k in value);
}

/**
 * Parses one raw row (a parsed JSON object or a Parquet row) into a PairSample; throws a {@link PairDataError}
 * naming the row and the field when it is not a valid pair.
 */
export function parsePairRow(value: unknown, ctx: PairRowContext, options: PairParseOptions = {}): PairSample {
  if (!isObject(value)) {
    throw new PairDataError('bad_field', 'row', `must be an object, got ${describe(value)}`, locationOf(ctx, value));
  }
  const p = new RowParser(value, ctx, options);
  const parts = isMmebRow(value) ? parseMmeb(p, options) : parseTextPair(p, options);
  return { id: p.at.id!, subset: ctx.subset, row: ctx.row, ...parts };
}
