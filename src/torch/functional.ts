// torch.nn.functional: bound ops where libtorch has them, compositions (with their intermediates disposed)
// where it does not in every supported version (rms_norm, normalize, attention).
import { isGradEnabled } from './autograd.js';
import { type DTypeLike, dtypeCode } from './dtype.js';
import { native } from './native.js';
import { scope } from './scope.js';
import { Tensor, wrap } from './tensor.js';
import { ones } from './creation.js';
import {
  flashAttention,
  fusedGeluTanh,
  fusedKernelsEnabled,
  fusedLinearCrossEntropy,
  fusedRmsNorm,
  type FusedLinearCrossEntropyResult,
} from './fused.js';

export type Reduction = 'mean' | 'sum' | 'none';

/** Weights from this many elements up go through the small-batch kernel for ≤ 16 rows (see `linear`). */
const SMALL_BATCH_MIN_WEIGHT = 1 << 20;

/**
 * y = x Wᵀ + b. Float32 inference on at most 16 rows with a large weight (a short query through a big model)
 * reads the weight once in place with the fused kernels on; a BLAS call would first copy it into its packed
 * layout, tripling the memory traffic of a bandwidth-bound product.
 */
export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (
    fusedKernelsEnabled() &&
    input.dtype === 'float32' &&
    weight.dtype === 'float32' &&
    weight.numel() >= SMALL_BATCH_MIN_WEIGHT &&
    input.device === 'cpu' &&
    input.dim() >= 1 &&
    input.numel() <= 16 * input.size(-1) &&
    input.numel() > 0 &&
    (bias === null || bias.dtype === 'float32') &&
    !isGradEnabled()
  ) {
    return wrap(native.linearSmallBatch(input.handle, weight.handle, bias?.handle ?? null));
  }
  return wrap(native.linear(input.handle, weight.handle, bias?.handle ?? null));
}

/** Rows of `weight` at `indices`; the row `paddingIdx` (negative counts from the end) gets no gradient. */
export function embedding(indices: Tensor, weight: Tensor, options: { paddingIdx?: number } = {}): Tensor {
  let paddingIdx = options.paddingIdx ?? -1;
  if (options.paddingIdx !== undefined) {
    const rows = weight.size(0);
    if (paddingIdx < -rows || paddingIdx >= rows) {
      throw new RangeError(`embedding: paddingIdx ${paddingIdx} is out of range for ${rows} rows`);
    }
    if (paddingIdx < 0) paddingIdx += rows;
  }
  return wrap(native.embedding(weight.handle, indices.handle, paddingIdx));
}

export function layerNorm(
  input: Tensor,
  normalizedShape: readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return wrap(native.layerNorm(input.handle, [...normalizedShape], weight?.handle ?? null, bias?.handle ?? null, eps));
}

/**
 * RMSNorm over the last dimension, computed as Hugging Face's Qwen2RMSNorm does: in float32, then cast back
 * to the input dtype before the weight multiply. One fused kernel when the fused kernels are on (see
 * torch/fused.ts), otherwise `rmsNormComposed`.
 */
export function rmsNorm(input: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  if (fusedKernelsEnabled() && input.device === 'cpu' && isFusedDtype(input.dtype)) {
    return fusedRmsNorm(input, weight, eps);
  }
  return rmsNormComposed(input, weight, eps);
}

/** rmsNorm composed from bound ops (the reference the fused kernel is checked against). */
export function rmsNormComposed(input: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  return scope(() => {
    const x = input.dtype === 'float32' || input.dtype === 'float64' ? input : input.float();
    const sq = x.square();
    const variance = sq.mean(-1, true);
    sq.dispose(); // a full-size temporary: release it before the next one exists
    let normed = x.mul(variance.add(eps).rsqrt());
    if (normed.dtype !== input.dtype) {
      const cast = normed.to(input.dtype);
      normed.dispose();
      normed = cast;
    }
    if (weight === null) return normed;
    const out = weight.mul(normed);
    normed.dispose();
    return out;
  });
}

export function softmax(input: Tensor, dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
  return input.softmax(dim, options);
}

export function logSoftmax(input: Tensor, dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
  return input.logSoftmax(dim, options);
}

export function relu(input: Tensor): Tensor {
  return input.relu();
}

export function silu(input: Tensor): Tensor {
  return input.silu();
}

