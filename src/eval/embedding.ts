// Embedding the inputs of an evaluation through the on-disk cache, and scoring them (shared by MMEB and BEIR).
import type { Embedder, EmbedInput } from '../embed/index.js';
import { type EmbeddingCache, inputKey } from './cache.js';

/** Embeds inputs through the cache: only inputs never embedded by this model are computed. */
export async function embedCached(
  embedder: Embedder,
  cache: EmbeddingCache | null,
  inputs: { text: string; image: string | null }[],
  batchSize: number,
  onProgress?: (done: number, total: number) => void,
): Promise<(Float32Array | string)[]> {
  const keys = inputs.map((i) => inputKey(i.text, i.image));
  const out: (Float32Array | string)[] = new Array(inputs.length);
  const todo: number[] = [];
  keys.forEach((k, i) => {
    const hit = cache?.get(k);
    if (hit) out[i] = hit;
    else todo.push(i);
  });
  const asInput = (i: number): EmbedInput => {
    const x = inputs[i]!;
    return x.image === null ? x.text : { text: x.text, images: [x.image] };
  };
  const cached = inputs.length - todo.length;
  onProgress?.(cached, inputs.length);
  const outcomes = await embedder.embedSettled(todo.map(asInput), {
    batchSize,
    ...(onProgress ? { onProgress: (done: number) => onProgress(cached + done, inputs.length) } : {}),
  });
  const fresh: [string, Float32Array][] = [];
  outcomes.forEach((o, j) => {
    const i = todo[j]!;
    if (o.ok) {
      out[i] = o.embedding;
      fresh.push([keys[i]!, o.embedding]);
    } else out[i] = o.error;
  });
  cache?.putMany(fresh);
  return out;
}

/** Dot product (the cosine of L2-normalised embeddings). */
export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
