// MoCa's stage-2 objective (spec §3.4): InfoNCE over L2-normalised embeddings, each query scored against every
// in-batch positive and its own hard negatives, target = its positive; with the options users ask for (a
// symmetric target→query term, hard negatives shared across the batch).
import { arange, cat, F, scope, type Tensor } from '../../torch/index.js';

export interface InfoNceOptions {
  /** Softmax temperature τ (MoCa 0.03). */
  temperature: number;
  /** Add the target→query term (each positive against all queries) and average the two directions. */
  symmetric?: boolean;
  /** Score every query against all B·K hard negatives of the batch instead of only its own K. */
  sharedNegatives?: boolean;
}

export interface InfoNceResult {
  loss: Tensor;
  /** Fraction of queries whose positive scores highest among their candidates. */
  accuracy: number;
}

/**
 * q (B, D), p (B, D), negatives (B, K, D) or null — raw embeddings, normalised here (so gradients flow through
 * the normalisation, as in the reference where the model returns normalised vectors).
 */
export function infoNce(q: Tensor, p: Tensor, negatives: Tensor | null, options: InfoNceOptions): InfoNceResult {
  return scope(() => {
    const b = q.size(0);
    const qn = F.normalize(q.float(), { dim: -1 });
    const pn = F.normalize(p.float(), { dim: -1 });
    const parts: Tensor[] = [qn.matmul(pn.t())]; // (B, B): in-batch positives
    if (negatives !== null && negatives.size(1) > 0) {
      const nn = F.normalize(negatives.float(), { dim: -1 }); // (B, K, D)
      if (options.sharedNegatives) {
        parts.push(qn.matmul(nn.reshape(-1, nn.size(2)).t())); // (B, B·K)
      } else {
        parts.push(nn.matmul(qn.unsqueeze(2)).squeeze(2)); // (B, K): q_i · n_{i,k}
      }
    }
    const logits = (parts.length === 1 ? parts[0]! : cat(parts, 1)).div(options.temperature);
    const target = arange(b);
    let loss = F.crossEntropy(logits, target);
    if (options.symmetric) {
      const reverse = pn.matmul(qn.t()).div(options.temperature);
      loss = loss.add(F.crossEntropy(reverse, target)).div(2);
    }
    const accuracy = logits.argmax(1).eq(target).float().mean().item();
    return { loss, accuracy };
  });
}
