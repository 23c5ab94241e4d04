// Finite-difference gradient checks (float64) of every differentiable op the models use, plus tests of the
// checking helpers themselves (they must be able to fail).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { assertClose, findMismatches } from '../helpers/assert-close.js';
import { compareGradients, gradcheck, randomInput } from '../helpers/gradcheck.js';

const F = torch.F;
const scoped = (fn: () => void) => () => torch.scope(fn);
const rnd = randomInput;
/** Values in [0.5, 2): away from the singularities of div, log, sqrt, rsqrt, pow. */
const pos = (shape: number[], seed: number) => randomInput(shape, seed, 0.5, 2);
const check = (name: string, fn: (...xs: Tensor[]) => Tensor, inputs: () => Tensor[]) =>
  test(
    name,
    scoped(() => {
      gradcheck(fn, inputs());
    }),
  );

describe('the checking helpers', () => {
  test('compareGradients reports mismatched gradients and accepts matching ones', () => {
    const tol = { atol: 1e-6, rtol: 1e-6 };
    assert.deepEqual(compareGradients([[1, 2, 3]], [[1, 2, 3 + 1e-9]], tol), []);
    const bad = compareGradients([[1, 2, 3], [0]], [[1, 2.01, 3], [0]], tol, ['x', 'y']);
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /^x\[1\]: analytic 2, numeric 2\.01/);
    assert.equal(compareGradients([[NaN]], [[NaN]], tol).length, 1, 'NaN never matches');
    assert.equal(compareGradients([[1, 2]], [[1]], tol).length, 1, 'length mismatch');
    assert.equal(compareGradients([[1]], [[1], [2]], tol).length, 1, 'count mismatch');
    // rtol scales with |numeric|.
    assert.deepEqual(compareGradients([[1000.001]], [[1000]], { atol: 0, rtol: 1e-5 }), []);
    assert.equal(compareGradients([[1000.1]], [[1000]], { atol: 0, rtol: 1e-5 }).length, 1);
  });

  test(
    'gradcheck fails on a function whose autograd gradient is wrong',
    scoped(() => {
      // x * detach(x): autograd sees d/dx = x, finite differences see 2x.
      const x = rnd([3], 1);
      assert.throws(() => gradcheck((t) => t.mul(t.detach()), [x]), /gradient elements disagree/);
      // The correct version passes, and its gradients are returned.
      const r = gradcheck((t) => t.mul(t), [x]);
      assert.equal(r.analytic.length, 1);
      assert.equal(r.analytic[0]!.length, 3);
    }),
  );

  test(
    'gradcheck frees every tensor it creates',
    scoped(() => {
      const a = rnd([2, 3], 2);
      const b = rnd([3], 3);
      const before = torch.liveTensorStats().handles;
      gradcheck((x, y) => x.mul(y).tanh().sum(1), [a, b]);
      assert.throws(() => gradcheck((x) => x.mul(x.detach()), [a]));
      assert.equal(torch.liveTensorStats().handles, before);
    }),
  );

  test(
    'gradcheck insists on float64',
    scoped(() => {
      const f32 = torch.tensor([1.5]);
      assert.throws(() => gradcheck((x) => x.exp(), [f32]), /nothing to differentiate/);
      assert.throws(() => gradcheck((x) => x.exp(), [f32], { wrt: [0] }), /input 0 must be float64/);
      assert.throws(() => gradcheck((x) => x.float(), [rnd([2], 1)]), /fn must return a float64 tensor/);
    }),
  );

  test(
    'assertClose compares shapes and values with a useful message',
    scoped(() => {
      const t = torch
        .tensor([
          [1, 2],
          [5, 4],
        ])
        .float();
      assertClose(t, [
        [1, 2 + 1e-7],
        [5, 4],
      ]);
      assert.throws(
        () =>
          assertClose(
            t,
            [
              [1, 2],
              [6, 4],
            ],
            {},
            'my tensor',
          ),
        (e: Error) =>
          /my tensor: 1 of 4 elements differ/.test(e.message) && /at \[1, 0\].*actual 5, expected 6/.test(e.message),
      );
      assert.throws(() => assertClose(t, [1, 2, 5, 4]), /shape mismatch: actual \[2, 2\], expected \[4\]/);
      assert.throws(() => assertClose(torch.tensor([1.5]), 1.5), /shape mismatch/);
      assertClose(torch.tensor(1.5), 1.5);
      assertClose([NaN, Infinity, -Infinity], [NaN, Infinity, -Infinity], { atol: 0, rtol: 0 });
      assert.throws(() => assertClose([1e300], [Infinity]));
      assert.throws(() => assertClose([NaN], [0], { atol: 1 }));
      assertClose([101], [100], { atol: 0, rtol: 0.01 });
      assert.throws(() => assertClose([101.1], [100], { atol: 0, rtol: 0.01 }));
      assertClose(torch.tensor([true, false]), [true, false], { atol: 0, rtol: 0 });
      assert.throws(() => assertClose(torch.tensor([true, false]), [true, true]));
      assert.deepEqual(
        findMismatches([0, 1, 2, 3], [0, 1, 0, 3], [2, 2]).map((m) => m.index),
        [[1, 0]],
      );
    }),
  );
});

