// Approximate comparison of tensors (or nested arrays) against hand-derived expected values.
import assert from 'node:assert/strict';

import { Tensor } from '../../src/torch/index.js';

/** Nested arrays of numbers or booleans (booleans compare as 1/0). */
export type Nested = number | boolean | readonly Nested[];

export interface Tolerance {
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Relative tolerance, scaled by |expected| (default 1e-5). */
  rtol?: number;
}

export interface Mismatch {
  /** Row-major position. */
  flat: number;
  /** Multi-dimensional index. */
  index: number[];
  actual: number;
  expected: number;
}

/** Shape of a nested array; throws on ragged input. */
export function shapeOf(value: Nested): number[] {
  const shape: number[] = [];
  let level: Nested = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = (level as readonly Nested[])[0]!;
  }
  // Validate by flattening.
  flatten(value, shape);
  return shape;
}

function flatten(value: Nested, shape: readonly number[]): number[] {
  const out: number[] = [];
  const walk = (v: Nested, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new TypeError('assertClose: ragged nested array (too deep)');
      out.push(typeof v === 'boolean' ? (v ? 1 : 0) : (v as number));
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new TypeError(`assertClose: ragged nested array at depth ${depth}`);
    }
    for (const x of v as readonly Nested[]) walk(x, depth + 1);
  };
  walk(value, 0);
  return out;
}

/** Row-major flat position → multi-dimensional index. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length).fill(0);
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    index[d] = n === 0 ? 0 : rest % n;
    rest = n === 0 ? 0 : Math.floor(rest / n);
  }
  return index;
}

/** true when `a` is within tolerance of `e` (NaN matches NaN, infinities must match exactly). */
export function isClose(a: number, e: number, atol: number, rtol: number): boolean {
  if (Number.isNaN(e) || Number.isNaN(a)) return Number.isNaN(e) && Number.isNaN(a);
  if (!Number.isFinite(e) || !Number.isFinite(a)) return a === e;
  return Math.abs(a - e) <= atol + rtol * Math.abs(e);
}

/** Every position where `actual` and `expected` (same length) differ beyond the tolerance. */
export function findMismatches(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  shape: readonly number[],
  tol: Tolerance = {},
): Mismatch[] {
  const { atol = 1e-6, rtol = 1e-5 } = tol;
  if (actual.length !== expected.length) {
    throw new RangeError(`findMismatches: lengths differ (${actual.length} vs ${expected.length})`);
  }
  const out: Mismatch[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!isClose(a, e, atol, rtol)) out.push({ flat: i, index: unravel(i, shape), actual: a, expected: e });
  }
  return out;
}

function valuesOf(actual: Tensor | Nested): { shape: number[]; values: number[] } {
  if (actual instanceof Tensor) return { shape: [...actual.shape], values: actual.toArray() };
  const shape = shapeOf(actual);
  return { shape, values: flatten(actual, shape) };
}

function describeMismatches(mismatches: readonly Mismatch[], total: number, tol: Required<Tolerance>): string {
  const shown = mismatches
    .slice(0, 5)
    .map(
      (m) =>
        `  at [${m.index.join(', ')}] (flat ${m.flat}): actual ${m.actual}, expected ${m.expected}` +
        ` (|diff| ${Math.abs(m.actual - m.expected).toExponential(3)})`,
    )
    .join('\n');
  const more = mismatches.length > 5 ? `\n  ... and ${mismatches.length - 5} more` : '';
  return `${mismatches.length} of ${total} elements differ (atol ${tol.atol}, rtol ${tol.rtol}):\n${shown}${more}`;
}

/**
 * Asserts that `actual` (a Tensor or nested arrays) has the shape of `expected` and values within
 * `atol + rtol * |expected|` of it. A 0-d tensor matches a plain number.
 */
export function assertClose(actual: Tensor | Nested, expected: Nested, tol: Tolerance = {}, message?: string): void {
  const full: Required<Tolerance> = { atol: tol.atol ?? 1e-6, rtol: tol.rtol ?? 1e-5 };
  const a = valuesOf(actual);
  const eShape = shapeOf(expected);
  const prefix = message === undefined ? '' : `${message}: `;
  if (a.shape.length !== eShape.length || a.shape.some((n, i) => n !== eShape[i])) {
    assert.fail(`${prefix}shape mismatch: actual [${a.shape.join(', ')}], expected [${eShape.join(', ')}]`);
  }
  const e = flatten(expected, eShape);
  const mismatches = findMismatches(a.values, e, eShape, full);
  if (mismatches.length > 0) assert.fail(`${prefix}${describeMismatches(mismatches, e.length, full)}`);
}

/** Exact comparison (atol = rtol = 0), also checking the dtype when given. */
export function assertValues(actual: Tensor, expected: Nested, dtype?: string, message?: string): void {
  if (dtype !== undefined) {
    assert.equal(actual.dtype, dtype, `${message === undefined ? '' : `${message}: `}dtype`);
  }
  assertClose(actual, expected, { atol: 0, rtol: 0 }, message);
}
