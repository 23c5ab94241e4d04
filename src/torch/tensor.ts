// The Tensor class: a thin owner of one native handle, with PyTorch's method names in camelCase
// (in-place methods keep PyTorch's trailing underscore: `add_`, `zero_`).
import { type DType, type DTypeLike, dtypeCode, dtypeFromCode, isFloatingPoint, toDType } from './dtype.js';
import type { NativeTensor } from './native-handles.js';
import { native } from './native.js';
import { setResourcePredicate, setScopeHooks, trackResource } from './scope.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;
export type Dims = number | readonly number[];
export type DeviceLike = string;

/** A basic-indexing slice, `start:end:step` in Python. */
export interface Slice {
  readonly kind: 'slice';
  readonly start: number | null;
  readonly end: number | null;
  readonly step: number;
}

/** `slice(1, 3)` is Python's `1:3`; `slice()` is `:`. */
export function slice(start: number | null = null, end: number | null = null, step = 1): Slice {
  if (!Number.isInteger(step) || step <= 0) throw new RangeError(`slice step must be a positive integer, got ${step}`);
  return { kind: 'slice', start, end, step };
}

/**
 * One indexing term of `tensor.index(...)`: a number selects (removing the dimension), a `slice()` (or a
 * string like `':'`, `'1:'`, `'::2'`) slices, `'...'` stands for the remaining dimensions, `null` inserts a new
 * axis (Python's `None`), and an int64 or bool Tensor is an advanced index.
 */
export type IndexTerm = number | Slice | string | null | Tensor;

function parseSliceString(s: string): Slice | '...' {
  if (s === '...') return '...';
  const parts = s.split(':');
  if (parts.length < 2 || parts.length > 3) throw new TypeError(`invalid index term '${s}'`);
  const num = (p: string | undefined): number | null => {
    if (p === undefined || p.trim() === '') return null;
    const n = Number(p);
    if (!Number.isInteger(n)) throw new TypeError(`invalid index term '${s}'`);
    return n;
  };
  return slice(num(parts[0]), num(parts[1]), num(parts[2]) ?? 1);
}

function dimsArray(d: Dims): number[] {
  return typeof d === 'number' ? [d] : [...d];
}

/** A libtorch tensor. Dispose it (or create it inside `scope()`) to free its memory deterministically. */
export class Tensor {
  private h: NativeTensor | null;
  private kept = false;
  private cachedShape: number[] | undefined;
  private cachedDtype: DType | undefined;

  /** Wraps a native handle; takes ownership of it. */
  constructor(handle: NativeTensor) {
    this.h = handle;
    trackResource(this);
  }

  /** The native handle (throws if disposed). */
  get handle(): NativeTensor {
    if (this.h === null) throw new Error('Tensor has been disposed');
    return this.h;
  }

  // ---------------------------------------------------------------------------------------------- lifetime

  /** Releases this handle's reference to the tensor's memory. Idempotent. */
  dispose(): void {
    if (this.h !== null) {
      native.dispose(this.h);
      this.h = null;
    }
  }

  get isDisposed(): boolean {
    return this.h === null;
  }

  get isKept(): boolean {
    return this.kept;
  }

  /** Exempts this tensor from every enclosing `scope()`; it lives until `dispose()` or garbage collection. */
  keep(): this {
    this.kept = true;
    return this;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---------------------------------------------------------------------------------------------- metadata

  get shape(): readonly number[] {
    this.cachedShape ??= native.sizes(this.handle);
    return this.cachedShape;
  }

  /** `size()` is the shape; `size(d)` one dimension (negative counts from the end). */
  size(): readonly number[];
  size(dim: number): number;
  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    const d = dim < 0 ? dim + this.ndim : dim;
    const s = this.shape[d];
    if (s === undefined) throw new RangeError(`size(${dim}): dimension out of range for a ${this.ndim}-D tensor`);
    return s;
  }

  get ndim(): number {
    return this.shape.length;
  }

  dim(): number {
    return this.ndim;
  }

  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get dtype(): DType {
    this.cachedDtype ??= dtypeFromCode(native.scalarType(this.handle));
    return this.cachedDtype;
  }

