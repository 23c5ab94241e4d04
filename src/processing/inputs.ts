// Input rows (design §3): the MoCa raw form `{id, text, images}` and the typed form `{id, content: [...]}`, parsed
// from JSON values and normalised to one shape: the text with one Qwen image placeholder per image, and the images
// in text order. Also the MMEB/VLM2Vec `<|image_1|>` placeholder rewrite (spec §1.4).
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How an image is written in MoCa text; the processor expands the `<|image_pad|>` to one token per merged patch. */
export const QWEN_IMAGE_PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';
/** The Phi-3-V placeholder used by the MMEB / MoCa training data. */
export const MMEB_IMAGE_PLACEHOLDER = '<|image_1|>';

/** An image reference: a file (absolute path) or a `data:` URI kept as is. */
export type ImageRef = { kind: 'path'; path: string } | { kind: 'data'; uri: string };

/** A parsed input row. `text` holds exactly one {@link QWEN_IMAGE_PLACEHOLDER} per image, images in text order. */
export interface NormalisedInput {
  id: string;
  text: string;
  images: ImageRef[];
}

/** A malformed input row; the message names the row (by id, or by index when the id is unusable) and the field. */
export class InputError extends Error {
  override name = 'InputError';
}

export interface ParseInputOptions {
  /** Folder that relative image paths are resolved against (the JSONL file's folder). Default: the current one. */
  baseDir?: string;
  /** Position of the row (0-based), used in messages when the row has no usable id. */
  index?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Non-overlapping occurrences of `needle` in `text`. */
export function countOccurrences(text: string, needle: string): number {
  if (needle.length === 0) return 0;
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Number of Qwen image placeholders in `text`. */
export function countImagePlaceholders(text: string): number {
  return countOccurrences(text, QWEN_IMAGE_PLACEHOLDER);
}

/**
 * MoCa's rewrite of MMEB text (`TaskBatchDataset` / `EvalDataset.__getitem__`): every `<|image_1|>` becomes the
 * Qwen placeholder; when the row has no image, the Qwen placeholder is then deleted from the text (only the
 * placeholder: a following "\n" stays, as in MoCa).
 */
export function rewriteMmebPlaceholder(text: string, hasImage: boolean): string {
  const rewritten = text.replaceAll(MMEB_IMAGE_PLACEHOLDER, QWEN_IMAGE_PLACEHOLDER);
  return hasImage ? rewritten : rewritten.replaceAll(QWEN_IMAGE_PLACEHOLDER, '');
}

const DATA_URI = /^data:([^,]*),/i;

/** Decodes a `data:` URI (base64 or percent-encoded) into its media type and bytes. */
export function decodeDataUri(uri: string): { mediaType: string; data: Buffer } {
  const m = DATA_URI.exec(uri);
  if (!m) throw new InputError(`not a data: URI: ${uri.slice(0, 40)}${uri.length > 40 ? '…' : ''}`);
  const params = m[1]!.split(';');
  const base64 = params.length > 1 && params[params.length - 1]!.toLowerCase() === 'base64';
  const mediaType = (base64 ? params.slice(0, -1) : params).join(';') || 'text/plain;charset=US-ASCII';
  const payload = uri.slice(m[0].length);
  const data = base64 ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload), 'latin1');
  return { mediaType, data };
}

/** An image string of an input row → {@link ImageRef}; `where` is the message prefix naming row and field. */
function imageRef(value: unknown, baseDir: string, where: string): ImageRef {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InputError(`${where} must be a non-empty string (a path or a data: URI)`);
  }
  if (/^data:/i.test(value)) {
    if (!DATA_URI.test(value)) throw new InputError(`${where} is a malformed data: URI (no "," before the data)`);
    return { kind: 'data', uri: value };
  }
  if (/^file:/i.test(value)) {
    try {
      return { kind: 'path', path: fileURLToPath(value) };
    } catch (e) {
      throw new InputError(`${where}: bad file: URL: ${(e as Error).message}`);
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new InputError(`${where}: remote image URLs are not supported (${value}); give a path or a data: URI`);
  }
  return { kind: 'path', path: isAbsolute(value) ? value : resolve(baseDir, value) };
}

