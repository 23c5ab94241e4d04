// Elementwise math, broadcasting, dtype promotion, reductions, matrix products and in-place ops,
// against values derived by hand or computed in plain JS.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { assertClose, assertValues } from '../helpers/assert-close.js';

const scoped = (fn: () => void) => () => torch.scope(fn);
const f32 = (x: number[]) => x.map(Math.fround);

/** erf by its Maclaurin series (accurate to ~1e-13 for |x| <= 3). */
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('arithmetic', () => {
  test(
    'add / sub / mul / div with tensors, scalars and alpha',
    scoped(() => {
      const a = torch
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .float();
      const b = torch
        .tensor([
          [10, 20],
          [30, 40],
        ])
        .float();
      assertValues(a.add(b), [
        [11, 22],
        [33, 44],
      ]);
      assertValues(a.add(b, 2), [
        [21, 42],
        [63, 84],
      ]);
      assertValues(b.sub(a), [
        [9, 18],
        [27, 36],
      ]);
      assertValues(b.sub(a, 3), [
        [7, 14],
        [21, 28],
      ]);
      assertValues(a.mul(b), [
        [10, 40],
        [90, 160],
      ]);
      assertValues(b.div(a), [
        [10, 10],
        [10, 10],
      ]);
      assertValues(a.add(0.5), [
        [1.5, 2.5],
        [3.5, 4.5],
      ]);
      assertValues(a.add(1, 3), [
        [4, 5],
        [6, 7],
      ]);
      assertValues(a.sub(1), [
        [0, 1],
        [2, 3],
      ]);
      assertValues(a.rsub(10), [
        [9, 8],
        [7, 6],
      ]);
      assertValues(a.mul(-2), [
        [-2, -4],
        [-6, -8],
      ]);
      assertClose(a.div(3), [f32([1 / 3, 2 / 3]), f32([1, 4 / 3])]);
      assertValues(a.neg(), [
        [-1, -2],
        [-3, -4],
      ]);
      assertValues(torch.tensor([1, -4]).float().div(0), [Infinity, -Infinity]);
    }),
  );

  test(
    'div rounding modes on negative numbers',
    scoped(() => {
      const ints = torch.tensor([-7, -5, 5, 7]);
      assertValues(ints.div(2, { roundingMode: 'trunc' }), [-3, -2, 2, 3], 'int64');
      assertValues(ints.div(2, { roundingMode: 'floor' }), [-4, -3, 2, 3], 'int64');
      assertValues(ints.div(2), [-3.5, -2.5, 2.5, 3.5], 'float32');
      const neg = torch.tensor([-2, -2, -2, -2]);
      assertValues(ints.div(neg, { roundingMode: 'trunc' }), [3, 2, -2, -3], 'int64');
      assertValues(ints.div(neg, { roundingMode: 'floor' }), [3, 2, -3, -4], 'int64');
      const fl = torch.tensor([-7.5, 7.5, -0.5]);
      assertValues(fl.div(2, { roundingMode: 'trunc' }), [-3, 3, -0], 'float32');
      assertValues(fl.div(2, { roundingMode: 'floor' }), [-4, 3, -1], 'float32');
      assertValues(fl.div(-2, { roundingMode: 'floor' }), [3, -4, 0], 'float32');
      // A fractional scalar divisor makes an integer tensor float.
      assertValues(ints.div(2.5, { roundingMode: 'floor' }), [-3, -2, 2, 2], 'float32');
    }),
  );

  test(
    'div rounding modes on a bool tensor with an integer scalar promote to int64',
    scoped(() => {
      assertValues(torch.tensor([true, false]).div(2, { roundingMode: 'floor' }), [0, 0], 'int64');
    }),
  );

  test(
    'pow',
    scoped(() => {
      const x = torch.tensor([1, 2, 3]).float();
      assertValues(x.pow(2), [1, 4, 9]);
      assertValues(x.pow(-1), f32([1, 0.5, 1 / 3]));
      assertValues(torch.tensor([4, 9]).float().pow(0.5), [2, 3]);
      assertValues(
        torch
          .tensor([3, 16])
          .float()
          .pow(torch.tensor([2, 0.5])),
        [9, 4],
      );
      assertValues(torch.tensor([2, 3]).pow(3), [8, 27], 'int64');
      assertValues(
        torch
          .tensor([-8])
          .float()
          .pow(1 / 3),
        [NaN],
      );
    }),
  );

  test(
    'remainder takes the sign of the divisor, fmod of the dividend',
    scoped(() => {
      const a = torch.tensor([-7, 7, -7, 7]);
      const b = torch.tensor([3, -3, -3, 3]);
      assertValues(a.remainder(b), [2, -2, -1, 1], 'int64');
      assertValues(a.fmod(b), [-1, 1, -1, 1], 'int64');
      assertValues(a.remainder(3), [2, 1, 2, 1]);
      assertValues(a.fmod(3), [-1, 1, -1, 1]);
      assertValues(a.remainder(-3), [-1, -2, -1, -2]);
      const f = torch.tensor([-5.5, 5.5]);
      assertValues(f.remainder(2), [0.5, 1.5]);
      assertValues(f.fmod(2), [-1.5, 1.5]);
      assertValues(f.remainder(-2), [-1.5, -0.5]);
      assertValues(f.fmod(-2), [-1.5, 1.5]);
      assertValues(torch.tensor([-7, 7]).remainder(2.5), [0.5, 2], 'float32');
    }),
  );

  test(
    'unary functions match Math.*',
    scoped(() => {
      const xs = f32([-2.5, -1, -0.3, 0, 0.2, 1, 1.7, 3]);
      const pos = f32([0.01, 0.5, 1, 2, 10, 1000]);
      const x = torch.tensor(xs);
      const p = torch.tensor(pos);
      const tol = { atol: 1e-6, rtol: 1e-5 };
      assertClose(x.exp(), xs.map(Math.exp), tol, 'exp');
      assertClose(x.expm1(), xs.map(Math.expm1), tol, 'expm1');
      assertClose(p.log(), pos.map(Math.log), tol, 'log');
      assertClose(p.log1p(), pos.map(Math.log1p), tol, 'log1p');
      assertClose(p.log2(), pos.map(Math.log2), tol, 'log2');
      assertClose(p.sqrt(), pos.map(Math.sqrt), tol, 'sqrt');
      assertClose(
        p.rsqrt(),
        pos.map((v) => 1 / Math.sqrt(v)),
        tol,
        'rsqrt',
      );
      assertClose(x.abs(), xs.map(Math.abs), { atol: 0, rtol: 0 }, 'abs');
      assertClose(
        x.square(),
        xs.map((v) => v * v),
        tol,
        'square',
      );
      assertClose(
        p.reciprocal(),
        pos.map((v) => 1 / v),
        tol,
        'reciprocal',
      );
      assertClose(x.tanh(), xs.map(Math.tanh), tol, 'tanh');
      assertClose(
        x.sigmoid(),
        xs.map((v) => 1 / (1 + Math.exp(-v))),
        tol,
        'sigmoid',
      );
      assertClose(x.erf(), xs.map(erf), tol, 'erf');
      assertClose(x.sin(), xs.map(Math.sin), tol, 'sin');
      assertClose(x.cos(), xs.map(Math.cos), tol, 'cos');
      assertClose(x.sign(), xs.map(Math.sign), { atol: 0, rtol: 0 }, 'sign');
      assertClose(
        x.relu(),
        xs.map((v) => Math.max(v, 0)),
        { atol: 0, rtol: 0 },
        'relu',
      );
      assertClose(
        x.silu(),
        xs.map((v) => v / (1 + Math.exp(-v))),
        tol,
        'silu',
      );
      assertValues(torch.tensor([-1.5, -0.5, 0.5, 1.5, 2.5]).floor(), [-2, -1, 0, 1, 2]);
      assertValues(torch.tensor([-1.5, -0.5, 0.5, 1.5, 2.5]).ceil(), [-1, -0, 1, 2, 3]);
      // round: half to even, as torch.
      assertValues(torch.tensor([-1.5, -0.5, 0.5, 1.5, 2.5]).round(), [-2, -0, 0, 2, 2]);
      assertValues(torch.tensor([-1.7, -0.5, 0.5, 1.7]).trunc(), [-1, -0, 0, 1]);
      assertValues(torch.tensor([0, -1]).float().log(), [-Infinity, NaN]);
      assertValues(torch.tensor([-1]).float().sqrt(), [NaN]);
    }),
  );

  test(
    'float64 unary ops are exact to double precision',
    scoped(() => {
      const xs = [-2.5, -0.3, 0.2, 1.7];
      const x = torch.tensor(Float64Array.from(xs));
      const tol = { atol: 1e-15, rtol: 1e-14 };
      assertClose(x.exp(), xs.map(Math.exp), tol, 'exp');
      assertClose(x.tanh(), xs.map(Math.tanh), tol, 'tanh');
      assertClose(x.erf(), xs.map(erf), { atol: 1e-13, rtol: 1e-13 }, 'erf');
    }),
  );

  test(
    'clamp',
    scoped(() => {
      const x = torch.tensor([-2, -0.5, 0.5, 2]);
      assertValues(x.clamp(-1, 1), [-1, -0.5, 0.5, 1]);
      assertValues(x.clampMin(0), [0, 0, 0.5, 2]);
      assertValues(x.clampMax(0), [-2, -0.5, 0, 0]);
      assertValues(x.clamp(null, -1), [-2, -1, -1, -1]);
      assert.throws(() => x.clamp(), /At least one of 'min' or 'max'/);
      assertValues(torch.tensor([-7, 0, 7]).clamp(-2, 3), [-2, 0, 3], 'int64');
      assertValues(x.maximum(torch.tensor([0, 0, 1, 1])), [0, 0, 1, 2]);
      assertValues(x.minimum(torch.tensor([0, 0, 1, 1])), [-2, -0.5, 0.5, 1]);
    }),
  );

  test(
    'lerp / addcmul / addcdiv',
    scoped(() => {
      const a = torch.tensor([1, 2, 3]).float();
      const b = torch.tensor([5, 6, 11]).float();
      assertValues(a.lerp(b, 0.25), [2, 3, 5]);
      assertValues(a.addcmul(b, torch.tensor([1, 0.5, 2]), 2), [11, 8, 47]);
      assertValues(a.addcdiv(b, torch.tensor([5, 2, 0.5]), 0.5), [1.5, 3.5, 14]);
    }),
  );
});

