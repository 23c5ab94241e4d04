// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
import { noGrad } from '../autograd.js';
import { stack } from '../creation.js';
import type { Parameter } from '../nn/module.js';
import { scope } from '../scope.js';

/**
 * Scales all gradients so that their joint `normType`-norm is at most `maxNorm`; returns the norm before
 * clipping. Same arithmetic as PyTorch (coefficient maxNorm / (norm + 1e-6), clamped at 1).
 */
export function clipGradNorm(
  parameters: Iterable<Parameter>,
  maxNorm: number,
  options: { normType?: number; errorIfNonfinite?: boolean } = {},
): number {
  const normType = options.normType ?? 2;
  return noGrad(() =>
    scope(() => {
      const grads = [...parameters].map((p) => p.grad).filter((g) => g !== null);
      if (grads.length === 0) return 0;
      const total =
        normType === Infinity
          ? stack(grads.map((g) => g.abs().max())).max()
          : stack(grads.map((g) => g.norm(normType))).norm(normType);
      const totalValue = total.item();
      if (options.errorIfNonfinite && !Number.isFinite(totalValue)) {
        throw new Error(`The total norm of order ${normType} for gradients is non-finite, so it cannot be clipped.`);
      }
      const coef = total.add(1e-6).reciprocal().mul(maxNorm).clampMax(1);
      for (const g of grads) g.mul_(coef);
      return totalValue;
    }),
  );
}
