// Reference embeddings for the generated world's evaluation sets, scored with the real harness functions
// (src/eval/metrics.ts): an ORACLE built from the generator's ground truth, a constant embedding and seeded random
// ones. They bound what a model can score: the oracle must reach 100 %, the others must sit at chance.
import path from 'node:path';

import { Rng } from '../../../src/data/rng.js';
import type { WorldManifest } from '../../../src/data/synthetic/index.js';
import { readBeirDataset } from '../../../src/eval/beir.js';
import { dot } from '../../../src/eval/embedding.js';
import { evaluateRun, precisionAt1 } from '../../../src/eval/metrics.js';
import { readMmebSubset, type MmebRow } from '../../../src/eval/mmeb.js';

export interface Input {
  text: string;
  image: string | null;
}

/** Maps one (text, absolute image path) input of a given row to a vector. */
export type EmbedFn = (input: Input, where?: { row: number; role: 'query' | number }) => Float32Array;

export async function readRows(world: string, manifest: WorldManifest, dataset: string): Promise<MmebRow[]> {
  const mmeb = path.join(world, manifest.files.mmeb);
  const rows: MmebRow[] = [];
  const errors: string[] = [];
  for await (const r of readMmebSubset(path.join(mmeb, `${dataset}.jsonl`), {
    imageRoot: mmeb,
    onError: (row, message) => errors.push(`row ${row}: ${message}`),
  })) {
    rows.push(r);
  }
  if (errors.length > 0) throw new Error(`${dataset}: ${errors.join('; ')}`);
  return rows;
}

/** Mean Precision@1 (ties count as wrong, the harness default) of an embedding over the rows. */
export function precision(rows: readonly MmebRow[], embed: EmbedFn): { mean: number; hits: number[] } {
  const hits = rows.map((r, i) => {
    const q = embed(r.query, { row: i, role: 'query' });
    const scores = r.candidates.map((c, k) => dot(q, embed(c, { row: i, role: k })));
    return precisionAt1(scores, 0, 'wrong');
  });
  return { mean: hits.reduce((a: number, b) => a + b, 0) / Math.max(1, hits.length), hits };
}

/** One-hot vectors over a fixed list of meanings. */
export function oneHot(meanings: readonly string[]): (meaning: string) => Float32Array {
  const index = new Map(meanings.map((m, i) => [m, i]));
  return (m) => {
    const i = index.get(m);
    if (i === undefined) throw new Error(`oneHot: unknown meaning ${m}`);
    const v = new Float32Array(meanings.length);
    v[i] = 1;
    return v;
  };
}

/** Unit vectors drawn from a seeded Gaussian, one per distinct input (the same input always gets the same one). */
export function randomEmbedding(seed: number, dim = 64): EmbedFn {
  const rng = new Rng(seed);
  const cache = new Map<string, Float32Array>();
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.float())) * Math.cos(2 * Math.PI * rng.float());
  return (input) => {
    const key = `${input.image ?? ''}\0${input.text}`;
    let v = cache.get(key);
    if (!v) {
      v = Float32Array.from({ length: dim }, gauss);
      const n = Math.hypot(...v);
      for (let i = 0; i < dim; i++) v[i]! /= n;
      cache.set(key, v);
    }
    return v;
  };
}

export const constantEmbedding: EmbedFn = () => Float32Array.of(1, 0, 0, 0);

/** The world-root-relative POSIX path of an absolute image path. */
export function worldPath(world: string, image: string): string {
  return path.relative(world, image).split(path.sep).join('/');
}

/** nDCG@k etc. of the BEIR set for an embedding of queries (text) and documents (page images). */
export async function beirMetrics(
  world: string,
  manifest: WorldManifest,
  embedQuery: (id: string, text: string) => Float32Array,
  embedDoc: (id: string, image: string) => Float32Array,
): Promise<Record<string, number>> {
  const data = await readBeirDataset(path.join(world, manifest.files.beir));
  const docs = data.corpus.map((d) => ({ id: d.id, v: embedDoc(d.id, d.image!) }));
  const run = new Map<string, Map<string, number>>();
  for (const q of data.queries) {
    const qv = embedQuery(q.id, q.text);
    run.set(q.id, new Map(docs.map((d) => [d.id, dot(qv, d.v)])));
  }
  return evaluateRun(run, data.qrels, { ks: [5, 10] }).mean;
}