describe('comparison and logic', () => {
  test(
    'comparisons give bool tensors',
    scoped(() => {
      const a = torch.tensor([1, 2, 3]);
      const b = torch.tensor([3, 2, 1]);
      assertValues(a.eq(b), [false, true, false], 'bool');
      assertValues(a.ne(b), [true, false, true], 'bool');
      assertValues(a.lt(b), [true, false, false], 'bool');
      assertValues(a.le(b), [true, true, false], 'bool');
      assertValues(a.gt(b), [false, false, true], 'bool');
      assertValues(a.ge(b), [false, true, true], 'bool');
      assertValues(a.gt(1.5), [false, true, true], 'bool');
      assertValues(a.eq(2), [false, true, false], 'bool');
      assertValues(torch.tensor([NaN, 1]).eq(torch.tensor([NaN, 1])), [false, true]);
      assertValues(torch.tensor([NaN, Infinity, 1]).isnan(), [true, false, false]);
      assertValues(torch.tensor([NaN, -Infinity, 1]).isinf(), [false, true, false]);
      assertValues(torch.tensor([NaN, -Infinity, 1]).isfinite(), [false, false, true]);
      assert.equal(a.equal(torch.tensor([1, 2, 3])), true);
      assert.equal(a.equal(b), false);
      assert.equal(
        torch
          .tensor([1, 2])
          .float()
          .allclose(torch.tensor([1.000001, 2])),
        true,
      );
      assert.equal(
        torch
          .tensor([1, 2])
          .float()
          .allclose(torch.tensor([1.1, 2])),
        false,
      );
      assert.equal(
        torch
          .tensor([1, 2])
          .float()
          .allclose(torch.tensor([1.1, 2]), { atol: 0.2 }),
        true,
      );
    }),
  );

  test(
    'logical ops',
    scoped(() => {
      const p = torch.tensor([true, true, false, false]);
      const q = torch.tensor([true, false, true, false]);
      assertValues(p.logicalAnd(q), [true, false, false, false], 'bool');
      assertValues(p.logicalOr(q), [true, true, true, false], 'bool');
      assertValues(p.logicalXor(q), [false, true, true, false], 'bool');
      assertValues(p.logicalNot(), [false, false, true, true], 'bool');
      // Non-zero numbers are true.
      assertValues(torch.tensor([0, 2, -1]).logicalNot(), [true, false, false], 'bool');
      assertValues(torch.tensor([0, 0.5]).logicalAnd(torch.tensor([3, 3])), [false, true], 'bool');
      assert.equal(p.all().item(), 0);
      assert.equal(p.any().item(), 1);
      assertValues(
        torch
          .tensor([
            [true, false],
            [true, true],
          ])
          .all(1),
        [false, true],
      );
      assertValues(
        torch
          .tensor([
            [true, false],
            [false, false],
          ])
          .any(0, true),
        [[true, false]],
      );
    }),
  );

  test(
    'where with tensors and scalars',
    scoped(() => {
      const c = torch.tensor([true, false, true]);
      assertValues(torch.where(c, torch.tensor([1, 2, 3]), torch.tensor([-1, -2, -3])), [1, -2, 3], 'int64');
      assertValues(torch.where(c, torch.tensor([1.5, 2, 3]), 0), [1.5, 0, 3], 'float32');
      assertValues(torch.where(c, -1, torch.tensor([1, 2, 3])), [-1, 2, -1], 'int64');
      // int tensor with a fractional scalar promotes to float32.
      assertValues(torch.where(c, torch.tensor([1, 2, 3]), 2.5), [1, 2.5, 3], 'float32');
      // Broadcast (2,1) condition against (3,) values.
      const c2 = torch.tensor([[true], [false]]);
      assertValues(torch.where(c2, torch.tensor([1, 2, 3]), torch.tensor([7])), [
        [1, 2, 3],
        [7, 7, 7],
      ]);
      assert.throws(() => torch.where(c, 1, 2), TypeError);
    }),
  );
});

