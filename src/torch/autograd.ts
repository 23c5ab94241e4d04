// Gradient-mode scopes and functional autograd entry points (libtorch's engine does the work).
import { type DTypeLike, dtypeCode } from './dtype.js';
import { native } from './native.js';
import { Tensor, wrap } from './tensor.js';

/** Runs `fn` with gradient recording disabled (`torch.no_grad()`), restoring the previous mode after. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with gradient recording enabled (`torch.enable_grad()`). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError('noGrad/enableGrad: fn must be synchronous (grad mode is per call stack)');
    }
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function setGradEnabled(enabled: boolean): boolean {
  return native.setGradEnabled(enabled);
}

/** `torch.autograd.backward`: accumulates gradients of several roots into the leaves' `.grad`. */
export function backward(
  tensors: readonly Tensor[],
  gradTensors: readonly (Tensor | null)[] = [],
  options: { retainGraph?: boolean; createGraph?: boolean } = {},
): void {
  const create = options.createGraph ?? false;
  native.autogradBackward(
    tensors.map((t) => t.handle),
    tensors.map((_, i) => gradTensors[i]?.handle ?? null),
    options.retainGraph ?? create,
    create,
  );
}

/** `torch.autograd.grad`: gradients of `outputs` w.r.t. `inputs`, returned instead of accumulated. */
export function grad(
  outputs: readonly Tensor[],
  inputs: readonly Tensor[],
  options: {
    gradOutputs?: readonly (Tensor | null)[];
    retainGraph?: boolean;
    createGraph?: boolean;
    allowUnused?: boolean;
  } = {},
): (Tensor | null)[] {
  const create = options.createGraph ?? false;
  const result = native.autogradGrad(
    outputs.map((t) => t.handle),
    inputs.map((t) => t.handle),
    outputs.map((_, i) => options.gradOutputs?.[i]?.handle ?? null),
    options.retainGraph ?? create,
    create,
    options.allowUnused ?? false,
  );
  return result.map((h) => (h === null ? null : wrap(h)));
}

/**
 * Runs `fn` with CPU autocast (mixed precision, `torch.autocast('cpu', dtype)`): eligible ops (matmul, linear,
 * conv…) compute in `dtype` while float32 parameters stay the master copy. Synchronous only.
 */
export function autocast<T>(dtype: DTypeLike, fn: () => T): T {
  const previous = native.setAutocastCpu(true, dtypeCode(dtype));
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('autocast: fn must be synchronous');
    return result;
  } finally {
    native.setAutocastCpu(previous, dtypeCode(dtype));
  }
}
