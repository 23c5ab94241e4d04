// Tensor factories and free functions over several tensors (torch.cat, torch.where, ...).
import { type DType, type DTypeLike, dtypeCode, dtypeOfTypedArray, itemSize, toDType } from './dtype.js';
import { native } from './native.js';
import { type Scalar, Tensor, wrap } from './tensor.js';

export interface TensorOptions {
  dtype?: DTypeLike;
  device?: string;
  requiresGrad?: boolean;
}

/** Nested arrays of numbers or booleans. */
export type NestedArray = number | boolean | readonly NestedArray[];

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

function dev(options: TensorOptions): string {
  return options.device ?? 'cpu';
}

function dt(options: TensorOptions, fallback: DType = 'float32'): number {
  return dtypeCode(options.dtype ?? fallback);
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = (level as readonly NestedArray[])[0]!;
  }
  return shape;
}

function flattenInto(data: NestedArray, shape: readonly number[], depth: number, out: (number | boolean)[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError('tensor(): ragged nested array (too deep at some position)');
    out.push(data as number | boolean);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(
      `tensor(): ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${Array.isArray(data) ? data.length : 'a scalar'}`,
    );
  }
  for (const d of data as readonly NestedArray[]) flattenInto(d, shape, depth + 1, out);
}

function encode(values: readonly (number | boolean)[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values, Number);
    case 'float64':
      return Float64Array.from(values, Number);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(Math.trunc(Number(v))));
    case 'int32':
      return Int32Array.from(values, Number);
    case 'int16':
      return Int16Array.from(values, Number);
    case 'int8':
      return Int8Array.from(values, Number);
    case 'uint8':
      return Uint8Array.from(values, Number);
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    case 'float16':
    case 'bfloat16':
      return Float32Array.from(values, Number);
  }
}

/**
 * `torch.tensor`: from a number, boolean, nested arrays or a TypedArray (1-D unless `shape` is given).
 * The dtype is inferred as PyTorch does (booleans → bool, integers and booleans → int64, anything else —
 * fractions, or integers beyond ±2^53 — → float32) unless given; a TypedArray's values are converted to
 * `dtype` when it differs from the array's own element type. A Uint16Array with dtype float16/bfloat16 holds the
 * raw bit patterns. For raw bytes of any dtype use `fromBytes`.
 */
export function tensor(
  data: NestedArray | ArrayBufferView,
  options: TensorOptions & { shape?: readonly number[] } = {},
): Tensor {
  if (ArrayBuffer.isView(data)) {
    const target = options.dtype ? toDType(options.dtype) : dtypeOfTypedArray(data);
    const rawHalf = data instanceof Uint16Array && (target === 'float16' || target === 'bfloat16');
    const source = rawHalf ? target : dtypeOfTypedArray(data);
    const count = data.byteLength / itemSize(source);
    let t = wrap(native.fromBuffer(data, options.shape ? [...options.shape] : [count], dtypeCode(source)));
    if (source !== target || dev(options) !== 'cpu') {
      const moved = t.to({ dtype: target, device: dev(options) });
      t.dispose();
      t = moved;
    }
    return finish(t, options);
  }
  const shape = inferShape(data);
  const flat: (number | boolean)[] = [];
  flattenInto(data, shape, 0, flat);
  let dtype: DType;
  if (options.dtype) dtype = toDType(options.dtype);
  else if (flat.length > 0 && flat.every((v) => typeof v === 'boolean')) dtype = 'bool';
  else if (flat.length > 0 && flat.every((v) => typeof v === 'boolean' || Number.isSafeInteger(v))) dtype = 'int64';
  else dtype = 'float32';
  const finalShape = options.shape ? [...options.shape] : shape;
  const staged = dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype;
  let t = wrap(native.fromBuffer(encode(flat, dtype), finalShape, dtypeCode(staged)));
  if (staged !== dtype || dev(options) !== 'cpu') {
    const moved = t.to({ dtype, device: dev(options) });
    t.dispose();
    t = moved;
  }
  return finish(t, options);
}

/** A tensor whose elements are the given little-endian bytes read as `dtype` (e.g. bytes from a file). */
export function fromBytes(bytes: ArrayBufferView, shape: readonly number[], dtype: DTypeLike): Tensor {
  return wrap(native.fromBuffer(bytes, [...shape], dtypeCode(dtype)));
}

export function empty(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(wrap(native.empty([...shape], dt(options), dev(options))), options);
}

export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(wrap(native.zeros([...shape], dt(options), dev(options))), options);
}

export function ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(wrap(native.ones([...shape], dt(options), dev(options))), options);
}