describe('broadcasting', () => {
  test(
    '(3,1) + (1,4) → (3,4)',
    scoped(() => {
      const a = torch.tensor([[0], [10], [20]]);
      const b = torch.tensor([[1, 2, 3, 4]]);
      const expected = [0, 10, 20].map((r) => [1, 2, 3, 4].map((c) => r + c));
      assertValues(a.add(b), expected, 'int64');
      assertValues(
        b.sub(a),
        [0, 10, 20].map((r) => [1, 2, 3, 4].map((c) => c - r)),
      );
    }),
  );

  test(
    '(2,3) op (3,) and (2,1,3) * (4,1)',
    scoped(() => {
      const a = torch
        .tensor([
          [1, 2, 3],
          [4, 5, 6],
        ])
        .float();
      const v = torch.tensor([10, 100, 1000]).float();
      assertValues(a.mul(v), [
        [10, 200, 3000],
        [40, 500, 6000],
      ]);
      assertValues(a.add(v), [
        [11, 102, 1003],
        [14, 105, 1006],
      ]);
      const x = torch.arange(6).reshape(2, 1, 3);
      const y = torch.tensor([[1], [2], [3], [4]]);
      const r = x.mul(y);
      assert.deepEqual(r.shape, [2, 4, 3]);
      const expected = [0, 1].map((i) => [1, 2, 3, 4].map((m) => [0, 1, 2].map((k) => (3 * i + k) * m)));
      assertValues(r, expected);
    }),
  );

  test(
    'scalars and 0-d tensors broadcast everywhere',
    scoped(() => {
      const a = torch.tensor([
        [1, 2],
        [3, 4],
      ]);
      assertValues(a.mul(torch.tensor(3)), [
        [3, 6],
        [9, 12],
      ]);
      assertValues(torch.tensor(3).sub(a), [
        [2, 1],
        [0, -1],
      ]);
      assertValues(a.gt(torch.tensor(2)), [
        [false, false],
        [true, true],
      ]);
    }),
  );

  test('incompatible shapes throw', () => {
    torch.scope(() => {
      assert.throws(() => torch.ones([2, 3]).add(torch.ones([4])), /size of tensor a \(3\) must match/);
    });
  });
});

