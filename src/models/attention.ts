// Eager attention shared by the vision tower and the language model (a fused kernel replaces it later behind
// the same function).
import { cat, scope, type Tensor } from '../torch/index.js';

/** Largest score matrix (elements) computed at once; longer queries are processed in chunks. */
const MAX_SCORE_ELEMENTS = 64 * 1024 * 1024;

/**
 * softmax(q kᵀ · scale [masked]) v with q (..., Lq, D), k and v (..., Lk, D). `keyMask`, when given, is a bool
 * tensor broadcastable to (..., Lq, Lk) (true = may attend). Softmax runs in float32 and the probabilities are
 * cast back to q's dtype before multiplying v, as transformers' eager attention does. Queries are split into
 * chunks so that the score matrix stays below MAX_SCORE_ELEMENTS.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: { mask?: Tensor | null; scale: number }): Tensor {
  const lq = q.size(-2);
  const lk = k.size(-2);
  const batch = q.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const chunk = Math.max(1, Math.floor(MAX_SCORE_ELEMENTS / Math.max(1, batch * lk)));
  if (chunk >= lq) return attentionBlock(q, k, v, options.mask ?? null, options.scale);
  return scope(() => {
    const parts: Tensor[] = [];
    for (let start = 0; start < lq; start += chunk) {
      const len = Math.min(chunk, lq - start);
      const qc = q.narrow(-2, start, len);
      const mask = options.mask ?? null;
      const mc = mask !== null && mask.size(-2) === lq && lq > 1 ? mask.narrow(-2, start, len) : mask;
      parts.push(attentionBlock(qc, k, v, mc, options.scale));
    }
    return cat(parts, -2);
  });
}

function attentionBlock(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, scale: number): Tensor {
  return scope(() => {
    let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
    if (mask !== null) scores = scores.maskedFill(mask.logicalNot(), -Infinity);
    let probs = scores.softmax(-1, { dtype: 'float32' });
    if (probs.dtype !== q.dtype) probs = probs.to(q.dtype);
    return probs.matmul(v);
  });
}

/** (B, kvHeads, L, D) → (B, kvHeads·nRep, L, D), each KV head repeated for its group of query heads. */
export function repeatKv(x: Tensor, nRep: number): Tensor {
  if (nRep === 1) return x;
  const [b, h, l, d] = x.shape as [number, number, number, number];
  return scope(() =>
    x
      .unsqueeze(2)
      .expand(b, h, nRep, l, d)
      .reshape(b, h * nRep, l, d),
  );
}

/** rotate_half: (x1, x2) → (−x2, x1) over the last dimension's halves. */
export function rotateHalf(x: Tensor): Tensor {
  const half = x.size(-1) / 2;
  return scope(() => cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1));
}
