// GradCache (Gao et al. 2021): the contrastive loss of a large batch with memory bounded by one chunk.
//   1. embed every input in chunks without a graph;
//   2. compute the loss on those embeddings (as leaves) and its gradient w.r.t. each embedding;
//   3. re-embed each chunk with a graph and back-propagate the cached embedding gradients into the parameters.
// Parameter gradients equal those of the plain loss (up to floating-point summation order), while activations of
// only one chunk are alive at a time. The reference code has a --grad_cache flag but no implementation.
import { backward as autogradBackward, cat, grad, noGrad, scope, type Tensor } from '../../torch/index.js';

/** Embeds a chunk of inputs (indices into the group) into (n, D). */
export type EmbedChunk = (indices: readonly number[]) => Tensor;

export interface GradCacheGroup {
  size: number;
  embed: EmbedChunk;
}

/**
 * Runs GradCache over several input groups (e.g. queries, positives, negatives) whose embeddings feed `lossFn`.
 * Gradients are accumulated into the parameters, scaled by `gradScale`; returns the loss value and whatever
 * `lossFn` reports.
 */
export function gradCache<M>(
  groups: readonly GradCacheGroup[],
  lossFn: (embeddings: Tensor[]) => { loss: Tensor; extra: M },
  options: { chunkSize: number; gradScale?: number },
): { value: number; extra: M } {
  const chunks = (n: number): number[][] => {
    const out: number[][] = [];
    for (let s = 0; s < n; s += options.chunkSize) {
      out.push(Array.from({ length: Math.min(options.chunkSize, n - s) }, (_, i) => s + i));
    }
    return out;
  };
  // 1. Embeddings without a graph.
  const cached = groups.map((g) =>
    noGrad(() => {
      const parts = chunks(g.size).map((idx) => g.embed(idx));
      const all = parts.length === 1 ? parts[0]! : cat(parts, 0);
      if (parts.length > 1) for (const p of parts) p.dispose();
      return all.detach().requiresGrad_(true).keep();
    }),
  );
  try {
    // 2. Loss and its gradient w.r.t. the embeddings.
    const { value, extra, embeddingGrads } = scope(() => {
      const { loss, extra } = lossFn(cached);
      const grads = grad([loss], cached, { allowUnused: true });
      return {
        value: loss.item(),
        extra,
        embeddingGrads: grads.map((g, i) => (g ?? cached[i]!.mul(0)).mul(options.gradScale ?? 1).keep()),
      };
    });
    try {
      // 3. Re-embed chunk by chunk with a graph, back-propagating the cached gradients.
      groups.forEach((g, gi) => {
        for (const idx of chunks(g.size)) {
          scope(() => {
            const emb = g.embed(idx);
            const gChunk = embeddingGrads[gi]!.narrow(0, idx[0]!, idx.length);
            autogradBackward([emb], [gChunk.to(emb.dtype)]);
          });
        }
      });
    } finally {
      for (const t of embeddingGrads) t.dispose();
    }
    return { value, extra };
  } finally {
    for (const t of cached) t.dispose();
  }
}