describe('elementwise arithmetic', () => {
  check(
    'add (2,3) + (3,) with alpha',
    (a, b) => a.add(b, 1.5),
    () => [rnd([2, 3], 1), rnd([3], 2)],
  );
  check(
    'add scalar',
    (a) => a.add(0.5, 2),
    () => [rnd([4], 3)],
  );
  check(
    'sub (2,1) - (1,3)',
    (a, b) => a.sub(b, 0.5),
    () => [rnd([2, 1], 4), rnd([1, 3], 5)],
  );
  check(
    'rsub',
    (a) => a.rsub(2),
    () => [rnd([3], 6)],
  );
  check(
    'mul (2,3) * (2,1)',
    (a, b) => a.mul(b),
    () => [rnd([2, 3], 7), rnd([2, 1], 8)],
  );
  check(
    'div (2,3) / (3,)',
    (a, b) => a.div(b),
    () => [rnd([2, 3], 9), pos([3], 10)],
  );
  check(
    'div scalar',
    (a) => a.div(3),
    () => [rnd([3], 11)],
  );
  check(
    'neg / abs (away from 0) / square',
    (a) => a.neg().add(a.abs()).add(a.square()),
    () => [pos([4], 12)],
  );
  check(
    'pow scalar exponents',
    (a) => a.pow(2.5).add(a.pow(-1.5)),
    () => [pos([2, 2], 13)],
  );
  check(
    'pow tensor exponent (base and exponent)',
    (a, b) => a.pow(b),
    () => [pos([3], 14), rnd([3], 15)],
  );
  check(
    'reciprocal',
    (a) => a.reciprocal(),
    () => [pos([3], 16)],
  );
  check(
    'lerp',
    (a, b) => a.lerp(b, 0.3),
    () => [rnd([3], 17), rnd([3], 18)],
  );
  check(
    'addcmul / addcdiv',
    (a, b, c) => a.addcmul(b, c, 0.5).addcdiv(b, c.add(3), 2),
    () => [rnd([3], 19), rnd([3], 20), rnd([3], 21)],
  );
  check(
    'clamp (inside and outside the range)',
    (a) => a.clamp(-0.5, 0.5),
    () => [torch.tensor(Float64Array.from([-0.9, -0.3, 0.2, 0.7]))],
  );
  check(
    'maximum / minimum (no ties)',
    (a, b) => a.maximum(b).add(a.minimum(b).mul(2)),
    () => [rnd([4], 22), rnd([4], 23)],
  );
});