  get device(): string {
    return native.device(this.handle);
  }

  stride(): number[] {
    return native.strides(this.handle);
  }

  isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }

  elementSize(): number {
    return native.elementSize(this.handle);
  }

  /** true when both tensors view the same memory. */
  sharesStorageWith(other: Tensor): boolean {
    return native.sharesStorage(this.handle, other.handle);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})\n${native.toString(this.handle)}`;
  }

  // ---------------------------------------------------------------------------------------------- data out

  /** The value of a one-element tensor. */
  item(): number {
    return native.item(this.handle);
  }

  /**
   * A copy of the elements in row-major order. float16/bfloat16 are widened to Float32Array, bool is a
   * Uint8Array of 0/1, int64 a BigInt64Array.
   */
  toTypedArray(): Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array {
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') {
      const f = this.to('float32');
      try {
        return f.toTypedArray();
      } finally {
        f.dispose();
      }
    }
    const buf = native.toBuffer(this.handle);
    // Copy into a fresh, aligned ArrayBuffer (Node Buffers may sit at unaligned offsets of a shared pool).
    const bytes = new Uint8Array(buf.byteLength);
    bytes.set(buf);
    switch (dt) {
      case 'float32':
        return new Float32Array(bytes.buffer);
      case 'float64':
        return new Float64Array(bytes.buffer);
      case 'int32':
        return new Int32Array(bytes.buffer);
      case 'int16':
        return new Int16Array(bytes.buffer);
      case 'int8':
        return new Int8Array(bytes.buffer);
      case 'int64':
        return new BigInt64Array(bytes.buffer);
      default:
        return bytes;
    }
  }

  /** The raw little-endian bytes of the elements, row-major (what safetensors stores). */
  toBytes(): Buffer {
    return native.toBuffer(this.handle);
  }

  /** The elements as a flat array of numbers (int64 beyond 2^53 loses precision). */
  toArray(): number[] {
    const a = this.toTypedArray();
    if (a instanceof BigInt64Array) return Array.from(a, (x) => Number(x));
    return Array.from(a as ArrayLike<number>);
  }

  /** Nested arrays, like PyTorch's `tolist()` (booleans for bool tensors). */
  tolist(): unknown {
    const flat: unknown[] = this.dtype === 'bool' ? this.toArray().map((x) => x !== 0) : this.toArray();
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    let pos = 0;
    const build = (d: number): unknown[] => {
      const n = shape[d]!;
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = d === shape.length - 1 ? flat[pos++] : build(d + 1);
      return out;
    };
    return build(0);
  }

  // ---------------------------------------------------------------------------------------------- conversion

  /** `to('float32')`, `to('cuda')`, `to({ dtype, device, copy })`. Returns `this`'s data when nothing changes
   * (a new handle to the same memory, as PyTorch returns self). */
  to(target: DTypeLike | DeviceLike | { dtype?: DTypeLike; device?: DeviceLike; copy?: boolean }): Tensor {
    if (typeof target === 'string') {
      if (isDeviceString(target)) return wrap(native.toDevice(this.handle, target, dtypeCode(this.dtype), false));
      return wrap(native.toDtype(this.handle, dtypeCode(toDType(target)), false));
    }
    const dtype = target.dtype === undefined ? this.dtype : toDType(target.dtype);
    const device = target.device ?? this.device;
    return wrap(native.toDevice(this.handle, device, dtypeCode(dtype), target.copy ?? false));
  }

  float(): Tensor {
    return this.to('float32');
  }

  double(): Tensor {
    return this.to('float64');
  }

  half(): Tensor {
    return this.to('float16');
  }

  bfloat16(): Tensor {
    return this.to('bfloat16');
  }

  long(): Tensor {
    return this.to('int64');
  }

  int(): Tensor {
    return this.to('int32');
  }

  bool(): Tensor {
    return this.to('bool');
  }

  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }

  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }

  clone(): Tensor {
    return wrap(native.clone(this.handle));
  }

  contiguous(): Tensor {
    return wrap(native.contiguous(this.handle));
  }

  /** A view of the same bytes read as another dtype of the same size (`Tensor.view(dtype)`). */
  viewAs(dtype: DTypeLike): Tensor {
    return wrap(native.viewDtype(this.handle, dtypeCode(dtype)));
  }

  // ---------------------------------------------------------------------------------------------- autograd

  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }

  requiresGrad_(requiresGrad = true): this {
    native.requiresGrad_(this.handle, requiresGrad);
    return this;
  }

  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }

  /** Name of the autograd node that produced this tensor ('' for leaves). */
  get gradFn(): string {
    return native.gradFnName(this.handle);
  }

  /** The accumulated gradient (a new handle to it each time: dispose it when done), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle) as NativeTensor | null;
    return g === null ? null : wrap(g);
  }

  set grad(value: Tensor | null) {
    native.setGrad(this.handle, value === null ? null : value.handle);
  }

  retainGrad(): this {
    native.retainGrad(this.handle);
    return this;
  }

  detach(): Tensor {
    return wrap(native.detach(this.handle));
  }

  /** PyTorch's `t.data = newData`: this tensor (same autograd identity) now holds `newData`'s storage. */
  setData_(newData: Tensor): this {
    native.setData(this.handle, newData.handle);
    this.cachedShape = undefined;
    this.cachedDtype = undefined;
    return this;
  }

  detach_(): this {
    native.detach_(this.handle);
    return this;
  }

  /** Back-propagates from this tensor; `gradient` is required unless it has one element. As in PyTorch,
   * `retainGraph` defaults to `createGraph`. */
  backward(gradient?: Tensor | null, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    const create = options.createGraph ?? false;
    native.backward(this.handle, gradient ? gradient.handle : null, options.retainGraph ?? create, create);
  }

  // ---------------------------------------------------------------------------------------------- arithmetic

  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor
      ? wrap(native.add(this.handle, other.handle, alpha))
      : wrap(native.addScalar(this.handle, other, alpha));
  }

  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor
      ? wrap(native.sub(this.handle, other.handle, alpha))
      : wrap(native.subScalar(this.handle, other, alpha));
  }

  /** `other - this`. */
  rsub(other: Scalar): Tensor {
    return wrap(native.rsubScalar(this.handle, other));
  }

  mul(other: TensorOrScalar): Tensor {
    return binary(this, other, native.mul, native.mulScalar);
  }

  /** True division, or `roundingMode` 'trunc' / 'floor' as in `torch.div`. */
  div(other: TensorOrScalar, options: { roundingMode?: 'trunc' | 'floor' } = {}): Tensor {
    if (options.roundingMode !== undefined) {
      const o = toTensorLike(other, this);
      try {
        return wrap(native.divMode(this.handle, o.handle, options.roundingMode));
      } finally {
        if (o !== other) o.dispose();
      }
    }
    return binary(this, other, native.div, native.divScalar);
  }

  remainder(other: TensorOrScalar): Tensor {
    return binary(this, other, native.remainder, native.remainderScalar);
  }

  fmod(other: TensorOrScalar): Tensor {
    return binary(this, other, native.fmod, native.fmodScalar);
  }

  pow(exponent: TensorOrScalar): Tensor {
    return binary(this, exponent, native.pow, native.powScalar);
  }

  maximum(other: Tensor): Tensor {
    return wrap(native.maximum(this.handle, other.handle));
  }

  minimum(other: Tensor): Tensor {
    return wrap(native.minimum(this.handle, other.handle));
  }

  clamp(min: number | null = null, max: number | null = null): Tensor {
    return wrap(native.clamp(this.handle, min, max));
  }

  clampMin(min: number): Tensor {
    return this.clamp(min, null);
  }

  clampMax(max: number): Tensor {
    return this.clamp(null, max);
  }

  neg(): Tensor {
    return wrap(native.neg(this.handle));
  }

  abs(): Tensor {
    return wrap(native.abs(this.handle));
  }

  exp(): Tensor {
    return wrap(native.exp(this.handle));
  }

  expm1(): Tensor {
    return wrap(native.expm1(this.handle));
  }

  log(): Tensor {
    return wrap(native.log(this.handle));
  }

  log1p(): Tensor {
    return wrap(native.log1p(this.handle));
  }

  log2(): Tensor {
    return wrap(native.log2(this.handle));
  }

  sqrt(): Tensor {
    return wrap(native.sqrt(this.handle));
  }

  rsqrt(): Tensor {
    return wrap(native.rsqrt(this.handle));
  }

  square(): Tensor {
    return wrap(native.square(this.handle));
  }

  reciprocal(): Tensor {
    return wrap(native.reciprocal(this.handle));
  }

  sin(): Tensor {
    return wrap(native.sin(this.handle));
  }

  cos(): Tensor {
    return wrap(native.cos(this.handle));
  }

  tanh(): Tensor {
    return wrap(native.tanh(this.handle));
  }

  sigmoid(): Tensor {
    return wrap(native.sigmoid(this.handle));
  }

  erf(): Tensor {
    return wrap(native.erf(this.handle));
  }

  sign(): Tensor {
    return wrap(native.sign(this.handle));
  }

  floor(): Tensor {
    return wrap(native.floor(this.handle));
  }

  ceil(): Tensor {
    return wrap(native.ceil(this.handle));
  }

  round(): Tensor {
    return wrap(native.round(this.handle));
  }

  trunc(): Tensor {
    return wrap(native.trunc(this.handle));
  }

  relu(): Tensor {
    return wrap(native.relu(this.handle));
  }

  silu(): Tensor {
    return wrap(native.silu(this.handle));
  }

  lerp(end: Tensor, weight: number): Tensor {
    return wrap(native.lerp(this.handle, end.handle, weight));
  }

  addcmul(tensor1: Tensor, tensor2: Tensor, value = 1): Tensor {
    return wrap(native.addcmul(this.handle, tensor1.handle, tensor2.handle, value));
  }

  addcdiv(tensor1: Tensor, tensor2: Tensor, value = 1): Tensor {
    return wrap(native.addcdiv(this.handle, tensor1.handle, tensor2.handle, value));
  }

  matmul(other: Tensor): Tensor {
    return wrap(native.matmul(this.handle, other.handle));
  }

  mm(other: Tensor): Tensor {
    return wrap(native.mm(this.handle, other.handle));
  }

  bmm(other: Tensor): Tensor {
    return wrap(native.bmm(this.handle, other.handle));
  }

  dot(other: Tensor): Tensor {
    return wrap(native.dot(this.handle, other.handle));
  }

  outer(other: Tensor): Tensor {
    return wrap(native.outer(this.handle, other.handle));
  }

  // ---------------------------------------------------------------------------------------------- comparison

  eq(other: TensorOrScalar): Tensor {
    return binary(this, other, native.eq, native.eqScalar);
  }

  ne(other: TensorOrScalar): Tensor {
    return binary(this, other, native.ne, native.neScalar);
  }

  lt(other: TensorOrScalar): Tensor {
    return binary(this, other, native.lt, native.ltScalar);
  }

  le(other: TensorOrScalar): Tensor {
    return binary(this, other, native.le, native.leScalar);
  }

  gt(other: TensorOrScalar): Tensor {
    return binary(this, other, native.gt, native.gtScalar);
  }

  ge(other: TensorOrScalar): Tensor {
    return binary(this, other, native.ge, native.geScalar);
  }

  logicalAnd(other: Tensor): Tensor {
    return wrap(native.logicalAnd(this.handle, other.handle));
  }

  logicalOr(other: Tensor): Tensor {
    return wrap(native.logicalOr(this.handle, other.handle));
  }

  logicalXor(other: Tensor): Tensor {
    return wrap(native.logicalXor(this.handle, other.handle));
  }

  logicalNot(): Tensor {
    return wrap(native.logicalNot(this.handle));
  }

  isnan(): Tensor {
    return wrap(native.isnan(this.handle));
  }

  isinf(): Tensor {
    return wrap(native.isinf(this.handle));
  }

  isfinite(): Tensor {
    return wrap(native.isfinite(this.handle));
  }

  /** Same shape and elements. */
  equal(other: Tensor): boolean {
    return native.equal(this.handle, other.handle);
  }

  allclose(other: Tensor, options: { rtol?: number; atol?: number; equalNan?: boolean } = {}): boolean {
    return native.allclose(
      this.handle,
      other.handle,
      options.rtol ?? 1e-5,
      options.atol ?? 1e-8,
      options.equalNan ?? false,
    );
  }

  // ---------------------------------------------------------------------------------------------- reductions

  sum(dim?: Dims | null, keepdim = false, options: { dtype?: DTypeLike } = {}): Tensor {
    const dims = dim === undefined || dim === null ? null : dimsArray(dim);
    return wrap(native.sum(this.handle, dims, keepdim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  mean(dim?: Dims | null, keepdim = false, options: { dtype?: DTypeLike } = {}): Tensor {
    const dims = dim === undefined || dim === null ? null : dimsArray(dim);
    return wrap(native.mean(this.handle, dims, keepdim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  prod(dim?: number | null, keepdim = false): Tensor {
    return wrap(native.prod(this.handle, dim ?? null, keepdim, null));
  }

  /** Variance with Bessel's correction by default (`correction: 1`), as `torch.var`. */
  var(dim?: Dims | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    const dims = dim === undefined || dim === null ? null : dimsArray(dim);
    return wrap(native.var(this.handle, dims, options.correction ?? 1, options.keepdim ?? false));
  }

  std(dim?: Dims | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    const dims = dim === undefined || dim === null ? null : dimsArray(dim);
    return wrap(native.std(this.handle, dims, options.correction ?? 1, options.keepdim ?? false));
  }

  /** p-norm over all elements or over `dim`. */
  norm(p: number = 2, dim?: Dims | null, keepdim = false): Tensor {
    const dims = dim === undefined || dim === null ? null : dimsArray(dim);
    return wrap(native.norm(this.handle, p, dims, keepdim));
  }

  /** `max()` over all elements. */
  max(): Tensor;
  /** `max(dim)`: values and indices along `dim`. */
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(native.maxAll(this.handle));
    const [v, i] = native.maxDim(this.handle, dim, keepdim);
    return { values: wrap(v), indices: wrap(i) };
  }

  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(native.minAll(this.handle));
    const [v, i] = native.minDim(this.handle, dim, keepdim);
    return { values: wrap(v), indices: wrap(i) };
  }

  amax(dim: Dims, keepdim = false): Tensor {
    return wrap(native.amax(this.handle, dimsArray(dim), keepdim));
  }

  amin(dim: Dims, keepdim = false): Tensor {
    return wrap(native.amin(this.handle, dimsArray(dim), keepdim));
  }

  argmax(dim: number | null = null, keepdim = false): Tensor {
    return wrap(native.argmax(this.handle, dim, keepdim));
  }

  argmin(dim: number | null = null, keepdim = false): Tensor {
    return wrap(native.argmin(this.handle, dim, keepdim));
  }

  logsumexp(dim: Dims, keepdim = false): Tensor {
    return wrap(native.logsumexp(this.handle, dimsArray(dim), keepdim));
  }

  all(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? wrap(native.all(this.handle)) : wrap(native.allDim(this.handle, dim, keepdim));
  }

  any(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? wrap(native.any(this.handle)) : wrap(native.anyDim(this.handle, dim, keepdim));
  }

  cumsum(dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
    return wrap(native.cumsum(this.handle, dim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  cumprod(dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
    return wrap(native.cumprod(this.handle, dim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  countNonzero(dim: number | null = null): Tensor {
    return wrap(native.countNonzero(this.handle, dim));
  }

  softmax(dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
    return wrap(native.softmax(this.handle, dim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  logSoftmax(dim: number, options: { dtype?: DTypeLike } = {}): Tensor {
    return wrap(native.logSoftmax(this.handle, dim, options.dtype ? dtypeCode(options.dtype) : null));
  }

  // ---------------------------------------------------------------------------------------------- shape

  view(...shape: number[]): Tensor {
    return wrap(native.view(this.handle, shape));
  }

  reshape(...shape: number[]): Tensor {
    return wrap(native.reshape(this.handle, shape));
  }

  permute(...dims: number[]): Tensor {
    return wrap(native.permute(this.handle, dims));
  }

  transpose(dim0: number, dim1: number): Tensor {
    return wrap(native.transpose(this.handle, dim0, dim1));
  }

  /** `Tensor.t()`: transpose of a 2-D tensor, the tensor itself (a new handle) for 0-D and 1-D, and the last two
   * dimensions swapped for higher ranks (like `mT`). */
  t(): Tensor {
    return this.ndim < 2 ? wrap(native.alias(this.handle)) : this.transpose(-2, -1);
  }

  unsqueeze(dim: number): Tensor {
    return wrap(native.unsqueeze(this.handle, dim));
  }

  squeeze(dim?: number): Tensor {
    return wrap(native.squeeze(this.handle, dim ?? null));
  }

  expand(...shape: number[]): Tensor {
    return wrap(native.expand(this.handle, shape));
  }

  expandAs(other: Tensor): Tensor {
    return this.expand(...other.shape);
  }

  repeat(...repeats: number[]): Tensor {
    return wrap(native.repeat(this.handle, repeats));
  }

  repeatInterleave(repeats: number | Tensor, dim: number | null = null): Tensor {
    return repeats instanceof Tensor
      ? wrap(native.repeatInterleaveTensor(this.handle, repeats.handle, dim))
      : wrap(native.repeatInterleave(this.handle, repeats, dim));
  }

  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(native.flatten(this.handle, startDim, endDim));
  }

  unflatten(dim: number, sizes: readonly number[]): Tensor {
    return wrap(native.unflatten(this.handle, dim, [...sizes]));
  }

  /** Pieces of `size` (a number) or of the given sizes along `dim`. */
  split(size: number | readonly number[], dim = 0): Tensor[] {
    const hs =
      typeof size === 'number'
        ? native.split(this.handle, size, dim)
        : native.splitWithSizes(this.handle, [...size], dim);
    return hs.map(wrap);
  }

  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.handle, chunks, dim).map(wrap);
  }

  unbind(dim = 0): Tensor[] {
    return native.unbind(this.handle, dim).map(wrap);
  }

  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(native.narrow(this.handle, dim, start, length));
  }

  /** Python's `t[:, start:end:step]` on one dimension. */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return wrap(native.slice(this.handle, dim, start, end, step));
  }

  select(dim: number, index: number): Tensor {
    return wrap(native.select(this.handle, dim, index));
  }

  flip(dims: Dims): Tensor {
    return wrap(native.flip(this.handle, dimsArray(dims)));
  }

  roll(shifts: Dims, dims: Dims): Tensor {
    return wrap(native.roll(this.handle, dimsArray(shifts), dimsArray(dims)));
  }

  tril(diagonal = 0): Tensor {
    return wrap(native.tril(this.handle, diagonal));
  }

  triu(diagonal = 0): Tensor {
    return wrap(native.triu(this.handle, diagonal));
  }

  diagonal(offset = 0, dim1 = 0, dim2 = 1): Tensor {
    return wrap(native.diagonal(this.handle, offset, dim1, dim2));
  }

  /**
   * Python-style indexing: `x.index(0, ':', idx)` is `x[0, :, idx]`; see `IndexTerm`. Basic terms give views;
   * tensor terms give a copy (advanced indexing), exactly as PyTorch.
   */
  index(...terms: IndexTerm[]): Tensor {
    const parsed = terms.map((t) => (typeof t === 'string' ? parseSliceString(t) : t));
    const consumed = parsed.reduce<number>((n, t) => {
      if (t === '...' || t === null) return n;
      if (t instanceof Tensor) return n + (t.dtype === 'bool' ? t.ndim : 1);
      return n + 1;
    }, 0);
    const ellipses = parsed.filter((t) => t === '...').length;
    if (ellipses > 1) throw new TypeError('index: at most one ellipsis (...) is allowed');
    if (consumed > this.ndim) {
      throw new RangeError(`index: too many indices (${consumed}) for a ${this.ndim}-D tensor`);
    }
    const temps: Tensor[] = [];
    let current: Tensor = this;
    // One entry per dimension-consuming term of the *current* tensor, as libtorch's index() expects.
    const list: (Tensor | null)[] = [];
    let dim = 0;
    try {
      for (const term of parsed) {
        let next: Tensor | undefined;
        if (term === '...') {
          const skip = this.ndim - consumed;
          for (let i = 0; i < skip; i++) list.push(null);
          dim += skip;
        } else if (term === null) {
          next = current.unsqueeze(dim);
          list.push(null);
          dim += 1;
        } else if (typeof term === 'number') {
          next = current.select(dim, term);
        } else if (term instanceof Tensor) {
          list.push(term);
          dim += term.dtype === 'bool' ? term.ndim : 1;
        } else {
          next = current.slice(dim, term.start, term.end, term.step);
          list.push(null);
          dim += 1;
        }
        if (next !== undefined) {
          if (current !== this) temps.push(current);
          current = next;
        }
      }
      if (list.some((a) => a !== null)) {
        while (list.length > 0 && list[list.length - 1] === null) list.pop();
        const result = wrap(
          native.index(
            current.handle,
            list.map((a) => (a === null ? null : a.handle)),
          ),
        );
        if (current !== this) temps.push(current);
        return result;
      }
      return current === this ? wrap(native.alias(this.handle)) : current;
    } finally {
      for (const t of temps) t.dispose();
    }
  }

  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(native.indexSelect(this.handle, dim, index.handle));
  }

  gather(dim: number, index: Tensor): Tensor {
    return wrap(native.gather(this.handle, dim, index.handle));
  }

  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return src instanceof Tensor
      ? wrap(native.scatter(this.handle, dim, index.handle, src.handle))
      : wrap(native.scatterScalar(this.handle, dim, index.handle, src));
  }

  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(native.scatterAdd(this.handle, dim, index.handle, src.handle));
  }

  indexAdd(dim: number, index: Tensor, source: Tensor, alpha = 1): Tensor {
    return wrap(native.indexAdd(this.handle, dim, index.handle, source.handle, alpha));
  }

  /** `torch.index_put` (out of place): indices per leading dimension, null for "all". */
  indexPut(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
    return wrap(
      native.indexPut(
        this.handle,
        indices.map((i) => (i === null ? null : i.handle)),
        values.handle,
        accumulate,
      ),
    );
  }

  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return value instanceof Tensor
      ? wrap(native.maskedFillTensor(this.handle, mask.handle, value.handle))
      : wrap(native.maskedFill(this.handle, mask.handle, value));
  }

  maskedScatter(mask: Tensor, source: Tensor): Tensor {
    return wrap(native.maskedScatter(this.handle, mask.handle, source.handle));
  }

  maskedSelect(mask: Tensor): Tensor {
    return wrap(native.maskedSelect(this.handle, mask.handle));
  }

  nonzero(): Tensor {
    return wrap(native.nonzero(this.handle));
  }

  sort(dim = -1, options: { descending?: boolean; stable?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [v, i] = native.sort(this.handle, dim, options.descending ?? false, options.stable ?? false);
    return { values: wrap(v), indices: wrap(i) };
  }

  argsort(dim = -1, options: { descending?: boolean; stable?: boolean } = {}): Tensor {
    return wrap(native.argsort(this.handle, dim, options.descending ?? false, options.stable ?? false));
  }

  topk(
    k: number,
    dim = -1,
    options: { largest?: boolean; sorted?: boolean } = {},
  ): { values: Tensor; indices: Tensor } {
    const [v, i] = native.topk(this.handle, k, dim, options.largest ?? true, options.sorted ?? true);
    return { values: wrap(v), indices: wrap(i) };
  }

  // ---------------------------------------------------------------------------------------------- in place

  add_(other: TensorOrScalar, alpha: number = 1): this {
    if (other instanceof Tensor) native.add_(this.handle, other.handle, alpha);
    else native.addScalar_(this.handle, other, alpha);
    return this;
  }

  sub_(other: Tensor, alpha: number = 1): this {
    native.sub_(this.handle, other.handle, alpha);
    return this;
  }

  mul_(other: TensorOrScalar): this {
    if (other instanceof Tensor) native.mul_(this.handle, other.handle);
    else native.mulScalar_(this.handle, other);
    return this;
  }

  div_(other: TensorOrScalar): this {
    if (other instanceof Tensor) native.div_(this.handle, other.handle);
    else native.divScalar_(this.handle, other);
    return this;
  }

  addcmul_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    native.addcmul_(this.handle, tensor1.handle, tensor2.handle, value);
    return this;
  }

  addcdiv_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    native.addcdiv_(this.handle, tensor1.handle, tensor2.handle, value);
    return this;
  }

  lerp_(end: Tensor, weight: number): this {
    native.lerp_(this.handle, end.handle, weight);
    return this;
  }

  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }

  zero_(): this {
    native.zero_(this.handle);
    return this;
  }

  fill_(value: Scalar): this {
    native.fill_(this.handle, value);
    return this;
  }

  clamp_(min: number | null = null, max: number | null = null): this {
    native.clamp_(this.handle, min, max);
    return this;
  }

  sqrt_(): this {
    native.sqrt_(this.handle);
    return this;
  }

  neg_(): this {
    native.neg_(this.handle);
    return this;
  }

  exp_(): this {
    native.exp_(this.handle);
    return this;
  }

  maskedFill_(mask: Tensor, value: Scalar): this {
    native.maskedFill_(this.handle, mask.handle, value);
    return this;
  }

  indexPut_(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): this {
    native.indexPut_(
      this.handle,
      indices.map((i) => (i === null ? null : i.handle)),
      values.handle,
      accumulate,
    );
    return this;
  }

  indexFill_(dim: number, index: Tensor, value: Scalar): this {
    native.indexFill_(this.handle, dim, index.handle, value);
    return this;
  }

  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }

  uniform_(from = 0, to = 1): this {
    native.uniform_(this.handle, from, to);
    return this;
  }

  bernoulli_(p: number): this {
    native.bernoulli_(this.handle, p);
    return this;
  }
}

export function wrap(h: NativeTensor): Tensor {
  return new Tensor(h);
}

export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

setResourcePredicate(isTensor);
setScopeHooks(
  () => native.beginDeferExternalMemory(),
  () => native.endDeferExternalMemory(),
);

function isDeviceString(s: string): boolean {
  return s === 'cpu' || s === 'cuda' || s === 'meta' || s.startsWith('cuda:') || s.startsWith('cpu:');
}

/** A scalar as a 0-d tensor matching `like`'s device (for ops that have no scalar overload). */
function toTensorLike(v: TensorOrScalar, like: Tensor): Tensor {
  if (v instanceof Tensor) return v;
  // A 0-d tensor only takes part in type promotion by category, like PyTorch's wrapped numbers: it keeps the
  // other operand's dtype when it is of the same kind, else takes the default dtype of its own kind.
  let dtype: DType;
  if (typeof v === 'boolean') dtype = 'bool';
  else if (isFloatingPoint(like.dtype)) dtype = like.dtype;
  else if (!Number.isInteger(v)) dtype = 'float32';
  else dtype = like.dtype === 'bool' ? 'int64' : like.dtype;
  return wrap(native.scalarTensor(v, dtypeCode(dtype), like.device));
}

function binary(
  a: Tensor,
  b: TensorOrScalar,
  tt: (x: NativeTensor, y: NativeTensor) => NativeTensor,
  ts: (x: NativeTensor, y: Scalar) => NativeTensor,
): Tensor {
  return b instanceof Tensor ? wrap(tt(a.handle, b.handle)) : wrap(ts(a.handle, b));
}
