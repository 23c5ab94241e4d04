/** Element types, named as in PyTorch (`torch.float32` is `'float32'`). */
export type DType =
  'float32' | 'float64' | 'bfloat16' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Accepted spellings: the canonical names plus PyTorch's and the common short aliases. */
export type DTypeLike =
  | DType
  | 'f32'
  | 'float'
  | 'f64'
  | 'double'
  | 'bf16'
  | 'f16'
  | 'half'
  | 'i64'
  | 'long'
  | 'i32'
  | 'int'
  | 'i16'
  | 'short'
  | 'i8'
  | 'u8';

const ALIASES: Record<DTypeLike, DType> = {
  float32: 'float32',
  f32: 'float32',
  float: 'float32',
  float64: 'float64',
  f64: 'float64',
  double: 'float64',
  bfloat16: 'bfloat16',
  bf16: 'bfloat16',
  float16: 'float16',
  f16: 'float16',
  half: 'float16',
  int64: 'int64',
  i64: 'int64',
  long: 'int64',
  int32: 'int32',
  i32: 'int32',
  int: 'int32',
  int16: 'int16',
  i16: 'int16',
  short: 'int16',
  int8: 'int8',
  i8: 'int8',
  uint8: 'uint8',
  u8: 'uint8',
  bool: 'bool',
};

/** libtorch's c10::ScalarType codes. */
const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const BY_CODE = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

const ITEM_SIZE: Record<DType, number> = {
  float32: 4,
  float64: 8,
  bfloat16: 2,
  float16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function toDType(d: DTypeLike | string): DType {
  const canonical = (ALIASES as Record<string, DType | undefined>)[d];
  if (canonical === undefined) {
    throw new TypeError(`unknown dtype '${d}'; expected one of ${Object.keys(CODES).join(', ')}`);
  }
  return canonical;
}

export function dtypeCode(d: DTypeLike): number {
  return CODES[toDType(d)];
}

export function dtypeFromCode(code: number): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) throw new TypeError(`tensor has a dtype (c10 code ${code}) that moca-ts does not support`);
  return d;
}

export function itemSize(d: DTypeLike): number {
  return ITEM_SIZE[toDType(d)];
}

export function isFloatingPoint(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'bfloat16' || d === 'float16';
}

export type TypedArray =
  Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Uint16Array;

/** The dtype a TypedArray's elements are read as when no dtype is given. */
export function dtypeOfTypedArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof BigInt64Array) return 'int64';
  throw new TypeError(
    `cannot infer a dtype from ${a.constructor.name}; pass { dtype } (Uint16Array holds float16/bfloat16 bits)`,
  );
}