describe('elementwise functions', () => {
  check(
    'exp',
    (a) => a.exp(),
    () => [rnd([2, 3], 30)],
  );
  check(
    'expm1 / log1p',
    (a) => a.expm1().add(a.log1p()),
    () => [pos([3], 31)],
  );
  check(
    'log',
    (a) => a.log(),
    () => [pos([2, 3], 32)],
  );
  check(
    'sqrt',
    (a) => a.sqrt(),
    () => [pos([2, 3], 33)],
  );
  check(
    'rsqrt',
    (a) => a.rsqrt(),
    () => [pos([2, 3], 34)],
  );
  check(
    'tanh',
    (a) => a.tanh(),
    () => [rnd([2, 3], 35, -2, 2)],
  );
  check(
    'sigmoid',
    (a) => a.sigmoid(),
    () => [rnd([2, 3], 36, -3, 3)],
  );
  check(
    'erf',
    (a) => a.erf(),
    () => [rnd([2, 3], 37, -2, 2)],
  );
  check(
    'sin / cos',
    (a) => a.sin().mul(a.cos()),
    () => [rnd([3], 38, -3, 3)],
  );
  check(
    'silu',
    (a) => F.silu(a),
    () => [rnd([2, 3], 39, -3, 3)],
  );
  check(
    'gelu exact',
    (a) => F.gelu(a),
    () => [rnd([2, 3], 40, -3, 3)],
  );
  check(
    'gelu tanh',
    (a) => F.gelu(a, 'tanh'),
    () => [rnd([2, 3], 41, -3, 3)],
  );
  check(
    'relu (away from 0)',
    (a) => F.relu(a),
    () => [torch.tensor(Float64Array.from([-1, -0.2, 0.3, 2]))],
  );
  check(
    'softplus / logSigmoid',
    (a) => F.softplus(a, 2).add(F.logSigmoid(a)),
    () => [rnd([4], 42, -3, 3)],
  );
  check(
    'softmax last dim',
    (a) => F.softmax(a, -1),
    () => [rnd([2, 4], 43, -2, 2)],
  );
  check(
    'softmax dim 0',
    (a) => F.softmax(a, 0),
    () => [rnd([3, 2], 44, -2, 2)],
  );
  check(
    'logSoftmax',
    (a) => F.logSoftmax(a, 1),
    () => [rnd([2, 4], 45, -2, 2)],
  );
});

describe('matrix products', () => {
  check(
    'matmul 2-D',
    (a, b) => a.matmul(b),
    () => [rnd([2, 3], 50), rnd([3, 4], 51)],
  );
  check(
    'matmul batched',
    (a, b) => a.matmul(b),
    () => [rnd([2, 2, 3], 52), rnd([2, 3, 2], 53)],
  );
  check(
    'matmul broadcast batch',
    (a, b) => a.matmul(b),
    () => [rnd([2, 2, 3], 54), rnd([3, 2], 55)],
  );
  check(
    'matmul matrix · vector',
    (a, b) => a.matmul(b),
    () => [rnd([2, 3], 56), rnd([3], 57)],
  );
  check(
    'bmm',
    (a, b) => a.bmm(b),
    () => [rnd([2, 2, 3], 58), rnd([2, 3, 2], 59)],
  );
  check(
    'linear with bias',
    (x, w, b) => F.linear(x, w, b),
    () => [rnd([2, 3], 60), rnd([4, 3], 61), rnd([4], 62)],
  );
  check(
    'linear 3-D input, no bias',
    (x, w) => F.linear(x, w),
    () => [rnd([2, 2, 3], 63), rnd([2, 3], 64)],
  );
  check(
    'einsum',
    (a, b) => torch.einsum('bij,bjk->bik', a, b),
    () => [rnd([2, 2, 3], 65), rnd([2, 3, 2], 66)],
  );
});

