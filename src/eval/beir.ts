// BEIR-format retrieval evaluation (ViDoRe uses it for document-page retrieval, spec §4.2): corpus, queries and
// qrels; queries and documents embedded (documents once, cached), scored by cosine, metrics as trec_eval.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { ParquetFile } from '../data/parquet-reader.js';
import type { Embedder } from '../embed/index.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { readJsonl } from '../util/jsonl.js';
import type { EmbeddingCache } from './cache.js';
import { evaluateRun } from './metrics.js';
import { dot, embedCached } from './embedding.js';

export interface BeirDocument {
  id: string;
  text: string;
  /** File path or data URI of a page image. */
  image: string | null;
}

export interface BeirDataset {
  corpus: BeirDocument[];
  queries: { id: string; text: string }[];
  qrels: Map<string, Map<string, number>>;
}

export interface BeirPrompts {
  /** Prepended to the query text (ViDoRe/MoCa: none). */
  query: string;
  /** Text of an image document, after the image placeholder (MoCa: "\nRepresent the given document image."). */
  imageDocument: string;
}

export const VIDORE_PROMPTS: BeirPrompts = { query: '', imageDocument: '\nRepresent the given document image.' };

async function readRows(file: string, columns: string[]): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  if (file.endsWith('.jsonl')) {
    for await (const rec of readJsonl(file)) {
      if ('error' in rec) throw new Error(`${file}:${rec.line}: ${rec.error}`);
      rows.push(rec.value as Record<string, unknown>);
    }
    return rows;
  }
  const pq = await ParquetFile.open(file, undefined, { columns, required: [] });
  try {
    for await (const { value } of pq.rows()) rows.push(value);
  } finally {
    await pq.close();
  }
  return rows;
}

/** The data files of a folder (sorted), or the path itself when it is a file; [] when absent. */
function filesOf(p: string): string[] {
  if (!existsSync(p)) return [];
  if (!statSync(p).isDirectory()) return [p];
  return readdirSync(p)
    .filter((f) => f.endsWith('.parquet') || f.endsWith('.jsonl'))
    .sort()
    .map((f) => path.join(p, f));
}

function str(row: Record<string, unknown>, keys: string[], where: string): string {
  for (const k of keys) {
    const v = row[k];
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
  }
  throw new Error(`${where}: missing ${keys.join(' / ')}`);
}

function imageOf(v: unknown, dir: string): string | null {
  if (typeof v === 'string' && v !== '') return v.startsWith('data:') || path.isAbsolute(v) ? v : path.join(dir, v);
  const bytes = (v as { bytes?: unknown } | null)?.bytes;
  if (bytes instanceof Uint8Array) return `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`;
  return null;
}

/**
 * Reads a BEIR dataset folder: `corpus.jsonl` (`_id`, `text`, optional `title`, optional `image`),
 * `queries.jsonl` (`_id`, `text`), `qrels/test.tsv` (query-id, corpus-id, score; header line); or the Hugging Face
 * ViDoRe layout with Parquet files under `corpus/` (`corpus-id`, `image`), `queries/` (`query-id`, `query`) and
 * `qrels/` (`query-id`, `corpus-id`, `score`).
 */