describe('dtype promotion', () => {
  const cases: [string, () => torch.Tensor, torch.DType][] = [
    ['int64 + float32 → float32', () => torch.tensor([1, 2]).add(torch.tensor([0.5, 1])), 'float32'],
    ['int32 + int64 → int64', () => torch.tensor([1, 2], { dtype: 'int32' }).add(torch.tensor([1, 2])), 'int64'],
    ['bool + int64 → int64', () => torch.tensor([true, false]).add(torch.tensor([1, 2])), 'int64'],
    ['bool + 1 → int64', () => torch.tensor([true, false]).add(1), 'int64'],
    ['int64 + 2.5 → float32', () => torch.tensor([1, 2]).add(2.5), 'float32'],
    ['int64 * 2 → int64', () => torch.tensor([1, 2]).mul(2), 'int64'],
    ['int32 * 2 → int32 (a scalar does not widen)', () => torch.tensor([1, 2], { dtype: 'i32' }).mul(2), 'int32'],
    [
      'uint8 + int8 → int16',
      () => torch.tensor([1, 2], { dtype: 'u8' }).add(torch.tensor([1, 2], { dtype: 'i8' })),
      'int16',
    ],
    [
      'bfloat16 + float32 → float32',
      () => torch.tensor([1, 2], { dtype: 'bf16' }).add(torch.tensor([0.5, 1])),
      'float32',
    ],
    [
      'float16 * bfloat16 → float32',
      () => torch.tensor([1, 2], { dtype: 'f16' }).mul(torch.tensor([3, 4], { dtype: 'bf16' })),
      'float32',
    ],
    [
      '0-d float64 + float32 → float32',
      () => torch.scalarTensor(1, { dtype: 'float64' }).add(torch.tensor([1.5, 2.5])),
      'float32',
    ],
    [
      'float16 + 0-d float32 → float16',
      () => torch.tensor([1, 2], { dtype: 'f16' }).add(torch.scalarTensor(0.5)),
      'float16',
    ],
    [
      '0-d float32 + int64 → float32 (category wins)',
      () => torch.tensor([1, 2]).add(torch.scalarTensor(0.5)),
      'float32',
    ],
    ['int64 / int64 → float32', () => torch.tensor([1, 2]).div(torch.tensor([2, 4])), 'float32'],
    ['int64 / 2 → float32', () => torch.tensor([1, 3]).div(2), 'float32'],
    ['float64 + float32 → float64', () => torch.tensor([1.5], { dtype: 'f64' }).add(torch.tensor([1.5])), 'float64'],
    ['bfloat16 * 2.5 → bfloat16', () => torch.tensor([1, 2], { dtype: 'bf16' }).mul(2.5), 'bfloat16'],
    ['bool & bool stays bool', () => torch.tensor([true]).add(torch.tensor([true])), 'bool'],
  ];
  for (const [name, make, dtype] of cases) {
    test(
      name,
      scoped(() => {
        assert.equal(make().dtype, dtype);
      }),
    );
  }

  test(
    'promoted values are correct',
    scoped(() => {
      assertValues(torch.tensor([1, 2]).add(torch.tensor([0.5, 1])), [1.5, 3]);
      assertValues(torch.tensor([true, false]).add(torch.tensor([1, 2])), [2, 2]);
      assertValues(torch.tensor([1, 2]).add(2.5), [3.5, 4.5]);
      assertValues(torch.tensor([1, 2], { dtype: 'u8' }).sub(torch.tensor([3, 1], { dtype: 'i8' })), [-2, 1], 'int16');
      assertValues(torch.tensor([1, 2], { dtype: 'f16' }).mul(torch.tensor([3, 4], { dtype: 'bf16' })), [3, 8]);
      assertValues(torch.tensor([1, 2]).div(torch.tensor([2, 4])), [0.5, 0.5]);
      // The 0-d float64 operand is rounded into float32: 0.1 + 0 is float32(0.1).
      assertValues(torch.scalarTensor(0.1, { dtype: 'float64' }).add(torch.zeros([1])), [Math.fround(0.1)]);
      // bf16 result rounds: 1 · 1.00390625 → 1 in bf16.
      assertValues(torch.tensor([1], { dtype: 'bf16' }).mul(1.00390625), [1], 'bfloat16');
    }),
  );
});

