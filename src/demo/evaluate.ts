// Evaluation of one demo model on the world's benchmarks (MMEB-format tasks with the world's own meta-task and
// IND/OOD table; one BEIR document-retrieval set), and the statistics across seeds that the report shows.
import path from 'node:path';

import { Embedder } from '../embed/index.js';
import { EmbeddingCache, modelKey } from '../eval/cache.js';
import type { MetaTask } from '../eval/mmeb-datasets.js';
import { type EvalResults, summarizeBeir, summarizeMmeb, writeResults } from '../eval/report.js';
import { runBeirBenchmark, runMmebBenchmark } from '../eval/run.js';
import { ErrorLog } from '../util/output.js';

/** The numbers of one model, as fractions in [0, 1] (null: no dataset of that group evaluated). */
export interface ModelScores {
  classification: number | null;
  vqa: number | null;
  retrieval: number | null;
  grounding: number | null;
  ind: number | null;
  ood: number | null;
  overall: number | null;
  /** nDCG@5 on the document-retrieval set. */
  ndcg5: number | null;
  /** Per-dataset Precision@1 (MMEB-format tasks). */
  datasets: Record<string, number | null>;
}

export const SCORE_COLUMNS = [
  ['classification', 'Cls'],
  ['vqa', 'VQA'],
  ['retrieval', 'Ret'],
  ['grounding', 'Ground'],
  ['ind', 'IND'],
  ['ood', 'OOD'],
  ['overall', 'Overall'],
  ['ndcg5', 'Doc nDCG@5'],
] as const satisfies readonly (readonly [keyof Omit<ModelScores, 'datasets'>, string])[];

export type ScoreKey = (typeof SCORE_COLUMNS)[number][0];

export interface EvaluateModelOptions {
  modelDir: string;
  /** MMEB-format datasets (with datasets.json) and the folder their image paths are relative to. */
  mmebDir: string;
  imageRoot: string;
  /** BEIR dataset folder. */
  beirDir: string;
  outputDir: string;
  name: string;
  limit: number | null;
  attention?: 'bidirectional' | 'causal';
  pooling?: 'mean' | 'last';
  threads?: number;
}

export async function evaluateModel(o: EvaluateModelOptions): Promise<ModelScores> {
  const embedder = await Embedder.load(o.modelDir, {
    ...(o.attention ? { attention: o.attention } : {}),
    ...(o.pooling ? { pooling: o.pooling } : {}),
    ...(o.threads ? { threads: o.threads } : {}),
  });
  const cache = new EmbeddingCache(path.join(o.outputDir, 'cache'), modelKey(o.modelDir));
  const errors = new ErrorLog(path.join(o.outputDir, 'errors.jsonl'));
  const settings = { attention: o.attention ?? 'bidirectional', pooling: o.pooling ?? 'mean' };
  let mmeb: EvalResults;
  let beir: EvalResults;
  try {
    mmeb = await runMmebBenchmark(embedder, {
      data: o.mmebDir,
      imageRoot: o.imageRoot,
      cache,
      ...(o.limit === null ? {} : { limit: o.limit }),
      model: o.name,
      errors,
      progress: false,
      settings,
    });
    beir = await runBeirBenchmark(embedder, {
      data: o.beirDir,
      cache,
      model: o.name,
      errors,
      progress: false,
      settings,
    });
  } finally {
    errors.close();
  }
  writeResults(path.join(o.outputDir, 'mmeb'), mmeb);
  writeResults(path.join(o.outputDir, 'docs'), beir);
  if (errors.count > 0)
    throw new Error(`${o.name}: ${errors.count} evaluation error(s), see ${path.join(o.outputDir, 'errors.jsonl')}`);
  const s = summarizeMmeb(mmeb);
  const b = summarizeBeir(beir);
  const meta = (t: MetaTask): number | null => s.metaTasks[t].mean;
  return {
    classification: meta('classification'),
    vqa: meta('vqa'),
    retrieval: meta('retrieval'),
    grounding: meta('grounding'),
    ind: s.ind.mean,
    ood: s.ood.mean,
    overall: s.overall.mean,
    ndcg5: b.average.mean,
    datasets: Object.fromEntries(s.datasets.map((d) => [d.name, d.value])),
  };
}

/** Mean and sample standard deviation (0 for one value) of the non-null values; null when there are none. */
export function meanStd(values: readonly (number | null)[]): { mean: number; std: number; n: number } | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.length > 1 ? v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1) : 0;
  return { mean, std: Math.sqrt(variance), n: v.length };
}

/** Per-seed differences `b − a` of one score (seeds where either is missing are left out). */
export function pairedDeltas(a: readonly (number | null)[], b: readonly (number | null)[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== null && x !== undefined && y !== null && y !== undefined) out.push(y - x);
  }
  return out;
}