/** GELU, exact (`'none'`, default) or the tanh approximation (`'tanh'`, a fused kernel when those are on). */
export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate === 'tanh' && fusedKernelsEnabled() && input.device === 'cpu' && isFusedDtype(input.dtype)) {
    return fusedGeluTanh(input);
  }
  return wrap(native.gelu(input.handle, approximate));
}

/** Dtypes the fused CPU kernels take. */
function isFusedDtype(dtype: string): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16';
}

export function softplus(input: Tensor, beta = 1, threshold = 20): Tensor {
  return wrap(native.softplus(input.handle, beta, threshold));
}

export function logSigmoid(input: Tensor): Tensor {
  return wrap(native.logSigmoid(input.handle));
}

/** Inverted dropout; the identity when `training` is false or p is 0. */
export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout probability must be in [0, 1], got ${p}`);
  return wrap(native.dropout(input.handle, p, training));
}

/**
 * Cross-entropy from logits `(N, C)` or `(N, C, d...)` and class indices, with `ignoreIndex` targets
 * skipped (mean over the rest) and optional label smoothing, as `torch.nn.functional.cross_entropy`.
 */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  options: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return wrap(
    native.crossEntropy(
      input.handle,
      target.handle,
      options.weight?.handle ?? null,
      options.reduction ?? 'mean',
      options.ignoreIndex ?? -100,
      options.labelSmoothing ?? 0,
    ),
  );
}

export function nllLoss(
  input: Tensor,
  target: Tensor,
  options: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number } = {},
): Tensor {
  return wrap(
    native.nllLoss(
      input.handle,
      target.handle,
      options.weight?.handle ?? null,
      options.reduction ?? 'mean',
      options.ignoreIndex ?? -100,
    ),
  );
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return wrap(native.mseLoss(input.handle, target.handle, reduction));
}

export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  options: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  return wrap(
    native.binaryCrossEntropyWithLogits(
      input.handle,
      target.handle,
      options.weight?.handle ?? null,
      options.posWeight?.handle ?? null,
      options.reduction ?? 'mean',
    ),
  );
}

/** `x / max(‖x‖_p, eps)` along `dim`, as torch.nn.functional.normalize. */
export function normalize(input: Tensor, options: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const { p = 2, dim = 1, eps = 1e-12 } = options;
  return scope(() => input.div(input.norm(p, dim, true).clampMin(eps).expandAs(input)));
}

export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return scope(() => {
    const dot = a.mul(b).sum(dim);
    const na = a.norm(2, dim).clampMin(eps);
    const nb = b.norm(2, dim).clampMin(eps);
    return dot.div(na.mul(nb));
  });
}

/** Constant padding; `pad` lists (before, after) pairs starting from the last dimension, as torch. */
export function pad(input: Tensor, padding: readonly number[], value = 0): Tensor {
  return wrap(native.constantPad(input.handle, [...padding], value));
}

export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return wrap(native.oneHot(indices.handle, numClasses));
}

export interface ConvOptions {
  stride?: number | readonly number[];
  padding?: number | readonly number[];
  dilation?: number | readonly number[];
  groups?: number;
}

function tuple(v: number | readonly number[] | undefined, n: number, fallback: number): number[] {
  if (v === undefined) return new Array<number>(n).fill(fallback);
  return typeof v === 'number' ? new Array<number>(n).fill(v) : [...v];
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: ConvOptions = {}): Tensor {
  return wrap(
    native.conv2d(
      input.handle,
      weight.handle,
      bias?.handle ?? null,
      tuple(options.stride, 2, 1),
      tuple(options.padding, 2, 0),
      tuple(options.dilation, 2, 1),
      options.groups ?? 1,
    ),
  );
}

export function conv3d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: ConvOptions = {}): Tensor {
  return wrap(
    native.conv3d(
      input.handle,
      weight.handle,
      bias?.handle ?? null,
      tuple(options.stride, 3, 1),
      tuple(options.padding, 3, 0),
      tuple(options.dilation, 3, 1),
      options.groups ?? 1,
    ),
  );
}

/**
 * Attention `softmax(q kᵀ · scale + mask) v` over the last two dims: q (..., L, E), k (..., S, E), v (..., S, Ev).
 * `attnMask`: bool (true = may attend) or additive float, broadcastable to (..., L, S). `isCausal` masks keys
 * after the query (top-left aligned, as torch). Without a mask or dropout, 4-D inputs (B, H, L, E) run the fused
 * flash kernel when the fused kernels are on; everything else (and `MOCA_FUSED=0`) is composed from bound ops.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { attnMask?: Tensor | null; dropoutP?: number; isCausal?: boolean; scale?: number; training?: boolean } = {},
): Tensor {
  const { attnMask = null, dropoutP = 0, isCausal = false } = options;
  const scale = options.scale ?? 1 / Math.sqrt(q.size(-1));
  const dropout = dropoutP > 0 && (options.training ?? true);
  if (
    attnMask === null &&
    !dropout &&
    fusedKernelsEnabled() &&
    q.dim() === 4 &&
    k.dim() === 4 &&
    v.dim() === 4 &&
    q.device === 'cpu' &&
    isFusedDtype(q.dtype) &&
    (!isCausal || q.size(2) === k.size(2))
  ) {
    return sdpaFlash(q, k, v, scale, isCausal);
  }
  return scaledDotProductAttentionComposed(q, k, v, { ...options, scale });
}

/** (B, H, L, E) attention through the packed flash kernel: each batch row is one segment. */
function sdpaFlash(q: Tensor, k: Tensor, v: Tensor, scale: number, causal: boolean): Tensor {
  return scope(() => {
    const [b, h, l] = q.shape as [number, number, number, number];
    const s = k.size(2);
    // (B, H, L, E) → (B·L, H, E): a free view when q came from (B, L, H, E).transpose(1, 2), as usual.
    const rows = (t: Tensor, len: number) => t.transpose(1, 2).reshape(b * len, t.size(1), t.size(3));
    const segments = Array.from({ length: b }, (_, i) => ({ qStart: i * l, qLen: l, kStart: i * s, kLen: s }));
    const out = flashAttention(rows(q, l), rows(k, s), rows(v, s), segments, { scale, causal });
    return out.view(b, l, h, v.size(3)).transpose(1, 2);
  });
}

/** scaledDotProductAttention composed from bound ops (the reference of the fused path). */
export function scaledDotProductAttentionComposed(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { attnMask?: Tensor | null; dropoutP?: number; isCausal?: boolean; scale?: number; training?: boolean } = {},
): Tensor {
  const { attnMask = null, dropoutP = 0, isCausal = false } = options;
  const scale = options.scale ?? 1 / Math.sqrt(q.size(-1));
  return scope(() => {
    let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
    if (isCausal) {
      const keep = ones([q.size(-2), k.size(-2)], { dtype: 'bool', device: q.device }).tril();
      scores = scores.maskedFill(keep.logicalNot(), -Infinity);
    }
    if (attnMask !== null) {
      scores = attnMask.dtype === 'bool' ? scores.maskedFill(attnMask.logicalNot(), -Infinity) : scores.add(attnMask);
    }
    let attn = scores.softmax(-1);
    if (dropoutP > 0 && (options.training ?? true)) attn = dropout(attn, dropoutP, true);
    return attn.matmul(v);
  });
}

/**
 * Mean cross-entropy of a linear head `hidden · weightᵀ` (no bias) against `labels`, rows labelled `ignoreIndex`
 * skipped: the fused kernel (no full logits; see torch/fused.ts) when the fused kernels are on, otherwise logits
 * then `crossEntropy`. hidden (N, H), weight (V, H), labels (N,).
 */
export function linearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  labels: Tensor,
  options: { ignoreIndex?: number; chunkElements?: number } = {},
): FusedLinearCrossEntropyResult {
  if (fusedKernelsEnabled() && hidden.device === 'cpu' && isFusedDtype(hidden.dtype)) {
    return fusedLinearCrossEntropy(hidden, weight, labels, options);
  }
  return scope(() => {
    const ignoreIndex = options.ignoreIndex ?? -100;
    const logits = hidden.matmul(weight.t()).float();
    const valid = labels.ne(ignoreIndex);
    const rows = valid.sum().item();
    const correct = logits.argmax(1).eq(labels).logicalAnd(valid).sum().item();
    const loss = rows > 0 ? crossEntropy(logits, labels, { ignoreIndex }) : logits.sum().mul(0);
    return { loss, correct, rows };
  });
}

/** Casts to a dtype given by name (helper for mixed-precision code). */
export function cast(input: Tensor, dtype: DTypeLike): Tensor {
  return wrap(native.toDtype(input.handle, dtypeCode(dtype), false));
}