describe('reductions', () => {
  const data = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  const x = () => torch.tensor(data, { dtype: 'float32' });

  test(
    'sum / mean with dims and keepdim',
    scoped(() => {
      assertValues(x().sum(), 21);
      assertValues(x().sum(0), [5, 7, 9]);
      assertValues(x().sum(1), [6, 15]);
      assertValues(x().sum(1, true), [[6], [15]]);
      assertValues(x().sum(-1, true), [[6], [15]]);
      assertValues(x().sum([0, 1]), 21);
      assertValues(x().sum([0, 1], true), [[21]]);
      assertValues(x().mean(), 3.5);
      assertValues(x().mean(1), [2, 5]);
      assertValues(x().mean(0, true), [[2.5, 3.5, 4.5]]);
      assertValues(torch.tensor(data).sum(), 21, 'int64');
      assertValues(torch.tensor(data, { dtype: 'int32' }).sum(0), [5, 7, 9], 'int64');
      assertValues(torch.tensor([true, true, false]).sum(), 2, 'int64');
      assertValues(torch.tensor(data).sum(null, false, { dtype: 'float64' }), 21, 'float64');
      assertValues(torch.tensor(data).mean(null, false, { dtype: 'float32' }), 3.5, 'float32');
    }),
  );

  test(
    'max / min / argmax / argmin / amax / amin',
    scoped(() => {
      const t = torch
        .tensor([
          [3, 9, 1],
          [7, 2, 8],
        ])
        .float();
      assertValues(t.max(), 9);
      assertValues(t.min(), 1);
      const m1 = t.max(1);
      assertValues(m1.values, [9, 8]);
      assertValues(m1.indices, [1, 2], 'int64');
      const m0 = t.min(0, true);
      assertValues(m0.values, [[3, 2, 1]]);
      assertValues(m0.indices, [[0, 1, 0]]);
      assertValues(t.argmax(), 1, 'int64'); // flat index
      assertValues(t.argmin(), 2);
      assertValues(t.argmax(0), [1, 0, 1]);
      assertValues(t.argmin(1, true), [[2], [1]]);
      assertValues(t.amax(1), [9, 8]);
      assertValues(t.amax([0, 1]), 9);
      assertValues(t.amin(0, true), [[3, 2, 1]]);
    }),
  );

  test(
    'prod / norm / var / std',
    scoped(() => {
      assertValues(x().prod(), 720);
      assertValues(x().prod(1), [6, 120]);
      assertValues(x().prod(0, true), [[4, 10, 18]]);
      assertClose(x().norm(), Math.sqrt(91));
      assertClose(x().norm(2, 0), [Math.sqrt(17), Math.sqrt(29), Math.sqrt(45)]);
      assertValues(x().norm(1, 1), [6, 15]);
      assertValues(x().norm(Infinity, 1, true), [[3], [6]]);
      // var of 1..6: mean 3.5, sum of squares 17.5; unbiased /5 = 3.5, biased /6.
      assertClose(x().var(), 3.5);
      assertClose(x().var(null, { correction: 0 }), 17.5 / 6);
      assertClose(x().var(1), [1, 1]);
      assertClose(x().var(1, { correction: 0, keepdim: true }), [[2 / 3], [2 / 3]]);
      assertClose(x().std(0), [Math.sqrt(4.5), Math.sqrt(4.5), Math.sqrt(4.5)]);
      assertClose(x().std(), Math.sqrt(3.5));
      assertClose(x().std([0, 1], { correction: 0 }), Math.sqrt(17.5 / 6));
    }),
  );

  test(
    'logsumexp is stable',
    scoped(() => {
      const lse = (r: number[]) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0));
      assertClose(x().logsumexp(1), data.map(lse));
      assertClose(x().logsumexp(0, true), [[lse([1, 4]), lse([2, 5]), lse([3, 6])]]);
      assertClose(x().logsumexp([0, 1]), lse(data.flat()));
      assertClose(torch.tensor([1000, 1000]).logsumexp(0), 1000 + Math.log(2));
      assertClose(torch.tensor([-1000, -Infinity]).logsumexp(0), -1000);
    }),
  );

  test(
    'cumsum / cumprod / countNonzero',
    scoped(() => {
      assertValues(x().cumsum(1), [
        [1, 3, 6],
        [4, 9, 15],
      ]);
      assertValues(x().cumsum(0), [
        [1, 2, 3],
        [5, 7, 9],
      ]);
      assertValues(x().cumprod(1), [
        [1, 2, 6],
        [4, 20, 120],
      ]);
      assertValues(torch.tensor([1, 2, 3], { dtype: 'int32' }).cumsum(0), [1, 3, 6], 'int64');
      assertValues(torch.tensor([1, 2, 3]).cumsum(0, { dtype: 'float64' }), [1, 3, 6], 'float64');
      assertValues(
        torch
          .tensor([
            [0, 1, 2],
            [0, 0, 3],
          ])
          .countNonzero(),
        3,
      );
      assertValues(
        torch
          .tensor([
            [0, 1, 2],
            [0, 0, 3],
          ])
          .countNonzero(1),
        [2, 1],
      );
    }),
  );
});