describe('nn functions', () => {
  check(
    'embedding (w.r.t. the weight, repeated indices)',
    (idx, w) => F.embedding(idx, w),
    () => [
      torch.tensor([
        [0, 2],
        [2, 3],
      ]),
      rnd([4, 3], 70),
    ],
  );
  check(
    'layerNorm with weight and bias',
    (x, w, b) => F.layerNorm(x, [4], w, b),
    () => [rnd([3, 4], 71), rnd([4], 72), rnd([4], 73)],
  );
  check(
    'layerNorm over two dims',
    (x) => F.layerNorm(x, [2, 3]),
    () => [rnd([2, 2, 3], 74)],
  );
  check(
    'rmsNorm with weight',
    (x, w) => F.rmsNorm(x, w),
    () => [rnd([3, 4], 75), rnd([4], 76)],
  );
  check(
    'crossEntropy w.r.t. logits, with ignoreIndex',
    (x, t) => F.crossEntropy(x, t, { ignoreIndex: -1 }),
    () => [rnd([4, 3], 77, -2, 2), torch.tensor([2, -1, 0, 1])],
  );
  check(
    'crossEntropy with label smoothing, sum',
    (x, t) => F.crossEntropy(x, t, { labelSmoothing: 0.2, reduction: 'sum' }),
    () => [rnd([3, 4], 78, -2, 2), torch.tensor([3, 0, -100])],
  );
  check(
    'mseLoss',
    (a, b) => F.mseLoss(a, b),
    () => [rnd([2, 3], 79), rnd([2, 3], 80)],
  );
  check(
    'normalize',
    (x) => F.normalize(x, { dim: -1 }),
    () => [rnd([2, 3], 81)],
  );
  check(
    'cosineSimilarity',
    (a, b) => F.cosineSimilarity(a, b, 1),
    () => [rnd([2, 3], 82), rnd([2, 3], 83)],
  );
  check(
    'scaledDotProductAttention with a bool mask',
    (q, k, v, mask) => F.scaledDotProductAttention(q, k, v, { attnMask: mask }),
    () => [
      rnd([1, 2, 2, 3], 84),
      rnd([1, 2, 3, 3], 85),
      rnd([1, 2, 3, 2], 86),
      torch.tensor([
        [true, false, true],
        [true, true, false],
      ]),
    ],
  );
  check(
    'scaledDotProductAttention causal with an additive mask',
    (q, k, v, bias) => F.scaledDotProductAttention(q, k, v, { attnMask: bias, isCausal: true }),
    () => [rnd([3, 2], 87), rnd([3, 2], 88), rnd([3, 2], 89), rnd([3, 3], 90)],
  );
  check(
    'conv2d with bias, padding and stride',
    (x, w, b) => F.conv2d(x, w, b, { padding: 1, stride: [1, 2] }),
    () => [rnd([1, 2, 4, 4], 91), rnd([3, 2, 2, 2], 92), rnd([3], 93)],
  );
  check(
    'conv2d groups',
    (x, w) => F.conv2d(x, w, null, { groups: 2 }),
    () => [rnd([1, 4, 3, 3], 94), rnd([2, 2, 2, 2], 95)],
  );
  check(
    'conv3d (patch-embedding style, kernel = stride)',
    (x, w, b) => F.conv3d(x, w, b, { stride: 2 }),
    () => [rnd([1, 2, 2, 4, 4], 96), rnd([2, 2, 2, 2, 2], 97), rnd([2], 98)],
  );
  check(
    'conv3d with padding',
    (x, w) => F.conv3d(x, w, null, { padding: 1 }),
    () => [rnd([1, 1, 2, 3, 3], 99), rnd([1, 1, 2, 2, 2], 100)],
  );
});