export async function readBeirDataset(dir: string, split = 'test'): Promise<BeirDataset> {
  const corpusFiles = existsSync(path.join(dir, 'corpus.jsonl'))
    ? [path.join(dir, 'corpus.jsonl')]
    : filesOf(path.join(dir, 'corpus'));
  const queryFiles = existsSync(path.join(dir, 'queries.jsonl'))
    ? [path.join(dir, 'queries.jsonl')]
    : filesOf(path.join(dir, 'queries'));
  if (corpusFiles.length === 0) throw new Error(`${dir}: no corpus.jsonl or corpus/*.parquet`);
  if (queryFiles.length === 0) throw new Error(`${dir}: no queries.jsonl or queries/*.parquet`);
  const corpus: BeirDocument[] = [];
  for (const f of corpusFiles) {
    for (const [i, row] of (await readRows(f, ['_id', 'corpus-id', 'title', 'text', 'image'])).entries()) {
      const where = `${f} row ${i}`;
      const title = typeof row.title === 'string' ? row.title : '';
      const text = typeof row.text === 'string' ? row.text : '';
      corpus.push({
        id: str(row, ['_id', 'corpus-id'], where),
        text: title && text ? `${title} ${text}` : title || text,
        image: imageOf(row.image, path.dirname(f)),
      });
    }
  }
  const queries: { id: string; text: string }[] = [];
  for (const f of queryFiles) {
    for (const [i, row] of (await readRows(f, ['_id', 'query-id', 'text', 'query'])).entries()) {
      const where = `${f} row ${i}`;
      queries.push({ id: str(row, ['_id', 'query-id'], where), text: str(row, ['text', 'query'], where) });
    }
  }
  const qrels = new Map<string, Map<string, number>>();
  const add = (q: string, d: string, s: number, where: string) => {
    if (!Number.isInteger(s)) throw new Error(`${where}: relevance must be an integer, got ${s}`);
    let m = qrels.get(q);
    if (!m) qrels.set(q, (m = new Map()));
    m.set(d, s);
  };
  const tsv = path.join(dir, 'qrels', `${split}.tsv`);
  if (existsSync(tsv)) {
    readFileSync(tsv, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const parts = line.trim().split('\t');
        if (parts.length < 3 || (i === 0 && Number.isNaN(Number(parts[2])))) return; // blank or header line
        add(parts[0]!, parts[1]!, Number(parts[2]), `${tsv}:${i + 1}`);
      });
  } else {
    const qrelFiles = filesOf(path.join(dir, 'qrels'));
    if (qrelFiles.length === 0) throw new Error(`${dir}: no qrels/${split}.tsv or qrels/*.parquet`);
    for (const f of qrelFiles) {
      for (const [i, row] of (await readRows(f, ['query-id', 'corpus-id', 'score'])).entries()) {
        add(
          str(row, ['query-id'], `${f} row ${i}`),
          str(row, ['corpus-id'], `${f} row ${i}`),
          Number(row.score),
          `${f} row ${i}`,
        );
      }
    }
  }
  return { corpus, queries, qrels };
}

/** Embeds, scores every query against the corpus by cosine, keeps the top `depth`, and computes the metrics. */
export async function evaluateBeirDataset(
  data: BeirDataset,
  embedder: Embedder,
  options: { cache: EmbeddingCache | null; batchSize: number; prompts?: BeirPrompts; ks?: number[]; depth?: number },
): Promise<{ metrics: Record<string, number>; queries: number; failedDocuments: string[]; failedQueries: string[] }> {
  const prompts = options.prompts ?? VIDORE_PROMPTS;
  const docInputs = data.corpus.map((d) =>
    d.image !== null
      ? { text: QWEN_IMAGE_PLACEHOLDER + (d.text ? `${d.text}` : '') + prompts.imageDocument, image: d.image }
      : { text: d.text, image: null },
  );
  const docVecs = await embedCached(embedder, options.cache, docInputs, options.batchSize);
  const queryVecs = await embedCached(
    embedder,
    options.cache,
    data.queries.map((q) => ({ text: prompts.query + q.text, image: null })),
    options.batchSize,
  );
  const failedDocuments = data.corpus.filter((_, i) => typeof docVecs[i] === 'string').map((d) => d.id);
  const failedQueries = data.queries.filter((_, i) => typeof queryVecs[i] === 'string').map((q) => q.id);
  const depth = options.depth ?? 100;
  const run = new Map<string, Map<string, number>>();
  data.queries.forEach((q, qi) => {
    const qv = queryVecs[qi];
    if (typeof qv === 'string' || qv === undefined) return;
    const scored: [string, number][] = [];
    data.corpus.forEach((d, di) => {
      const dv = docVecs[di];
      if (typeof dv === 'string' || dv === undefined) return;
      scored.push([d.id, dot(qv, dv)]);
    });
    scored.sort((a, b) => b[1] - a[1]);
    run.set(q.id, new Map(scored.slice(0, depth)));
  });
  const ks = options.ks ?? [5, 10];
  const result = evaluateRun(run, data.qrels, { ks });
  return { metrics: result.mean, queries: result.counted, failedDocuments, failedQueries };
}