/** dtype defaults to the value's kind, as torch.full: bool, int64 for integers, float32 otherwise. */
export function full(shape: readonly number[], value: Scalar, options: TensorOptions = {}): Tensor {
  const fallback: DType = typeof value === 'boolean' ? 'bool' : Number.isInteger(value) ? 'int64' : 'float32';
  return finish(wrap(native.full([...shape], value, dt(options, fallback), dev(options))), options);
}

export function zerosLike(t: Tensor): Tensor {
  return wrap(native.zerosLike(t.handle));
}

export function onesLike(t: Tensor): Tensor {
  return wrap(native.onesLike(t.handle));
}

export function emptyLike(t: Tensor): Tensor {
  return wrap(native.emptyLike(t.handle));
}

export function fullLike(t: Tensor, value: Scalar): Tensor {
  return wrap(native.fullLike(t.handle, value));
}

/** `arange(end)` or `arange(start, end, step)`; int64 when all bounds are integers, else float32. */
export function arange(startOrEnd: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  const fallback: DType = [s, e, step].every(Number.isInteger) ? 'int64' : 'float32';
  return finish(wrap(native.arange(s, e, step, dt(options, fallback), dev(options))), options);
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return finish(wrap(native.linspace(start, end, steps, dt(options), dev(options))), options);
}

export function eye(n: number, m = n, options: TensorOptions = {}): Tensor {
  return finish(wrap(native.eye(n, m, dt(options), dev(options))), options);
}

/** A 0-d tensor. */
export function scalarTensor(value: Scalar, options: TensorOptions = {}): Tensor {
  const fallback: DType = typeof value === 'boolean' ? 'bool' : 'float32';
  return finish(wrap(native.scalarTensor(value, dt(options, fallback), dev(options))), options);
}

// ------------------------------------------------------------------------------------------------ random

/** Seeds the default generators (CPU and every CUDA device), like `torch.manual_seed`. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** The CPU generator's state, for checkpoints (restore with setRngState). */
export function getRngState(): Tensor {
  return wrap(native.getRngState());
}

export function setRngState(state: Tensor): void {
  native.setRngState(state.handle);
}

export function randn(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(wrap(native.randn([...shape], dt(options), dev(options))), options);
}

export function rand(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(wrap(native.rand([...shape], dt(options), dev(options))), options);
}

/** Integers uniformly in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], options: TensorOptions = {}): Tensor {
  return wrap(native.randint(low, high, [...shape], dt(options, 'int64'), dev(options)));
}

export function randperm(n: number, options: TensorOptions = {}): Tensor {
  return wrap(native.randperm(n, dt(options, 'int64'), dev(options)));
}

/** Samples 0/1 with the probabilities in `p` (a tensor), or with a fixed `p` in the shape of `like`. */
export function bernoulli(p: Tensor): Tensor;
export function bernoulli(like: Tensor, p: number): Tensor;
export function bernoulli(t: Tensor, p?: number): Tensor {
  return p === undefined ? wrap(native.bernoulli(t.handle)) : wrap(native.bernoulliScalar(t.handle, p));
}

export function multinomial(probs: Tensor, numSamples: number, replacement = false): Tensor {
  return wrap(native.multinomial(probs.handle, numSamples, replacement));
}

// ------------------------------------------------------------------------------------------------ free functions

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(
    native.cat(
      tensors.map((t) => t.handle),
      dim,
    ),
  );
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(
    native.stack(
      tensors.map((t) => t.handle),
      dim,
    ),
  );
}

/** Elementwise `condition ? a : b` with broadcasting. */
export function where(condition: Tensor, a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return wrap(native.where(condition.handle, a.handle, b.handle));
  if (a instanceof Tensor) return wrap(native.whereScalarOther(condition.handle, a.handle, b as Scalar));
  if (b instanceof Tensor) return wrap(native.whereScalarSelf(condition.handle, a, b.handle));
  throw new TypeError('where: at least one of a and b must be a Tensor');
}

export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return wrap(
    native.einsum(
      equation,
      operands.map((t) => t.handle),
    ),
  );
}

/** `base ** exponent` elementwise for a scalar base (`torch.pow(number, tensor)`). */
export function powScalarBase(base: number, exponent: Tensor): Tensor {
  return wrap(native.powScalarBase(base, exponent.handle));
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}

export function searchsorted(sortedSequence: Tensor, values: Tensor, options: { right?: boolean } = {}): Tensor {
  return wrap(native.searchsorted(sortedSequence.handle, values.handle, options.right ?? false));
}

export function unique(t: Tensor, options: { sorted?: boolean } = {}): { values: Tensor; inverse: Tensor } {
  const [v, i] = native.unique(t.handle, options.sorted ?? true, true);
  return { values: wrap(v), inverse: wrap(i) };
}

export function bincount(t: Tensor, options: { weights?: Tensor; minlength?: number } = {}): Tensor {
  return wrap(native.bincount(t.handle, options.weights?.handle ?? null, options.minlength ?? 0));
}
