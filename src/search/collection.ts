// Collections to index: JSON Lines rows (design §3) or a folder of images (e.g. PDF pages rendered to PNG), read as
// a deterministic sequence of rows with a fingerprint, so that an interrupted build can check that it resumes over
// the same input.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import type { EmbedInput, ImageInput } from '../embed/index.js';
import { QWEN_IMAGE_PLACEHOLDER, parseInputRow } from '../processing/inputs.js';
import { readJsonl } from '../util/jsonl.js';

/** One row to index: its id, what to embed, what to keep beside the vector, and the image to thumbnail. */
export interface IndexRow {
  id: string;
  input: EmbedInput;
  metadata?: Record<string, unknown>;
  /** The image shown for this row (default: the input's first image). */
  thumbnail?: ImageInput;
}

/** A row, or why a row could not be read (recorded in the errors file; the build goes on). */
export type RowOrError = { row: IndexRow; line?: number } | { error: string; id?: string; line?: number };

export interface RowSource {
  rows: AsyncIterable<RowOrError> | Iterable<RowOrError>;
  /** Number of rows, for progress. */
  total?: number;
  /** Identifies the input; a build resumes only over the same fingerprint. */
  fingerprint: string;
  /** For messages ("rows.jsonl", "folder pages/"). */
  description: string;
}

/** The MoCa/ViDoRe document prompt: the text after an image document's placeholder. */
export const DEFAULT_IMAGE_PROMPT = '\nRepresent the given document image.';

export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
]);

const ROW_FIELDS = new Set(['id', 'text', 'images', 'content']);

/** Text for display: the row's text with image placeholders removed. */
export function displayText(text: string): string {
  return text.replaceAll(QWEN_IMAGE_PLACEHOLDER, ' ').replace(/\s+/g, ' ').trim();
}

function shortRef(ref: string): string {
  return /^data:/i.test(ref) ? `${ref.slice(0, Math.max(5, ref.indexOf(',')))},…` : ref;
}

async function hashFile(file: string): Promise<{ sha256: string; rows: number }> {
  const h = createHash('sha256');
  let rows = 0;
  let atLineStart = true;
  let lineHasText = false;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    h.update(buf);
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      if (c === 0x0a) {
        if (lineHasText) rows++;
        atLineStart = true;
        lineHasText = false;
      } else if (c !== 0x20 && c !== 0x09 && c !== 0x0d) {
        lineHasText = true;
        atLineStart = false;
      }
    }
  }
  if (lineHasText && !atLineStart) rows++;
  return { sha256: h.digest('hex'), rows };
}

/** Rows of a JSON Lines file (image paths relative to its folder); extra fields become metadata. */
export async function jsonlSource(file: string): Promise<RowSource> {
  if (!existsSync(file)) throw new Error(`input not found: ${file}`);
  const { sha256, rows: total } = await hashFile(file);
  const baseDir = path.dirname(path.resolve(file));
  async function* rows(): AsyncGenerator<RowOrError> {
    let index = 0;
    for await (const rec of readJsonl(file)) {
      if ('error' in rec) {
        index++;
        yield { error: rec.error, line: rec.line };
        continue;
      }
      try {
        const parsed = parseInputRow(rec.value, { baseDir, index: index++ });
        const value = rec.value as Record<string, unknown>;
        const extra: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) if (!ROW_FIELDS.has(k)) extra[k] = v;
        const written = writtenImageRefs(value);
        const images = parsed.images.map((r) => (r.kind === 'path' ? r.path : r.uri));
        const metadata: Record<string, unknown> = { ...extra, text: displayText(parsed.text) };
        if (written.length > 0) metadata.images = written.map(shortRef);
        yield { row: { id: parsed.id, input: { text: parsed.text, images }, metadata }, line: rec.line };
      } catch (e) {
        const v = rec.value as { id?: unknown } | null;
        const id = v !== null && typeof v === 'object' && (typeof v.id === 'string' || typeof v.id === 'number');
        yield { error: (e as Error).message, line: rec.line, ...(id ? { id: String(v.id) } : {}) };
      }
    }
  }
  return { rows: rows(), total, fingerprint: `jsonl:sha256:${sha256}`, description: file };
}

/** Image references as written in the row (for display), in text order. */
function writtenImageRefs(value: Record<string, unknown>): string[] {
  if (Array.isArray(value.images)) return value.images.filter((x): x is string => typeof x === 'string');
  if (Array.isArray(value.content)) {
    return value.content
      .filter((x): x is { type: 'image'; image: string } => {
        const o = x as { type?: unknown; image?: unknown } | null;
        return o !== null && typeof o === 'object' && o.type === 'image' && typeof o.image === 'string';
      })
      .map((x) => x.image);
  }
  return [];
}

/** Image files under `dir` (recursively), as sorted POSIX-style relative paths. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const entries = readdirSync(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(child);
    }
  };
  walk('');
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Rows of a folder of images: id = relative path, input = the image followed by `imagePrompt` (MoCa's document
 * form), metadata = { path }.
 */
export function folderSource(dir: string, options: { imagePrompt?: string } = {}): RowSource {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`input folder not found: ${dir}`);
  const prompt = options.imagePrompt ?? DEFAULT_IMAGE_PROMPT;
  const files = listImages(dir);
  const h = createHash('sha256');
  h.update(prompt);
  for (const f of files) h.update(`\0${f}\0${statSync(path.join(dir, f)).size}`);
  function* rows(): Generator<RowOrError> {
    for (const rel of files) {
      const abs = path.join(dir, rel);
      yield {
        row: {
          id: rel,
          input: {
            content: [
              { type: 'image', image: abs },
              { type: 'text', text: prompt },
            ],
          },
          metadata: { path: rel, images: [rel] },
        },
      };
    }
  }
  return { rows: rows(), total: files.length, fingerprint: `folder:sha256:${h.digest('hex')}`, description: dir };
}

/** A JSON Lines file or a folder of images. */
export async function openSource(input: string, options: { imagePrompt?: string } = {}): Promise<RowSource> {
  if (!existsSync(input)) throw new Error(`input not found: ${input}`);
  return statSync(input).isDirectory() ? folderSource(input, options) : jsonlSource(input);
}

/** An in-memory list of rows as a source (fingerprint over ids and inputs). */
export function arraySource(rows: readonly IndexRow[], description = 'rows'): RowSource {
  const h = createHash('sha256');
  for (const r of rows) {
    h.update(`\0${r.id}\0`);
    // Bytes (Buffers, decoded pixels) by their hash; `this[key]` is the value before Buffer.toJSON.
    h.update(
      JSON.stringify(r.input, function (this: Record<string, unknown>, key: string, v: unknown) {
        const original = this[key];
        return original instanceof Uint8Array ? hashBytes(original) : v;
      }),
    );
  }
  return {
    rows: rows.map((row) => ({ row })),
    total: rows.length,
    fingerprint: `rows:sha256:${h.digest('hex')}`,
    description,
  };
}

function hashBytes(b: Uint8Array): string {
  return `bytes:${createHash('sha256').update(b).digest('hex')}`;
}
