// The benchmark loops behind `moca eval mmeb` / `moca eval beir`, as library functions (the demo and the CLI share
// them): discover the datasets of a folder, evaluate each (a failing dataset is recorded, the others run), and
// return the results in the EvalResults shape that report.ts summarises and renders.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { Embedder } from '../embed/index.js';
import { Progress } from '../util/progress.js';
import { evaluateBeirDataset, readBeirDataset, VIDORE_PROMPTS, type BeirPrompts } from './beir.js';
import type { EmbeddingCache } from './cache.js';
import { evaluateMmebDataset, type TiesPolicy } from './mmeb.js';
import { type EvalResults, parseDatasetTable } from './report.js';

/** Where a failure is recorded (an ErrorLog, or anything with the same method). */
export interface ErrorSink {
  record(entry: Record<string, unknown>): void;
}

const isData = (name: string) => name.endsWith('.jsonl') || name.endsWith('.parquet');

/** Subsets in a data folder: .jsonl/.parquet files and sub-folders holding such files (image folders are not
 * subsets), named by their base name. */
export function discoverSubsets(dir: string): { name: string; path: string }[] {
  if (!existsSync(dir)) throw new Error(`${dir}: no such folder`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => (e.isDirectory() ? readdirSync(path.join(dir, e.name)).some(isData) : isData(e.name)))
    .map((e) => ({ name: e.name.replace(/\.(jsonl|parquet)$/, ''), path: path.join(dir, e.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A BEIR dataset folder itself, or its sub-folders that are datasets. */
export function discoverBeir(dir: string): { name: string; path: string }[] {
  const isDataset = (p: string) => existsSync(path.join(p, 'corpus.jsonl')) || existsSync(path.join(p, 'corpus'));
  if (!existsSync(dir)) throw new Error(`${dir}: no such folder`);
  if (isDataset(dir)) return [{ name: path.basename(path.resolve(dir)), path: dir }];
  const found = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && isDataset(path.join(dir, e.name)))
    .map((e) => ({ name: e.name, path: path.join(dir, e.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  if (found.length === 0) throw new Error(`${dir}: no BEIR dataset (corpus + queries + qrels) found`);
  return found;
}

/** The file of a data folder that gives its datasets' meta-tasks and IND/OOD splits when they are not MMEB's. */
export const DATASET_TABLE_FILE = 'datasets.json';

/** The dataset table in `<dir>/datasets.json` (an array, or `{datasets: [...]}`), or undefined when absent. */
export function readDatasetTable(dir: string): ReturnType<typeof parseDatasetTable> | undefined {
  const file = path.join(dir, DATASET_TABLE_FILE);
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const list =
    typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as { datasets?: unknown }).datasets
      : parsed;
  return parseDatasetTable(list, file);
}

export interface MmebRunOptions {
  /** Folder of datasets (see discoverSubsets). */
  data: string;
  /** Folder that image paths are relative to (default: data). */
  imageRoot?: string;
  /** Subset names to evaluate (default: all found). */
  datasets?: readonly string[];
  cache?: EmbeddingCache;
  ties?: TiesPolicy;
  batchSize?: number;
  seed?: number;
  limit?: number;
  /** The model's name in the results (default: "model"). */
  model?: string;
  errors?: ErrorSink;
  /** Per-dataset progress on stderr (default true). */
  progress?: boolean;
  /** Extra settings recorded in the results. */
  settings?: Record<string, unknown>;
}

/** Evaluates every MMEB-format dataset of a folder; `datasets.json` beside them, when present, becomes the run's
 * dataset table (meta-tasks, IND/OOD). */
export async function runMmebBenchmark(embedder: Embedder, options: MmebRunOptions): Promise<EvalResults> {
  let subsets = discoverSubsets(options.data);
  if (options.datasets) {
    const wanted = options.datasets;
    const unknown = wanted.filter((w) => !subsets.some((s) => s.name === w));
    if (unknown.length > 0) throw new Error(`datasets not found in ${options.data}: ${unknown.join(', ')}`);
    subsets = subsets.filter((s) => wanted.includes(s.name));
  }
  const table = readDatasetTable(options.data);
  const ties = options.ties ?? 'wrong';
  const showProgress = options.progress ?? true;
  const progress = showProgress ? new Progress('eval mmeb', subsets.length, { unit: 'datasets', intervalMs: 0 }) : null;
  const datasets: EvalResults['datasets'] = [];
  for (const [i, s] of subsets.entries()) {
    try {
      let inputsProgress: Progress | undefined;
      const r = await evaluateMmebDataset(s.name, s.path, embedder, {
        // Unique inputs embedded (or read from the cache): rate and ETA within the dataset.
        onProgress: (done, total) => {
          if (!showProgress) return;
          inputsProgress ??= new Progress(`  ${s.name}`, total, { unit: 'inputs' });
          inputsProgress.update(done, '', done === total);
        },
        imageRoot: options.imageRoot ?? options.data,
        cache: options.cache ?? null,
        ties,
        batchSize: options.batchSize ?? 16,
        seed: options.seed ?? 1,
        ...(options.limit ? { limit: options.limit } : {}),
        onError: (row, message) => options.errors?.record({ dataset: s.name, row, error: message }),
      });
      datasets.push({ name: s.name, metrics: r.metrics, count: r.count });
      progress?.update(i + 1, `${s.name} P@1 ${(100 * r.metrics.precision_at_1!).toFixed(1)} (${r.count} rows)`, true);
    } catch (e) {
      datasets.push({ name: s.name, metrics: {}, count: 0, error: (e as Error).message });
      options.errors?.record({ dataset: s.name, error: (e as Error).message });
      progress?.update(i + 1, `${s.name} FAILED: ${(e as Error).message}`, true);
    }
  }
  return {
    kind: 'mmeb',
    model: options.model ?? 'model',
    createdAt: new Date().toISOString(),
    settings: {
      ties,
      limit: options.limit ?? null,
      cacheHits: options.cache?.hits ?? 0,
      ...(table ? { datasetTable: table } : {}),
      ...options.settings,
    },
    datasets,
  };
}

export interface BeirRunOptions {
  /** A BEIR dataset folder, or a folder of them. */
  data: string;
  split?: string;
  prompts?: BeirPrompts;
  /** Cut-offs (default [5, 10]); the first is the primary metric's. */
  ks?: readonly number[];
  batchSize?: number;
  cache?: EmbeddingCache;
  model?: string;
  errors?: ErrorSink;
  progress?: boolean;
  settings?: Record<string, unknown>;
}

/** Evaluates every BEIR dataset found under `data`. */
export async function runBeirBenchmark(embedder: Embedder, options: BeirRunOptions): Promise<EvalResults> {
  const ks = [...(options.ks ?? [5, 10])];
  const prompts = options.prompts ?? VIDORE_PROMPTS;
  const sets = discoverBeir(options.data);
  const progress =
    (options.progress ?? true) ? new Progress('eval beir', sets.length, { unit: 'datasets', intervalMs: 0 }) : null;
  const datasets: EvalResults['datasets'] = [];
  for (const [i, s] of sets.entries()) {
    try {
      const data = await readBeirDataset(s.path, options.split ?? 'test');
      const r = await evaluateBeirDataset(data, embedder, {
        cache: options.cache ?? null,
        batchSize: options.batchSize ?? 8,
        prompts,
        ks,
      });
      for (const id of r.failedDocuments)
        options.errors?.record({ dataset: s.name, document: id, error: 'could not be embedded' });
      for (const id of r.failedQueries)
        options.errors?.record({ dataset: s.name, query: id, error: 'could not be embedded' });
      datasets.push({ name: s.name, metrics: r.metrics, count: r.queries });
      progress?.update(
        i + 1,
        `${s.name} nDCG@${ks[0]} ${(100 * (r.metrics[`ndcg_cut_${ks[0]}`] ?? 0)).toFixed(1)}`,
        true,
      );
    } catch (e) {
      datasets.push({ name: s.name, metrics: {}, count: 0, error: (e as Error).message });
      options.errors?.record({ dataset: s.name, error: (e as Error).message });
      progress?.update(i + 1, `${s.name} FAILED: ${(e as Error).message}`, true);
    }
  }
  return {
    kind: 'beir',
    model: options.model ?? 'model',
    createdAt: new Date().toISOString(),
    settings: {
      metric: `ndcg_cut_${ks[0]}`,
      ks,
      queryPrompt: prompts.query,
      documentPrompt: prompts.imageDocument,
      ...options.settings,
    },
    datasets,
  };
}
