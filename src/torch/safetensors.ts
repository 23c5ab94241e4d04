// safetensors reading (memory-mapped, validated) and atomic writing.
//
// Format: u64 little-endian header length N, N bytes of JSON header
//   { "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {str: str} }
// then the data section; offsets are relative to its start, tensors are row-major little-endian.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

import { type DType, itemSize } from './dtype.js';
import { dtypeCode } from './dtype.js';
import type { NativeMapping } from './native-handles.js';
import { native } from './native.js';
import { Tensor, wrap } from './tensor.js';

const TO_DTYPE: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

const FROM_DTYPE: Record<DType, string> = Object.fromEntries(
  Object.entries(TO_DTYPE).map(([k, v]) => [v, k]),
) as Record<DType, string>;

/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {}

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

/** An open safetensors file. Tensors are views of the memory-mapped file (copy-on-write: never written back). */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private mapping: NativeMapping | null;

  private constructor(
    readonly path: string,
    mapping: NativeMapping,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.mapping = mapping;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(file: string): SafetensorsFile {
    const mapping = native.mmapFile(file);
    const size = native.mappingSize(mapping);
    const fail = (msg: string): never => {
      throw new SafetensorsError(`${file}: ${msg}`);
    };
    if (size < 8) fail(`file is ${size} bytes, too short for a safetensors header length`);
    const lenBytes = native.mappingBytes(mapping, 0, 8);
    const headerLen = Number(lenBytes.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES)
      fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
    if (8 + headerLen > size)
      fail(`header length ${headerLen} runs past the end of the file (${size} bytes): truncated or not safetensors`);
    const headerText = native.mappingBytes(mapping, 8, headerLen).toString('utf8');
    if (!headerText.startsWith('{')) fail('header does not start with "{" (not a safetensors file?)');
    let header: unknown;
    try {
      header = JSON.parse(headerText);
    } catch (e) {
      fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
    const dataStart = 8 + headerLen;
    const dataLen = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail('__metadata__ is not an object');
        for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
          if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        }
        metadata = entry as Record<string, string>;
        continue;
      }
      tensors.set(name, parseEntry(file, name, entry, dataStart, dataLen));
    }
    // The data section must be covered exactly, without overlaps or holes (as the reference validator checks).
    const ranges = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
    let cursor = dataStart;
    for (const [name, info] of ranges) {
      if (info.begin !== cursor) {
        fail(
          info.begin < cursor
            ? `tensor '${name}' overlaps the previous tensor's bytes`
            : `hole in the data section before tensor '${name}' (bytes ${cursor - dataStart}..${info.begin - dataStart})`,
        );
      }
      cursor = info.end;
    }
    if (cursor !== size) fail(`data section has ${size - cursor} trailing bytes not covered by any tensor`);
    return new SafetensorsFile(file, mapping, tensors, metadata);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The tensor `name` as a CPU tensor viewing the mapped file (no copy when aligned). */
  get(name: string): Tensor {
    const info = this.tensors.get(name);
    if (info === undefined) throw new SafetensorsError(`${this.path}: no tensor named '${name}'`);
    if (this.mapping === null) throw new SafetensorsError(`${this.path}: file was closed`);
    return wrap(native.tensorFromMapping(this.mapping, info.begin, info.shape, dtypeCode(info.dtype)));
  }

  /** Drops this object's reference to the mapping; tensors already created keep it alive until disposed. */
  close(): void {
    this.mapping = null;
  }
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number, dataLen: number): TensorInfo {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${file}: tensor '${name}': ${msg}`);
  };
  if (entry === null || typeof entry !== 'object') fail('header entry is not an object');
  const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e.dtype !== 'string') fail('missing "dtype"');
  const dtype = TO_DTYPE[e.dtype as string];
  if (dtype === undefined) {
    fail(`dtype '${String(e.dtype)}' is not supported (supported: ${Object.keys(TO_DTYPE).join(', ')})`);
  }
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail('"shape" must be an array of non-negative integers');
  }
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail('"data_offsets" must be [begin, end] with non-negative integers');
  }
  const [begin, end] = offsets as [number, number];
  const shape = e.shape as number[];
  const expected = shape.reduce((a, b) => a * b, 1) * itemSize(dtype!);
  if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end - begin !== expected) {
    fail(`data_offsets span ${end - begin} bytes but shape [${shape.join(', ')}] of ${e.dtype} needs ${expected}`);
  }
  if (end > dataLen) fail(`data_offsets end at ${end}, past the data section (${dataLen} bytes): truncated file?`);
  return { dtype: dtype!, shape, begin: dataStart + begin, end: dataStart + end };
}

/** Reads every tensor of a safetensors file (memory-mapped CPU tensors). */
export function loadSafetensors(file: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.keys().map((k) => [k, f.get(k)]));
  } finally {
    f.close();
  }
}

/** Writes `path` via a temporary file, fsync and rename: readers see the old file or the whole new one. */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  try {
    const dirFd = openSync(path.dirname(file), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is still atomic.
  }
}

/**
 * Writes tensors (any device and dtype of the supported set) to a safetensors file atomically. Tensors are
 * laid out by decreasing element size, then name, so every tensor is aligned to its element size.
 */
export function saveSafetensors(
  file: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError(`${file}: '__metadata__' cannot be a tensor name`);
    if (t.isDisposed) throw new SafetensorsError(`${file}: tensor '${name}' has been disposed`);
  }
  entries.sort((a, b) => itemSize(b[1].dtype) - itemSize(a[1].dtype) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const n = t.numel() * itemSize(t.dtype);
    header[name] = { dtype: FROM_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  const rawLen = Buffer.byteLength(json);
  json += ' '.repeat((8 - ((8 + rawLen) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const lenBytes = Buffer.alloc(8);
  lenBytes.writeBigUInt64LE(BigInt(headerBytes.length));
  writeFileAtomic(file, (fd) => {
    writeSync(fd, lenBytes);
    writeSync(fd, headerBytes);
    for (const [, t] of entries) native.writeTensorToFd(t.handle, fd);
  });
}