describe('matrix products', () => {
  test(
    'matmul / mm of 2-D matrices',
    scoped(() => {
      const a = torch
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .float();
      const b = torch
        .tensor([
          [5, 6],
          [7, 8],
        ])
        .float();
      assertValues(a.matmul(b), [
        [19, 22],
        [43, 50],
      ]);
      assertValues(torch.matmul(b, a), [
        [23, 34],
        [31, 46],
      ]);
      assertValues(a.mm(b), [
        [19, 22],
        [43, 50],
      ]);
      const r = torch
        .tensor([
          [1, 0, 2],
          [0, 1, -1],
        ])
        .float(); // (2,3)
      const c = torch.tensor([[1], [2], [3]]).float(); // (3,1)
      assertValues(r.matmul(c), [[7], [-1]]);
      assertValues(c.t().matmul(r.t()), [[7, -1]]);
    }),
  );

  test(
    'matmul with vectors and batches',
    scoped(() => {
      const m = torch
        .tensor([
          [1, 2, 3],
          [4, 5, 6],
        ])
        .float();
      const v = torch.tensor([1, 0, -1]).float();
      assertValues(m.matmul(v), [-2, -2]); // (2,3)·(3,) → (2,)
      assertValues(torch.tensor([1, 1]).float().matmul(m), [5, 7, 9]); // (2,)·(2,3) → (3,)
      assertValues(v.matmul(v), 2); // dot → 0-d
      assertValues(v.dot(torch.tensor([3, 4, 5]).float()), -2);
      // (2,2,3) @ (3,2) broadcasts the matrix over the batch.
      const batch = torch.stack([m, m.mul(2)]);
      const w = torch
        .tensor([
          [1, 0],
          [0, 1],
          [1, 1],
        ])
        .float();
      assertValues(batch.matmul(w), [
        [
          [4, 5],
          [10, 11],
        ],
        [
          [8, 10],
          [20, 22],
        ],
      ]);
    }),
  );

  test(
    'bmm',
    scoped(() => {
      const a = torch.tensor([[[1, 2]], [[3, 4]]]).float(); // (2,1,2)
      const b = torch
        .tensor([
          [[1], [1]],
          [[2], [-1]],
        ])
        .float(); // (2,2,1)
      assertValues(a.bmm(b), [[[3]], [[2]]]);
      assertValues(b.bmm(a), [
        [
          [1, 2],
          [1, 2],
        ],
        [
          [6, 8],
          [-3, -4],
        ],
      ]);
    }),
  );

  test(
    'linear / outer / einsum',
    scoped(() => {
      const x = torch
        .tensor([
          [1, 2, 3],
          [0, -1, 1],
        ])
        .float(); // (2,3)
      const w = torch
        .tensor([
          [1, 0, 1],
          [2, 1, 0],
        ])
        .float(); // (out 2, in 3)
      const b = torch.tensor([0.5, -1]);
      // y[n][o] = Σ_i x[n][i] w[o][i] + b[o]
      assertValues(torch.F.linear(x, w, b), [
        [4.5, 3],
        [1.5, -2],
      ]);
      assertValues(torch.F.linear(x, w), [
        [4, 4],
        [1, -1],
      ]);
      assertValues(
        torch
          .tensor([1, 2])
          .float()
          .outer(torch.tensor([3, 4, 5]).float()),
        [
          [3, 4, 5],
          [6, 8, 10],
        ],
      );
      assertValues(torch.einsum('ij,kj->ik', x, w), [
        [4, 4],
        [1, -1],
      ]);
      assertValues(torch.einsum('ij->j', x), [1, 1, 4]);
      assertValues(torch.einsum('ij,ij->', x, x), 16);
      assertValues(torch.einsum('ij->ji', x), [
        [1, 0],
        [2, -1],
        [3, 1],
      ]);
      const bt = torch.arange(8).float().reshape(2, 2, 2);
      assertValues(torch.einsum('bij,bjk->bik', bt, bt), [
        [
          [2, 3],
          [6, 11],
        ],
        [
          [46, 55],
          [66, 79],
        ],
      ]);
    }),
  );
});

