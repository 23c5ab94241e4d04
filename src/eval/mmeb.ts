// MMEB evaluation (spec §4.1): each row has a query and a candidate list with the positive at index 0; every
// unique (text, image) input is embedded once (cached on disk), candidates are scored by cosine, and the
// per-dataset metric is Precision@1.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { ParquetFile } from '../data/parquet-reader.js';
import type { Embedder } from '../embed/index.js';
import { rewriteMmebPlaceholder } from '../processing/inputs.js';
import { readJsonl } from '../util/jsonl.js';
import type { EmbeddingCache } from './cache.js';
import { dot, embedCached } from './embedding.js';
import { precisionAt1 } from './metrics.js';

export interface MmebRow {
  /** Row position in the subset (0-based). */
  row: number;
  query: { text: string; image: string | null };
  candidates: { text: string; image: string | null }[];
}

export type TiesPolicy = 'wrong' | 'reference' | 'random';

const COLUMNS = ['qry_text', 'qry_img_path', 'tgt_text', 'tgt_img_path'];

/** The files of a subset: a JSONL/Parquet file, or a folder of Parquet (or JSONL) files. */
export function subsetFiles(p: string): string[] {
  if (!existsSync(p)) throw new Error(`${p}: no such file or folder`);
  if (statSync(p).isFile()) return [p];
  const files = readdirSync(p)
    .filter((f) => f.endsWith('.parquet') || f.endsWith('.jsonl'))
    .sort()
    .map((f) => path.join(p, f));
  if (files.length === 0) throw new Error(`${p}: no .parquet or .jsonl files`);
  return files;
}

function parseRow(value: unknown, row: number, imageRoot: string, where: string): MmebRow {
  if (value === null || typeof value !== 'object') throw new Error(`${where}: row ${row} is not an object`);
  const v = value as Record<string, unknown>;
  const str = (k: string): string => {
    const x = v[k];
    if (typeof x !== 'string') throw new Error(`${where}: row ${row}: ${k} must be a string`);
    return x;
  };
  const list = (k: string): string[] => {
    const x = v[k];
    if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) {
      throw new Error(`${where}: row ${row}: ${k} must be a list of strings`);
    }
    return x as string[];
  };
  const image = (p: string): string | null => (p === '' ? null : path.isAbsolute(p) ? p : path.join(imageRoot, p));
  const texts = list('tgt_text');
  const images = list('tgt_img_path');
  if (texts.length !== images.length) {
    throw new Error(`${where}: row ${row}: tgt_text has ${texts.length} entries but tgt_img_path ${images.length}`);
  }
  if (texts.length === 0) throw new Error(`${where}: row ${row}: empty candidate list`);
  const side = (text: string, img: string) => ({ text: rewriteMmebPlaceholder(text, img !== ''), image: image(img) });
  return {
    row,
    query: side(str('qry_text'), str('qry_img_path')),
    candidates: texts.map((t, i) => side(t, images[i]!)),
  };
}

/** Streams the rows of a subset; a malformed row is reported through `onError` and skipped. */
export async function* readMmebSubset(
  p: string,
  options: { imageRoot: string; onError?: (row: number, message: string) => void; limit?: number },
): AsyncGenerator<MmebRow> {
  let row = 0;
  const limit = options.limit ?? Infinity;
  for (const file of subsetFiles(p)) {
    if (file.endsWith('.jsonl')) {
      for await (const rec of readJsonl(file)) {
        if (row >= limit) return;
        const r = row++;
        if ('error' in rec) options.onError?.(r, `${file}:${rec.line}: ${rec.error}`);
        else {
          try {
            yield parseRow(rec.value, r, options.imageRoot, file);
          } catch (e) {
            options.onError?.(r, (e as Error).message);
          }
        }
      }
    } else {
      const pq = await ParquetFile.open(file, undefined, { columns: COLUMNS, required: COLUMNS });
      try {
        for await (const { value } of pq.rows()) {
          if (row >= limit) return;
          const r = row++;
          try {
            yield parseRow(value, r, options.imageRoot, file);
          } catch (e) {
            options.onError?.(r, (e as Error).message);
          }
        }
      } finally {
        await pq.close();
      }
    }
  }
}

export interface MmebDatasetResult {
  name: string;
  metrics: Record<string, number>;
  count: number;
  failedRows: number;
  error?: string;
}

/**
 * Precision@1 of one dataset. Rows whose query or a candidate cannot be embedded are failures (reported, not
 * scored). Ties follow `ties` (default: a tie with the positive counts as wrong).
 */
export async function evaluateMmebDataset(
  name: string,
  p: string,
  embedder: Embedder,
  options: {
    imageRoot: string;
    cache: EmbeddingCache | null;
    ties: TiesPolicy;
    batchSize: number;
    seed?: number;
    limit?: number;
    onError?: (row: number, message: string) => void;
    /** Inputs embedded so far (from the cache or computed) out of the dataset's unique inputs. */
    onProgress?: (done: number, total: number) => void;
  },
): Promise<MmebDatasetResult> {
  const rows: MmebRow[] = [];
  let failedRows = 0;
  const onError = (row: number, message: string) => {
    failedRows++;
    options.onError?.(row, message);
  };
  for await (const r of readMmebSubset(p, {
    imageRoot: options.imageRoot,
    onError,
    ...(options.limit ? { limit: options.limit } : {}),
  })) {
    rows.push(r);
  }
  // Unique inputs of the dataset, embedded once.
  const uniq = new Map<string, number>();
  const inputs: { text: string; image: string | null }[] = [];
  const idOf = (x: { text: string; image: string | null }) => {
    const k = `${x.image ?? ''}\0${x.text}`;
    let id = uniq.get(k);
    if (id === undefined) {
      id = inputs.length;
      uniq.set(k, id);
      inputs.push(x);
    }
    return id;
  };
  const rowIds = rows.map((r) => ({ q: idOf(r.query), c: r.candidates.map(idOf) }));
  const vectors = await embedCached(embedder, options.cache, inputs, options.batchSize, options.onProgress);
  let state = (options.seed ?? 0) >>> 0 || 1;
  const random = () => {
    // xorshift32: a seeded, reproducible draw for the 'random' tie policy.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
  const tiePolicy = options.ties === 'random' ? { random } : options.ties;
  let correct = 0;
  let scored = 0;
  rowIds.forEach((ids, k) => {
    const q = vectors[ids.q];
    const cands = ids.c.map((i) => vectors[i]);
    const bad = [q, ...cands].find((v) => typeof v === 'string');
    if (typeof bad === 'string') {
      onError(rows[k]!.row, bad);
      return;
    }
    const scores = cands.map((c) => dot(q as Float32Array, c as Float32Array));
    correct += precisionAt1(scores, 0, tiePolicy);
    scored++;
  });
  return { name, metrics: { precision_at_1: scored ? correct / scored : 0 }, count: scored, failedRows };
}
