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
  // Each intermediate is the size of the score matrix; drop our handle as soon as the next one exists, so only
  // one or two are alive at a time (autograd keeps what backward needs by itself).
  return scope(() => {
    const kt = k.transpose(-2, -1);
    let t = q.matmul(kt);
    t = replace(t, t.mul_(scale));
    if (mask !== null) {
      const notMask = mask.logicalNot();
      t = replace(t, t.maskedFill(notMask, -Infinity));
    }
    t = replace(t, t.softmax(-1, { dtype: 'float32' }));
    if (t.dtype !== q.dtype) t = replace(t, t.to(q.dtype));
    return t.matmul(v);
  });
}

/** Disposes `old` (unless it is `next` itself, as in-place ops return) and returns `next`. */
function replace(old: Tensor, next: Tensor): Tensor {
  if (next !== old) old.dispose();
  return next;
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
