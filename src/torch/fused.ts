// Fused CPU kernels with their own backward (native/src/fused_*.cc), and the switch that chooses them.
//
// Each fused op computes what a chain of bound ops computes (the composed versions stay in functional.ts and
// the models, and the tests compare the two), in one pass forward and one pass backward, with fewer
// full-size temporaries kept for backward. The switch defaults to on; `MOCA_FUSED=0` in the environment or
// `setFusedKernels(false)` selects the composed path everywhere (parity checks, debugging).
import { native } from './native.js';
import { Tensor, wrap } from './tensor.js';
import { tensor } from './creation.js';

let fusedEnabled = process.env.MOCA_FUSED !== '0';

/** Whether the models and functionals use the fused kernels. */
export function fusedKernelsEnabled(): boolean {
  return fusedEnabled;
}

/** Turns the fused kernels on or off process-wide; returns the previous setting. */
export function setFusedKernels(enabled: boolean): boolean {
  const previous = fusedEnabled;
  fusedEnabled = enabled;
  return previous;
}

/** Runs `fn` with the fused kernels switched on or off (restored afterwards; synchronous `fn` only). */
export function withFusedKernels<T>(enabled: boolean, fn: () => T): T {
  const previous = setFusedKernels(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('withFusedKernels: fn must be synchronous');
    return result;
  } finally {
    setFusedKernels(previous);
  }
}

/** Name of the active kernel table: `avx512` or `generic` (`MOCA_KERNELS=generic` forces the latter). */
export function fusedKernelsName(): string {
  return native.fusedKernelsName();
}

/**
 * One attention segment: queries [qStart, qStart + qLen) attend keys [kStart, kStart + kLen) of the packed
 * q / k tensors and nothing else.
 */
export interface AttentionSegment {
  qStart: number;
  qLen: number;
  kStart: number;
  kLen: number;
}

/** The (S, 4) int64 tensor flashAttention takes, from segment records. */
export function attentionSegments(segments: readonly AttentionSegment[]): Tensor {
  const data = new Int32Array(segments.length * 4);
  segments.forEach((s, i) => data.set([s.qStart, s.qLen, s.kStart, s.kLen], i * 4));
  return tensor(data, { shape: [segments.length, 4], dtype: 'int64' });
}

/** Segments of sequences packed back to back (queries and keys alike), from their lengths. */
export function packedSegments(lengths: readonly number[]): AttentionSegment[] {
  let start = 0;
  return lengths.map((len) => {
    const s = { qStart: start, qLen: len, kStart: start, kLen: len };
    start += len;
    return s;
  });
}

/**
 * Attention over packed variable-length segments: q (Nq, Hq, D), k (Nk, Hkv, D), v (Nk, Hkv, Dv), Hq a multiple
 * of Hkv (grouped-query attention, no repeated K/V). Each segment's queries attend only its keys (with
 * `causal`, query i of a segment attends keys j ≤ i); masked positions are never computed. Softmax in float32
 * (float64 for float64 inputs). Returns (Nq, Hq, Dv); query rows outside every segment are 0. Differentiable in
 * q, k and v.
 */
export function flashAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  segments: Tensor | readonly AttentionSegment[],
  options: { scale?: number; causal?: boolean } = {},
): Tensor {
  const scale = options.scale ?? 1 / Math.sqrt(q.size(-1));
  if (segments instanceof Tensor) {
    return wrap(native.flashAttention(q.handle, k.handle, v.handle, segments.handle, scale, options.causal ?? false));
  }
  const seg = attentionSegments(segments);
  try {
    return wrap(native.flashAttention(q.handle, k.handle, v.handle, seg.handle, scale, options.causal ?? false));
  } finally {
    seg.dispose();
  }
}

/** RMSNorm over the last dim with Qwen2RMSNorm's semantics (see F.rmsNorm), fused forward and backward. */
export function fusedRmsNorm(input: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  return wrap(native.fusedRmsNorm(input.handle, weight?.handle ?? null, eps));
}

/**
 * Rotary position embedding `x·cos + rotate_half(x)·sin` for x (rows, heads, headDim) with cos / sin
 * (rows, headDim) — one row of angles per token, so RoPE, M-RoPE and the vision tower's 2-D RoPE all apply.
 * Computed in float32 and rounded to x's dtype. Differentiable in x (cos / sin are constants).
 */
export function fusedRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return wrap(native.fusedRotary(x.handle, cos.handle, sin.handle));
}

/** silu(gate) · up (SwiGLU's gating), fused forward and backward. */
export function fusedSiluMul(gate: Tensor, up: Tensor): Tensor {
  return wrap(native.fusedSiluMul(gate.handle, up.handle));
}

/** gate ← silu(gate) · up in place (inference: one intermediate-size buffer less); gate must be contiguous. */
export function fusedSiluMul_(gate: Tensor, up: Tensor): Tensor {
  native.fusedSiluMul_(gate.handle, up.handle);
  return gate;
}

/** GELU with the tanh approximation, fused forward and backward. */
export function fusedGeluTanh(input: Tensor): Tensor {
  return wrap(native.fusedGeluTanh(input.handle));
}

export interface FusedLinearCrossEntropyResult {
  /** Mean cross-entropy over the counted rows (0-d float32; float64 for float64 inputs); 0 when none. */
  loss: Tensor;
  /** Counted rows whose argmax equals the label. */
  correct: number;
  /** Rows counted (label ≠ ignoreIndex). */
  rows: number;
}

/**
 * Mean over rows of −log softmax(hidden · weightᵀ)[label] without materialising the logits: hidden (N, H),
 * weight (V, H), labels (N,) int64; rows labelled `ignoreIndex` are skipped. `chunkElements` bounds one block of
 * logits (rows × vocabulary chunk). Differentiable in hidden and weight.
 */
export function fusedLinearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  labels: Tensor,
  options: { ignoreIndex?: number; chunkElements?: number } = {},
): FusedLinearCrossEntropyResult {
  const [loss, correct, rows] = native
    .fusedLinearCrossEntropy(
      hidden.handle,
      weight.handle,
      labels.handle,
      options.ignoreIndex ?? -100,
      options.chunkElements ?? 8 * 1024 * 1024,
    )
    .map(wrap) as [Tensor, Tensor, Tensor];
  try {
    return { loss, correct: correct.item(), rows: rows.item() };
  } finally {
    correct.dispose();
    rows.dispose();
  }
}
