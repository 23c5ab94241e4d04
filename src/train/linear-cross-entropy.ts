// Cross-entropy of a linear head without materialising the full logits: rows are processed in chunks, each
// chunk's logits live only while its loss and gradients are computed, and the gradients are injected into the
// autograd graph through a surrogate whose value is the loss and whose gradient is exactly the one computed
// here (what fused "linear + cross-entropy" kernels such as Liger's do). With a 151k vocabulary, full logits for
// 5,000 masked tokens would take 3 GB in float32; here peak extra memory is one chunk of logits plus the weight
// gradient.
import {
  arange,
  cat,
  fusedKernelsEnabled,
  fusedLinearCrossEntropy,
  noGrad,
  scope,
  type Tensor,
  zerosLike,
} from '../torch/index.js';

export interface LinearCrossEntropyResult {
  /** Mean cross-entropy (0-d float32), differentiable w.r.t. `hidden` and `weight`. */
  loss: Tensor;
  /** Number of rows whose argmax equals the label. */
  correct: number;
  rows: number;
}

/**
 * Mean over rows of −log softmax(hidden · weightᵀ)[label]. `hidden` (N, H), `weight` (V, H), `labels` (N,) int64
 * (no ignore index: select the rows first). Logits and softmax are computed in float32. `chunkElements` bounds
 * the size of one chunk of logits. With the fused kernels on this is the native fused op (chunks over rows and
 * vocabulary, backward recomputes the logits); otherwise the composed version below.
 */
export function linearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  labels: Tensor,
  options: { chunkElements?: number } = {},
): LinearCrossEntropyResult {
  if (fusedKernelsEnabled() && hidden.device === 'cpu' && hidden.dtype !== 'float16') {
    const r = fusedLinearCrossEntropy(hidden, weight, labels, {
      ignoreIndex: -1,
      ...(options.chunkElements === undefined ? {} : { chunkElements: options.chunkElements }),
    });
    if (r.rows === 0) {
      r.loss.dispose();
      return linearCrossEntropyComposed(hidden, weight, labels, options);
    }
    return {
      loss: r.loss.dtype === 'float32' ? r.loss : scope(() => r.loss.float()),
      correct: r.correct,
      rows: r.rows,
    };
  }
  return linearCrossEntropyComposed(hidden, weight, labels, options);
}

/** The composed (TypeScript, chunked over rows) linear cross-entropy: the reference of the fused kernel. */
export function linearCrossEntropyComposed(
  hidden: Tensor,
  weight: Tensor,
  labels: Tensor,
  options: { chunkElements?: number } = {},
): LinearCrossEntropyResult {
  const rows = hidden.size(0);
  if (rows === 0) {
    return { loss: scope(() => hidden.sum().mul(0).add(weight.sum().mul(0)).float()), correct: 0, rows: 0 };
  }
  const vocab = weight.size(0);
  const chunkRows = Math.max(1, Math.floor((options.chunkElements ?? 32 * 1024 * 1024) / vocab));
  let lossSum = 0;
  let correct = 0;
  const gradHidden: Tensor[] = [];
  const gradWeight = noGrad(() => zerosLike(weight).float());
  try {
    noGrad(() => {
      const h = hidden.detach();
      const w = weight.detach();
      for (let start = 0; start < rows; start += chunkRows) {
        const len = Math.min(chunkRows, rows - start);
        scope(() => {
          const hc = h.narrow(0, start, len);
          const yc = labels.narrow(0, start, len);
          const logits = hc.matmul(w.t()).float(); // (len, V)
          const lse = logits.logsumexp(-1);
          const picked = logits.gather(1, yc.view(-1, 1)).squeeze(1);
          lossSum += lse.sub(picked).sum().item();
          correct += logits.argmax(1).eq(yc).sum().item();
          // d(mean CE)/d logits = (softmax − onehot) / N
          const grad = logits.sub(lse.unsqueeze(1)).exp();
          grad.indexPut_([arange(len), yc], picked.sub(lse).exp().sub(1), false);
          grad.div_(rows);
          const g = grad.to(w.dtype);
          gradHidden.push(g.matmul(w).keep());
          gradWeight.add_(g.t().matmul(hc).float());
        });
      }
    });
    const gh = gradHidden.length === 1 ? gradHidden[0]! : noGrad(() => cat(gradHidden, 0));
    const loss = scope(() => {
      // value: lossSum / rows; gradient: (gh, gradWeight)
      const surrogate = hidden
        .flatten()
        .dot(gh.to(hidden.dtype).flatten())
        .float()
        .add(weight.flatten().dot(gradWeight.to(weight.dtype).flatten()).float());
      return surrogate.sub(surrogate.detach()).add(lossSum / rows);
    });
    if (gh !== gradHidden[0]) gh.dispose();
    return { loss, correct, rows };
  } finally {
    for (const t of gradHidden) t.dispose();
    gradWeight.dispose();
  }
}