/**
 * Parses one input row (a parsed JSON value) in either form into a {@link NormalisedInput}.
 * - raw: `{"id", "text", "images"?: [path | data URI, …]}` — the text carries one placeholder per image.
 * - typed: `{"id", "content": [{"type": "image", "image": …} | {"type": "text", "text": …}, …]}` — items joined
 *   with nothing in between, an image item becoming the placeholder, a text item its text verbatim.
 * The id may be a string or an integer (kept as its decimal string). Other fields are ignored.
 */
export function parseInputRow(value: unknown, options: ParseInputOptions = {}): NormalisedInput {
  const baseDir = options.baseDir ?? process.cwd();
  const at = options.index === undefined ? 'row' : `row #${options.index}`;
  if (!isObject(value)) throw new InputError(`${at}: must be a JSON object, got ${describe(value)}`);
  const rawId = value.id;
  let id: string;
  if (typeof rawId === 'string' && rawId.length > 0) id = rawId;
  else if (typeof rawId === 'number' && Number.isSafeInteger(rawId)) id = String(rawId);
  else throw new InputError(`${at}: id must be a non-empty string or an integer, got ${describe(rawId)}`);
  const row = `row '${id}'`;

  const hasText = 'text' in value;
  const hasContent = 'content' in value;
  if (hasText && hasContent) throw new InputError(`${row}: has both "text" and "content"; use one form`);
  if (!hasText && !hasContent) throw new InputError(`${row}: needs "text" (raw form) or "content" (typed form)`);

  let text: string;
  const images: ImageRef[] = [];
  if (hasText) {
    if (typeof value.text !== 'string')
      throw new InputError(`${row}: text must be a string, got ${describe(value.text)}`);
    text = value.text;
    const list = value.images ?? [];
    if (!Array.isArray(list)) throw new InputError(`${row}: images must be an array, got ${describe(list)}`);
    list.forEach((img, i) => images.push(imageRef(img, baseDir, `${row}: images[${i}]`)));
    const placeholders = countImagePlaceholders(text);
    if (placeholders !== images.length) {
      throw new InputError(
        `${row}: text has ${placeholders} image placeholder(s) ${QWEN_IMAGE_PLACEHOLDER} but images has ${images.length} entr${images.length === 1 ? 'y' : 'ies'}`,
      );
    }
  } else {
    const content = value.content;
    if (!Array.isArray(content)) throw new InputError(`${row}: content must be an array, got ${describe(content)}`);
    const parts: string[] = [];
    content.forEach((item: unknown, i) => {
      const where = `${row}: content[${i}]`;
      if (!isObject(item)) throw new InputError(`${where} must be an object, got ${describe(item)}`);
      if (item.type === 'text') {
        if (typeof item.text !== 'string') {
          throw new InputError(`${where}.text must be a string, got ${describe(item.text)}`);
        }
        if (countImagePlaceholders(item.text) > 0) {
          throw new InputError(`${where}.text contains ${QWEN_IMAGE_PLACEHOLDER}; give images as image items`);
        }
        parts.push(item.text);
      } else if (item.type === 'image') {
        images.push(imageRef(item.image, baseDir, `${where}.image`));
        parts.push(QWEN_IMAGE_PLACEHOLDER);
      } else {
        throw new InputError(`${where}.type must be 'text' or 'image', got ${describe(item.type)}`);
      }
    });
    text = parts.join('');
    // Two text items can meet to spell the placeholder; the count check below still holds the invariant.
    const placeholders = countImagePlaceholders(text);
    if (placeholders !== images.length) {
      throw new InputError(
        `${row}: content spells ${placeholders} image placeholder(s) but has ${images.length} image item(s)`,
      );
    }
  }
  return { id, text, images };
}

/**
 * Parses JSON Lines text (one row per non-blank line) with {@link parseInputRow}; errors also give the line number.
 */
export function parseInputJsonl(jsonl: string, options: Omit<ParseInputOptions, 'index'> = {}): NormalisedInput[] {
  const rows: NormalisedInput[] = [];
  const lines = jsonl.split('\n');
  lines.forEach((line, i) => {
    if (line.trim().length === 0) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new InputError(`line ${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    try {
      rows.push(parseInputRow(value, { ...options, index: rows.length }));
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`line ${i + 1}: ${e.message}`);
      throw e;
    }
  });
  return rows;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 30 ? v.slice(0, 30) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
