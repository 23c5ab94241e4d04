// In-batch negatives across data-parallel ranks: the embeddings of every rank, concatenated in rank order, with
// this rank's slice being the local tensor itself (so its autograd graph is kept) and the other slices constants
// received by an all-gather — what the MoCa reference does (`dist_gather_tensor`: gather, then put the local tensor
// back in place). A loss over the result is the loss of the global batch; its backward reaches only the local
// slice's inputs, i.e. gives this rank's share of the global gradient (the trainer sums the shares).
import { cat, distributed, empty, noGrad, type Tensor, zeros } from '../../torch/index.js';

/**
 * `local` (rows[rank], D) → (Σ rows, D) float32. `rows[r]` is the number of rows rank r contributes (ranks may
 * differ: the last batch of a subset, rows dropped as unreadable); they are padded to the longest for the
 * all-gather. Collective: every rank of `group` must call it with the same `rows`. Blocks until the gather
 * completed (it runs inside the synchronous loss).
 */
export function crossRankEmbeddings(local: Tensor, rows: readonly number[], group: distributed.ProcessGroup): Tensor {
  const rank = group.rank;
  if (rows.length !== group.size)
    throw new Error(`crossRankEmbeddings: ${rows.length} row counts for ${group.size} ranks`);
  if (local.size(0) !== rows[rank]) {
    throw new Error(`crossRankEmbeddings: rank ${rank} has ${local.size(0)} rows, the row counts say ${rows[rank]}`);
  }
  const mine = local.float();
  const dim = mine.size(1);
  const longest = Math.max(...rows);
  const gathered = noGrad(() => {
    const detached = mine.detach();
    const padded =
      rows[rank] === longest ? detached.contiguous() : cat([detached, zeros([longest - rows[rank]!, dim])], 0);
    const outputs = rows.map(() => empty([longest, dim]));
    distributed.allGather(outputs, padded, { group, asyncOp: true }).waitSync();
    return outputs;
  });
  return cat(
    gathered.map((g, r) => (r === rank ? mine : g.narrow(0, 0, rows[r]!))),
    0,
  );
}