describe('in-place ops', () => {
  test(
    'add_ / sub_ / mul_ / div_ modify and return the same tensor',
    scoped(() => {
      const t = torch.tensor([1, 2, 3]).float();
      const r = t.add_(torch.tensor([1, 1, 1]).float());
      assert.equal(r, t);
      assertValues(t, [2, 3, 4]);
      t.add_(1, 2);
      assertValues(t, [4, 5, 6]);
      t.add_(torch.tensor([1, 2, 3]).float(), -1);
      assertValues(t, [3, 3, 3]);
      t.sub_(torch.tensor([1, 0, -1]).float(), 2);
      assertValues(t, [1, 3, 5]);
      t.mul_(2);
      assertValues(t, [2, 6, 10]);
      t.mul_(torch.tensor([0.5, 1, 0.1]));
      assertClose(t, [1, 6, 1]);
      t.div_(2);
      assertClose(t, [0.5, 3, 0.5]);
      t.div_(torch.tensor([0.5, 3, 0.25]));
      assertClose(t, [1, 1, 2]);
      // Broadcasting into the left operand.
      const m = torch.zeros([2, 3]);
      m.add_(torch.tensor([1, 2, 3]).float());
      assertValues(m, [
        [1, 2, 3],
        [1, 2, 3],
      ]);
    }),
  );

  test(
    'addcmul_ / addcdiv_ / lerp_',
    scoped(() => {
      const t = torch.tensor([1, 2, 3]).float();
      t.addcmul_(torch.tensor([1, 2, 3]).float(), torch.tensor([4, 5, 6]).float(), 0.5);
      assertValues(t, [3, 7, 12]); // t + 0.5·a·b
      t.addcdiv_(torch.tensor([2, 4, 6]).float(), torch.tensor([4, 2, 3]).float(), -2);
      assertValues(t, [2, 3, 8]); // t - 2·a/b
      t.lerp_(torch.tensor([10, 3, 0]).float(), 0.5);
      assertValues(t, [6, 3, 4]); // t + 0.5·(end - t)
    }),
  );

  test(
    'copy_ / fill_ / zero_ / clamp_ and friends',
    scoped(() => {
      const t = torch.zeros([2, 2]);
      t.copy_(torch.tensor(new Float64Array([0.1, 2])));
      assertValues(t, [
        [Math.fround(0.1), 2],
        [Math.fround(0.1), 2],
      ]);
      assert.equal(t.dtype, 'float32');
      t.fill_(7);
      assertValues(t, [
        [7, 7],
        [7, 7],
      ]);
      t.zero_();
      assertValues(t, [
        [0, 0],
        [0, 0],
      ]);
      const c = torch.tensor([-3, -0.5, 0.5, 3]);
      assert.equal(c.clamp_(-1, 1), c);
      assertValues(c, [-1, -0.5, 0.5, 1]);
      c.clamp_(0);
      assertValues(c, [0, 0, 0.5, 1]);
      c.clamp_(null, 0.25);
      assertValues(c, [0, 0, 0.25, 0.25]);
      const s = torch.tensor([4, 9]).float();
      s.sqrt_();
      assertValues(s, [2, 3]);
      s.neg_();
      assertValues(s, [-2, -3]);
      s.exp_();
      assertClose(s, [Math.exp(-2), Math.exp(-3)]);
      const m = torch.tensor([1, 2, 3]).float();
      m.maskedFill_(torch.tensor([true, false, true]), -1);
      assertValues(m, [-1, 2, -1]);
      m.indexFill_(0, torch.tensor([1]), 5);
      assertValues(m, [-1, 5, -1]);
    }),
  );

  test(
    'an in-place op through a view changes the base',
    scoped(() => {
      const base = torch.zeros([2, 3]);
      base.narrow(1, 1, 2).fill_(1);
      base.select(0, 1).add_(10);
      assertValues(base, [
        [0, 1, 1],
        [10, 11, 11],
      ]);
    }),
  );

  test(
    'in-place ops refuse to change the dtype',
    scoped(() => {
      assert.throws(() => torch.tensor([1, 2]).add_(0.5), /can't be cast/);
    }),
  );
});
