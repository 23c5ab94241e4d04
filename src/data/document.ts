// Interleaved documents, the unit of stage-1 (continual pre-training) data (spec §2.1): a text holding one
// `<|vision_start|><|image_pad|><|vision_end|>` per image, and the images in text order as encoded bytes or
// references. This module turns a raw row (a parsed JSON Lines object, or a Parquet row in the Hugging Face
// `datasets` layout) into a checked Document, or a DataError saying what is wrong with it. Images are not decoded
// here (that is the expensive part and happens when samples are measured); only their shape is checked.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { countImagePlaceholders, QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { DataError, type RowLocation } from './errors.js';

/** An image of a document: encoded bytes, an absolute file path, or a `data:` URI. */
export type DocumentImage = Uint8Array | string;

/** Where a document is in its source, enough to read it again (see DataSource.fetch). */
export interface SourceCursor {
  /** Shard index within the source's files. */
  file: number;
  /** JSON Lines: byte offset of the line in the shard. Parquet: row index within the shard. */
  offset: number;
  /** Row index within the source (all shards; blank JSONL lines not counted). */
  row: number;
  /** JSON Lines: 1-based line number in the shard (0 for Parquet). */
  line: number;
}

export interface Document {
  /** Stable id: `<source>:<row id>` when the row has an `id`, else `<source>:<row index>`. */
  id: string;
  /** Source name. */
  source: string;
  /** Row index within the source (0-based). */
  row: number;
  /** Pass over the source this document was read in (0-based; > 0 only when sources repeat). */
  epoch: number;
  /** Position of the row in its source. */
  cursor: SourceCursor;
  /** The shard file the row is in (for messages). */
  file: string;
  /** Text with one {@link QWEN_IMAGE_PLACEHOLDER} per image. */
  text: string;
  /** Images in text order. */
  images: DocumentImage[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 30 ? v.slice(0, 30) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** The row's own id (string, or integer as decimal), if it has a usable one. */
export function rowIdOf(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const id = value.id;
  if (typeof id === 'string' && id.length > 0) return id;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id);
  if (typeof id === 'bigint') return id.toString();
  return undefined;
}

/** A string image reference → absolute path or data: URI (remote URLs are refused). */
function imageString(value: string, baseDir: string, where: string, at: RowLocation): string {
  if (value.length === 0) throw new DataError('bad_field', `${where} is an empty string`, at);
  if (/^data:/i.test(value)) {
    if (!value.includes(',')) throw new DataError('bad_field', `${where} is a malformed data: URI`, at);
    return value;
  }
  if (/^file:/i.test(value)) {
    try {
      return fileURLToPath(value);
    } catch (e) {
      throw new DataError('bad_field', `${where}: bad file: URL (${(e as Error).message})`, at);
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new DataError('bad_field', `${where}: remote image URLs are not supported (${value})`, at);
  }
  return isAbsolute(value) ? value : resolve(baseDir, value);
}

/**
 * One image entry → DocumentImage. Accepted: bytes; a path or data: URI string; the Hugging Face `Image` feature
 * struct `{bytes, path}` (bytes win; a path alone is read from disk, relative to `baseDir`).
 */
function imageEntry(value: unknown, baseDir: string, where: string, at: RowLocation): DocumentImage {
  if (value instanceof Uint8Array) {
    if (value.length === 0) throw new DataError('bad_image', `${where} has no bytes`, at);
    return value;
  }
  if (typeof value === 'string') return imageString(value, baseDir, where, at);
  if (isObject(value) && ('bytes' in value || 'path' in value)) {
    const { bytes, path } = value;
    if (bytes instanceof Uint8Array && bytes.length > 0) return bytes;
    if (bytes !== null && bytes !== undefined && !(bytes instanceof Uint8Array)) {
      throw new DataError('bad_field', `${where}.bytes must be binary, got ${describe(bytes)}`, at);
    }
    if (typeof path === 'string' && path.length > 0) return imageString(path, baseDir, `${where}.path`, at);
    throw new DataError('bad_image', `${where} has neither bytes nor a path`, at);
  }
  throw new DataError(
    'bad_field',
    `${where} must be image bytes, a path / data: URI string or {bytes, path}, got ${describe(value)}`,
    at,
  );
}

export interface RowContext {
  source: string;
  row: number;
  epoch: number;
  cursor: SourceCursor;
  /** File the row is in (for messages) and whose folder relative image paths are resolved against. */
  file: string;
  baseDir: string;
}

/** The location of a row for messages: uses the row's id when it has one. */
export function rowLocation(ctx: RowContext, value?: unknown): RowLocation {
  const rowId = rowIdOf(value);
  return {
    source: ctx.source,
    row: ctx.row,
    id: `${ctx.source}:${rowId ?? ctx.row}`,
    file: ctx.file,
    ...(ctx.cursor.line > 0 ? { line: ctx.cursor.line } : {}),
  };
}

/**
 * Checks a raw row and makes a Document of it; throws DataError (bad_field / placeholder_mismatch / bad_image)
 * naming the row. Rows: `{id?, text: string, images?: [...] | null}`; `text` may also arrive as UTF-8 bytes
 * (an unannotated Parquet binary column). Other fields are ignored.
 */
export function rowToDocument(value: unknown, ctx: RowContext): Document {
  const at = rowLocation(ctx, value);
  if (!isObject(value)) throw new DataError('bad_field', `row must be an object, got ${describe(value)}`, at);
  let text = value.text;
  if (text instanceof Uint8Array) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(text);
    } catch {
      throw new DataError('bad_field', 'text is binary that is not valid UTF-8', at);
    }
  }
  if (typeof text !== 'string') throw new DataError('bad_field', `text must be a string, got ${describe(text)}`, at);
  const list = value.images ?? [];
  if (!Array.isArray(list)) {
    throw new DataError('bad_field', `images must be a list, got ${describe(list)}`, at);
  }
  const images = list.map((img, i) => imageEntry(img, ctx.baseDir, `images[${i}]`, at));
  const placeholders = countImagePlaceholders(text);
  if (placeholders !== images.length) {
    throw new DataError(
      'placeholder_mismatch',
      `text has ${placeholders} image placeholder(s) ${QWEN_IMAGE_PLACEHOLDER} but there are ${images.length} image(s)`,
      at,
    );
  }
  return {
    id: at.id!,
    source: ctx.source,
    row: ctx.row,
    epoch: ctx.epoch,
    cursor: { ...ctx.cursor },
    file: ctx.file,
    text,
    images,
  };
}