describe('shape and indexing ops', () => {
  check(
    'cat',
    (a, b) => torch.cat([a, b.exp()], 1),
    () => [rnd([2, 2], 110), rnd([2, 3], 111)],
  );
  check(
    'stack',
    (a, b) => torch.stack([a, b.square()], 1),
    () => [rnd([2, 3], 112), rnd([2, 3], 113)],
  );
  check(
    'split',
    (a) => {
      const [p, q] = a.split([1, 2], 1);
      return torch.cat([p!.mul(3), q!.exp()], 1);
    },
    () => [rnd([2, 3], 114)],
  );
  check(
    'chunk / unbind',
    (a) => a.chunk(2, 0)[1]!.add(a.unbind(0)[0]!.exp()),
    () => [rnd([4, 2], 115)],
  );
  check(
    'narrow / slice / select',
    (a) =>
      a
        .narrow(1, 1, 2)
        .add(a.slice(1, 0, null, 2))
        .mul(a.select(1, 0).unsqueeze(1)),
    () => [rnd([2, 3], 116)],
  );
  check(
    'index with slices, null and an integer',
    (a) => a.index(':', '1:', null, 0).exp(),
    () => [rnd([2, 3, 2], 117)],
  );
  check(
    'index with a repeated int64 tensor',
    (a) => a.index(':', torch.tensor([2, 0, 2])),
    () => [rnd([2, 3], 118)],
  );
  check(
    'index with a bool mask',
    (a) =>
      a.index(
        torch.tensor([
          [true, false, true],
          [false, true, true],
        ]),
      ),
    () => [rnd([2, 3], 119)],
  );
  check(
    'indexSelect',
    (a) => a.indexSelect(0, torch.tensor([1, 1, 0])),
    () => [rnd([2, 3], 120)],
  );
  check(
    'gather (repeated indices)',
    (a) =>
      a.gather(
        1,
        torch.tensor([
          [0, 0],
          [2, 1],
        ]),
      ),
    () => [rnd([2, 3], 121)],
  );
  check(
    'scatterAdd (w.r.t. self and src)',
    (a, s) =>
      a.scatterAdd(
        1,
        torch.tensor([
          [0, 0],
          [2, 1],
        ]),
        s,
      ),
    () => [rnd([2, 3], 122), rnd([2, 2], 123)],
  );
  check(
    'maskedFill',
    (a) => a.maskedFill(torch.tensor([true, false, true]), -2),
    () => [rnd([2, 3], 124)],
  );
  check(
    'maskedScatter (w.r.t. self and source)',
    (a, s) =>
      a.maskedScatter(
        torch.tensor([
          [true, false],
          [false, true],
        ]),
        s,
      ),
    () => [rnd([2, 2], 125), rnd([4], 126)],
  );
  check(
    'where',
    (a, b) => torch.where(torch.tensor([[true, false, true]]), a, b),
    () => [rnd([2, 3], 127), rnd([3], 128)],
  );
  check(
    'transpose / t',
    (a) => a.transpose(0, 2).reshape(3, 4).t(),
    () => [rnd([2, 2, 3], 129)],
  );
  check(
    'permute',
    (a) => a.permute(2, 0, 1).mul(torch.arange(12).double().view(3, 2, 2)),
    () => [rnd([2, 2, 3], 130)],
  );
  check(
    'reshape / view / flatten',
    (a) => a.reshape(3, 2).view(6).exp().add(a.flatten()),
    () => [rnd([2, 3], 131)],
  );
  check(
    'expand',
    (a) => a.expand(2, 3, 3).mul(torch.arange(18).double().view(2, 3, 3)),
    () => [rnd([3, 1], 132)],
  );
  check(
    'repeat',
    (a) => a.repeat(2, 1).mul(torch.arange(12).double().view(4, 3)),
    () => [rnd([2, 3], 133)],
  );
  check(
    'squeeze / unsqueeze',
    (a) => a.unsqueeze(0).squeeze(2).exp(),
    () => [rnd([2, 1, 3], 134)],
  );
  check(
    'flip / roll / tril',
    (a) => a.flip(0).roll(1, 1).tril().add(a),
    () => [rnd([3, 3], 135)],
  );
  check(
    'pad',
    (a) => F.pad(a, [1, 0, 0, 2], 0.5),
    () => [rnd([2, 2], 136)],
  );
});

describe('reductions', () => {
  check(
    'sum all / dims / keepdim',
    (a) =>
      a
        .sum()
        .add(a.sum(1, true))
        .add(a.sum([0, 1])),
    () => [rnd([2, 3], 140)],
  );
  check(
    'mean',
    (a) => a.mean(0).add(a.mean()),
    () => [rnd([2, 3], 141)],
  );
  check(
    'var (unbiased and biased)',
    (a) => a.var(1).add(a.var(null, { correction: 0 })),
    () => [rnd([2, 4], 142)],
  );
  check(
    'std',
    (a) => a.std(0),
    () => [rnd([3, 2], 143)],
  );
  check(
    'norm 2 over a dim and overall',
    (a) => a.norm(2, 1).add(a.norm()),
    () => [rnd([2, 3], 144)],
  );
  check(
    'norm 1 (no zeros)',
    (a) => a.norm(1, 0),
    () => [pos([2, 3], 145)],
  );
  check(
    'logsumexp',
    (a) => a.logsumexp(1).add(a.logsumexp([0, 1])),
    () => [rnd([2, 3], 146, -2, 2)],
  );
  check(
    'amax / amin (no ties)',
    (a) => a.amax(1).add(a.amin(0).sum()),
    () => [rnd([3, 4], 147)],
  );
  check(
    'max(dim) values',
    (a) => a.max(0).values,
    () => [rnd([3, 2], 148)],
  );
  check(
    'prod',
    (a) => a.prod(1),
    () => [pos([2, 3], 149)],
  );
  check(
    'cumsum',
    (a) => a.cumsum(1),
    () => [rnd([2, 3], 150)],
  );
});
