// torch.F: normalisation, activations, dropout, losses, attention and convolutions against hand-derived
// values or plain-JS reference implementations.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { assertClose, assertValues, type Nested } from '../helpers/assert-close.js';
import { prng } from '../helpers/gradcheck.js';

const F = torch.F;
const scoped = (fn: () => void) => () => torch.scope(fn);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function softmaxRef(row: readonly number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Multiples of 1/8 in [-2, 2): exact in every float type used here. */
function values(n: number, seed: number): number[] {
  const next = prng(seed);
  return range(n).map(() => Math.floor(next() * 32 - 16) / 8);
}

function nest(flat: readonly number[], shape: readonly number[]): Nested {
  if (shape.length === 0) return flat[0]!;
  const [n, ...rest] = shape;
  const size = rest.reduce((a, b) => a * b, 1);
  return range(n!).map((i) => nest(flat.slice(i * size, (i + 1) * size), rest));
}

describe('embedding', () => {
  test(
    'rows of the weight at the indices',
    scoped(() => {
      const w = torch
        .tensor([
          [0, 1],
          [2, 3],
          [4, 5],
        ])
        .float();
      assertValues(F.embedding(torch.tensor([[2, 0, 2]]), w), [
        [
          [4, 5],
          [0, 1],
          [4, 5],
        ],
      ]);
      assertValues(F.embedding(torch.tensor(1), w), [2, 3]);
      assert.throws(() => F.embedding(torch.tensor([3]), w));
    }),
  );

  test(
    'paddingIdx gets no gradient; other rows count their uses',
    scoped(() => {
      const w = torch.ones([3, 2], { requiresGrad: true });
      const out = F.embedding(torch.tensor([0, 1, 1, 0, 2]), w, { paddingIdx: 0 });
      assertValues(out.select(0, 0), [1, 1]); // the forward still reads row 0
      out.sum().backward();
      assertValues(w.grad!, [
        [0, 0],
        [2, 2],
        [1, 1],
      ]);
    }),
  );

  test(
    'a negative paddingIdx counts from the end, as torch.nn.functional.embedding',
    scoped(() => {
      const w = torch.ones([3, 2], { requiresGrad: true });
      F.embedding(torch.tensor([0, 1, 2]), w, { paddingIdx: -1 })
        .sum()
        .backward();
      assertValues(w.grad!, [
        [1, 1],
        [1, 1],
        [0, 0],
      ]);
    }),
  );
});

describe('normalisation', () => {
  test(
    'layerNorm with weight and bias',
    scoped(() => {
      const rows = [
        [1, 2, 3],
        [2, 4, 8],
      ];
      const w = [1, 2, 0.5];
      const b = [0, 1, -1];
      const eps = 1e-5;
      const expected = rows.map((r) => {
        const mean = r.reduce((a, v) => a + v, 0) / r.length;
        const variance = r.reduce((a, v) => a + (v - mean) ** 2, 0) / r.length; // biased
        return r.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i]! + b[i]!);
      });
      const x = torch.tensor(rows).float();
      assertClose(F.layerNorm(x, [3], torch.tensor(w), torch.tensor(b).float(), eps), expected);
      const plain = rows.map((r) => {
        const mean = r.reduce((a, v) => a + v, 0) / 3;
        const variance = r.reduce((a, v) => a + (v - mean) ** 2, 0) / 3;
        return r.map((v) => (v - mean) / Math.sqrt(variance + 1e-5));
      });
      assertClose(F.layerNorm(x, [3]), plain);
      // Normalising over the last two dims of a (1, 2, 3) tensor uses all six values.
      const all = rows.flat();
      const mean = all.reduce((a, v) => a + v, 0) / 6;
      const variance = all.reduce((a, v) => a + (v - mean) ** 2, 0) / 6;
      assertClose(F.layerNorm(x.unsqueeze(0), [2, 3]), [
        rows.map((r) => r.map((v) => (v - mean) / Math.sqrt(variance + 1e-5))),
      ]);
    }),
  );

  test(
    'rmsNorm (hand-computed)',
    scoped(() => {
      // x = [1, 2, 3]: mean square 14/3.
      const eps = 1e-6;
      const inv = 1 / Math.sqrt(14 / 3 + eps);
      const w = [1, 0.5, 2];
      const x = torch.tensor([[1, 2, 3]]).float();
      assertClose(F.rmsNorm(x, torch.tensor(w), eps), [[1 * inv * 1, 2 * inv * 0.5, 3 * inv * 2]]);
      assertClose(F.rmsNorm(x, null, eps), [[inv, 2 * inv, 3 * inv]]);
      // x = [3, -4]: mean square 12.5; larger eps shows up.
      assertClose(F.rmsNorm(torch.tensor([3, -4]).float(), null, 0.5), [3 / Math.sqrt(13), -4 / Math.sqrt(13)]);
      // bfloat16 input: computed in float32, cast back before the weight multiply; result stays bf16.
      const xb = torch.tensor([[1, 2, 3]], { dtype: 'bf16' });
      const wb = torch.tensor(w, { dtype: 'bf16' });
      const yb = F.rmsNorm(xb, wb, eps);
      assert.equal(yb.dtype, 'bfloat16');
      assertClose(yb, [[inv, inv, 6 * inv]], { atol: 0, rtol: 8e-3 });
    }),
  );

  test(
    'normalize and cosineSimilarity',
    scoped(() => {
      const x = torch
        .tensor([
          [3, 4],
          [0, 0],
          [-1, 0],
        ])
        .float();
      assertClose(F.normalize(x), [
        [0.6, 0.8],
        [0, 0],
        [-1, 0],
      ]);
      assertClose(F.normalize(x, { p: 1 }), [
        [3 / 7, 4 / 7],
        [0, 0],
        [-1, 0],
      ]);
      // dim 0: column norms sqrt(10) and 4.
      assertClose(F.normalize(x, { dim: 0 }), [
        [3 / Math.sqrt(10), 1],
        [0, 0],
        [-1 / Math.sqrt(10), 0],
      ]);
      const a = torch
        .tensor([
          [1, 0],
          [1, 1],
          [1, 2],
        ])
        .float();
      const b = torch
        .tensor([
          [0, 1],
          [2, 2],
          [-2, 1],
        ])
        .float();
      assertClose(F.cosineSimilarity(a, b), [0, 1, 0]);
      const u = [1, 2, 3];
      const v = [4, 5, -6];
      const cos = (1 * 4 + 2 * 5 - 3 * 6) / (Math.sqrt(14) * Math.sqrt(77));
      assertClose(F.cosineSimilarity(torch.tensor(u).float(), torch.tensor(v).float(), 0), cos);
    }),
  );
});

describe('softmax and activations', () => {
  test(
    'softmax / logSoftmax',
    scoped(() => {
      const rows = [
        [1, 2, 3],
        [-1, 0, 5],
      ];
      const x = torch.tensor(rows).float();
      assertClose(F.softmax(x, -1), rows.map(softmaxRef));
      assertClose(
        F.logSoftmax(x, 1),
        rows.map((r) => softmaxRef(r).map(Math.log)),
      );
      const cols = [0, 1, 2].map((c) => softmaxRef([rows[0]![c]!, rows[1]![c]!]));
      assertClose(F.softmax(x, 0), [cols.map((c) => c[0]!), cols.map((c) => c[1]!)]);
      // Large logits do not overflow; -inf gets probability 0.
      assertClose(F.softmax(torch.tensor([1000, 1000, -Infinity]), 0), [0.5, 0.5, 0]);
      assertClose(F.logSoftmax(torch.tensor([1000, 0]).float(), 0), [0, -1000]);
      // dtype option computes (and returns) in float32 for half input.
      const h = F.softmax(torch.tensor([1, 2, 3], { dtype: 'f16' }), 0, { dtype: 'float32' });
      assert.equal(h.dtype, 'float32');
      assertClose(h, softmaxRef([1, 2, 3]));
      assert.equal(x.softmax(1).dtype, 'float32');
    }),
  );

  test(
    'silu / gelu (exact and tanh) / relu / softplus / logSigmoid against their formulas',
    scoped(() => {
      const xs = [-4, -2.5, -1, -0.25, 0, 0.3, 1, 2, 3.5].map(Math.fround);
      const x = torch.tensor(xs);
      const tol = { atol: 1e-6, rtol: 1e-5 };
      assertClose(
        F.silu(x),
        xs.map((v) => v / (1 + Math.exp(-v))),
        tol,
        'silu',
      );
      assertClose(
        F.gelu(x),
        xs.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
        tol,
        'gelu',
      );
      assertClose(
        F.gelu(x, 'tanh'),
        xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
        tol,
        'gelu tanh',
      );
      // The two GELUs differ measurably somewhere (so the approximate flag is honoured).
      const diff = F.gelu(x).sub(F.gelu(x, 'tanh')).abs().max().item();
      assert.ok(diff > 1e-5, `gelu and gelu-tanh differ by ${diff}`);
      assertClose(
        F.relu(x),
        xs.map((v) => Math.max(0, v)),
        { atol: 0, rtol: 0 },
      );
      assertClose(
        F.softplus(x),
        xs.map((v) => Math.log1p(Math.exp(v))),
        tol,
        'softplus',
      );
      assertClose(
        F.softplus(x, 2, 20),
        xs.map((v) => Math.log1p(Math.exp(2 * v)) / 2),
        tol,
        'softplus beta',
      );
      assertClose(
        F.logSigmoid(x),
        xs.map((v) => -Math.log1p(Math.exp(-v))),
        tol,
        'logSigmoid',
      );
    }),
  );
});

describe('dropout', () => {
  test(
    'p = 0 and eval mode are the identity',
    scoped(() => {
      const x = torch.tensor([1, -2, 3, 4.5]);
      assertValues(F.dropout(x, 0), [1, -2, 3, 4.5]);
      assertValues(F.dropout(x, 0.5, false), [1, -2, 3, 4.5]);
      assertValues(F.dropout(x, 1, false), [1, -2, 3, 4.5]);
      assertValues(F.dropout(x, 1, true), [0, 0, 0, 0]);
      assert.throws(() => F.dropout(x, 1.5), RangeError);
      assert.throws(() => F.dropout(x, -0.1), RangeError);
    }),
  );

  test(
    'training keeps ~(1-p) of the elements, scaled by 1/(1-p), reproducibly',
    scoped(() => {
      const p = 0.25;
      const x = torch.ones([20000]);
      torch.manualSeed(123);
      const y = F.dropout(x, p).toArray();
      const scale = Math.fround(1 / (1 - p));
      const zeros = y.filter((v) => v === 0).length;
      assert.ok(
        y.every((v) => v === 0 || Math.abs(v - scale) < 1e-6),
        'kept values are scaled by 1/(1-p)',
      );
      assert.ok(Math.abs(zeros / y.length - p) < 0.015, `dropped fraction ${zeros / y.length}`);
      torch.manualSeed(123);
      assert.deepEqual(F.dropout(x, p).toArray(), y, 'same seed, same mask');
      torch.manualSeed(124);
      assert.notDeepEqual(F.dropout(x, p).toArray(), y, 'other seed, other mask');
      // The scaling keeps the expectation: mean ≈ 1.
      const mean = y.reduce((a, b) => a + b, 0) / y.length;
      assert.ok(Math.abs(mean - 1) < 0.02, `mean ${mean}`);
    }),
  );
});

describe('losses', () => {
  // Per-row cross entropy: logsumexp(row) - row[target].
  const logits = [
    [1, 2, 3],
    [1, 1, 1],
    [0.5, -1, 2],
  ];
  const lse = (r: number[]) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0));
  const nll = (r: number[], t: number) => lse(r) - r[t]!;

  test(
    'crossEntropy with reduction none / sum / mean',
    scoped(() => {
      const x = torch.tensor(logits).float();
      const t = torch.tensor([2, 0, 1]);
      const per = [nll(logits[0]!, 2), Math.log(3), nll(logits[2]!, 1)];
      assertClose(F.crossEntropy(x, t, { reduction: 'none' }), per);
      assertClose(
        F.crossEntropy(x, t, { reduction: 'sum' }),
        per.reduce((a, b) => a + b),
      );
      assertClose(F.crossEntropy(x, t), per.reduce((a, b) => a + b) / 3);
      // NLL from log-probabilities gives the same.
      assertClose(F.nllLoss(F.logSoftmax(x, 1), t), per.reduce((a, b) => a + b) / 3);
    }),
  );

  test(
    'crossEntropy skips ignoreIndex targets',
    scoped(() => {
      const x = torch.tensor(logits).float();
      const l0 = nll(logits[0]!, 2);
      const l2 = nll(logits[2]!, 1);
      const t = torch.tensor([2, -100, 1]);
      assertClose(F.crossEntropy(x, t, { reduction: 'none' }), [l0, 0, l2]);
      assertClose(F.crossEntropy(x, t), (l0 + l2) / 2); // mean over the two counted rows
      assertClose(F.crossEntropy(x, t, { reduction: 'sum' }), l0 + l2);
      const custom = torch.tensor([2, 0, 0]);
      assertClose(F.crossEntropy(x, custom, { ignoreIndex: 0 }), l0);
      // Every target ignored: the mean is 0/0.
      assert.ok(Number.isNaN(F.crossEntropy(x, torch.tensor([-100, -100, -100])).item()));
    }),
  );

  test(
    'crossEntropy with label smoothing (and ignoreIndex)',
    scoped(() => {
      const eps = 0.1;
      const C = 3;
      const smooth = (r: number[], t: number) => {
        const logp = r.map((v) => v - lse(r));
        const uniform = -logp.reduce((a, b) => a + b, 0) / C;
        return (1 - eps) * -logp[t]! + eps * uniform;
      };
      const x = torch.tensor(logits).float();
      const per = [smooth(logits[0]!, 2), smooth(logits[1]!, 0), smooth(logits[2]!, 1)];
      assertClose(F.crossEntropy(x, torch.tensor([2, 0, 1]), { labelSmoothing: eps, reduction: 'none' }), per);
      assertClose(F.crossEntropy(x, torch.tensor([2, 0, 1]), { labelSmoothing: eps }), per.reduce((a, b) => a + b) / 3);
      assertClose(F.crossEntropy(x, torch.tensor([2, -100, 1]), { labelSmoothing: eps }), (per[0]! + per[2]!) / 2);
    }),
  );

  test(
    'crossEntropy with class weights and spatial dims',
    scoped(() => {
      const x = torch.tensor(logits).float();
      const w = [1, 2, 0.5];
      const t = [2, 0, 1];
      const num = t.reduce((a, c, i) => a + w[c]! * nll(logits[i]!, c), 0);
      const den = t.reduce((a, c) => a + w[c]!, 0);
      assertClose(F.crossEntropy(x, torch.tensor(t), { weight: torch.tensor(w) }), num / den);
      // (N=1, C=3, d=3): class scores along dim 1.
      const spatial = x.t().unsqueeze(0);
      assertClose(F.crossEntropy(spatial, torch.tensor([t]), { reduction: 'none' }), [
        [nll(logits[0]!, 2), Math.log(3), nll(logits[2]!, 1)],
      ]);
    }),
  );

  test(
    'mseLoss and binaryCrossEntropyWithLogits',
    scoped(() => {
      const a = torch.tensor([1, 2, 3]).float();
      const b = torch.tensor([2, 2, 5]).float();
      assertValues(F.mseLoss(a, b, 'none'), [1, 0, 4]);
      assertValues(F.mseLoss(a, b, 'sum'), 5);
      assertClose(F.mseLoss(a, b), 5 / 3);
      assertClose(F.mseLoss(a, b, 'mean'), 5 / 3);
      const z = [0.5, -1, 2];
      const y = [1, 0, 0.5];
      const bce = z.map(
        (v, i) => -(y[i]! * Math.log(1 / (1 + Math.exp(-v))) + (1 - y[i]!) * Math.log(1 - 1 / (1 + Math.exp(-v)))),
      );
      assertClose(F.binaryCrossEntropyWithLogits(torch.tensor(z), torch.tensor(y).float(), { reduction: 'none' }), bce);
      assertClose(
        F.binaryCrossEntropyWithLogits(torch.tensor(z), torch.tensor(y).float()),
        bce.reduce((p, q) => p + q) / 3,
      );
    }),
  );
});

describe('scaledDotProductAttention', () => {
  /** softmax(q kᵀ · scale + bias) v for one (L×E, S×E, S×Ev) problem; bias entries may be -Infinity. */
  function attentionRef(
    q: number[][],
    k: number[][],
    v: number[][],
    opts: { bias?: number[][]; scale?: number } = {},
  ): number[][] {
    const scale = opts.scale ?? 1 / Math.sqrt(q[0]!.length);
    return q.map((qi, i) => {
      const scores = k.map((kj, j) => qi.reduce((a, x, e) => a + x * kj[e]!, 0) * scale + (opts.bias?.[i]?.[j] ?? 0));
      const p = softmaxRef(scores);
      return v[0]!.map((_, c) => p.reduce((a, pj, j) => a + pj * v[j]![c]!, 0));
    });
  }

  const q = [
    [1, 0],
    [0, 1],
  ];
  const k = [
    [1, 0],
    [0, 1],
    [1, 1],
  ];
  const v = [
    [1, 2],
    [3, 4],
    [5, 6],
  ];
  const T = (a: number[][]) => torch.tensor(a).float();

  test(
    'tiny case against the formula',
    scoped(() => {
      // Row 0: scores [1, 0, 1]/√2. Checked against a literal for one entry as well.
      const expected = attentionRef(q, k, v);
      const s = Math.exp(1 / Math.SQRT2);
      const row0col0 = (s * 1 + 1 * 3 + s * 5) / (2 * s + 1);
      assertClose(expected[0]![0]!, row0col0, { atol: 1e-12 });
      assertClose(F.scaledDotProductAttention(T(q), T(k), T(v)), expected);
      assertClose(F.scaledDotProductAttention(T(q), T(k), T(v), { scale: 2 }), attentionRef(q, k, v, { scale: 2 }));
    }),
  );

  test(
    'bool mask: true may attend',
    scoped(() => {
      const mask = [
        [true, false, true],
        [false, true, false],
      ];
      const bias = mask.map((r) => r.map((m) => (m ? 0 : -Infinity)));
      const out = F.scaledDotProductAttention(T(q), T(k), T(v), { attnMask: torch.tensor(mask) });
      assertClose(out, attentionRef(q, k, v, { bias }));
      // Row 1 sees only key 1: its output is exactly v[1].
      assertClose(out.select(0, 1), [3, 4]);
      // An additive float mask gives the same as the equivalent bool mask, and arbitrary biases work.
      assertClose(
        F.scaledDotProductAttention(T(q), T(k), T(v), { attnMask: torch.tensor(bias) }),
        attentionRef(q, k, v, { bias }),
      );
      const soft = [
        [0, -1, 0.5],
        [2, 0, -3],
      ];
      assertClose(
        F.scaledDotProductAttention(T(q), T(k), T(v), { attnMask: torch.tensor(soft) }),
        attentionRef(q, k, v, { bias: soft }),
      );
    }),
  );

  test(
    'causal',
    scoped(() => {
      const q3 = [
        [1, 0],
        [0, 1],
        [1, -1],
      ];
      const bias = range(3).map((i) => range(3).map((j) => (j <= i ? 0 : -Infinity)));
      const out = F.scaledDotProductAttention(T(q3), T(k), T(v), { isCausal: true });
      assertClose(out, attentionRef(q3, k, v, { bias }));
      assertClose(out.select(0, 0), [1, 2]); // the first query sees only the first key
    }),
  );

  test(
    'batched heads with a broadcast key-padding mask',
    scoped(() => {
      const B = 2;
      const H = 2;
      const L = 2;
      const S = 3;
      const E = 2;
      const qf = values(B * H * L * E, 1);
      const kf = values(B * H * S * E, 2);
      const vf = values(B * H * S * E, 3);
      // Batch 0 may see every key; batch 1 not the last one. Shape (B, 1, 1, S).
      const keep = [
        [true, true, true],
        [true, true, false],
      ];
      const out = F.scaledDotProductAttention(
        torch.tensor(qf, { shape: [B, H, L, E] }),
        torch.tensor(kf, { shape: [B, H, S, E] }),
        torch.tensor(vf, { shape: [B, H, S, E] }),
        { attnMask: torch.tensor(keep).view(B, 1, 1, S) },
      );
      assert.deepEqual(out.shape, [B, H, L, E]);
      const expected = range(B).map((b) =>
        range(H).map((h) => {
          const off = (b * H + h) * S * E;
          const pick = (f: number[], n: number, o: number) => range(n).map((i) => f.slice(o + i * E, o + (i + 1) * E));
          const bias = range(L).map(() => keep[b]!.map((m) => (m ? 0 : -Infinity)));
          return attentionRef(pick(qf, L, (b * H + h) * L * E), pick(kf, S, off), pick(vf, S, off), { bias });
        }),
      );
      assertClose(out, expected);
    }),
  );
});

describe('convolutions', () => {
  interface ConvOpts {
    stride: number[];
    padding: number[];
    dilation: number[];
    groups: number;
  }

  /** Direct N-d convolution on flat row-major arrays: input (N, C, ...sp), weight (O, C/g, ...k). */
  function convRef(
    x: number[],
    xShape: number[],
    w: number[],
    wShape: number[],
    bias: number[] | null,
    o: ConvOpts,
  ): { data: number[]; shape: number[] } {
    const [N, , ...sp] = xShape as [number, number, ...number[]];
    const [O, Cg, ...ks] = wShape as [number, number, ...number[]];
    const d = sp.length;
    const outSp = sp.map(
      (n, i) => Math.floor((n + 2 * o.padding[i]! - o.dilation[i]! * (ks[i]! - 1) - 1) / o.stride[i]!) + 1,
    );
    const prod = (a: number[]) => a.reduce((p, q) => p * q, 1);
    const idx = (coords: number[], shape: number[]) => coords.reduce((acc, c, i) => acc * shape[i]! + c, 0);
    const unravel = (flat: number, shape: number[]) => {
      const out = new Array<number>(shape.length);
      for (let i = shape.length - 1; i >= 0; i--) {
        out[i] = flat % shape[i]!;
        flat = Math.floor(flat / shape[i]!);
      }
      return out;
    };
    const data: number[] = [];
    const opg = O / o.groups;
    for (let n = 0; n < N; n++) {
      for (let oc = 0; oc < O; oc++) {
        const g = Math.floor(oc / opg);
        for (let p = 0; p < prod(outSp); p++) {
          const pos = unravel(p, outSp);
          let acc = bias ? bias[oc]! : 0;
          for (let ci = 0; ci < Cg; ci++) {
            const c = g * Cg + ci;
            for (let kk = 0; kk < prod(ks); kk++) {
              const kpos = unravel(kk, ks);
              const inPos = range(d).map((i) => pos[i]! * o.stride[i]! - o.padding[i]! + kpos[i]! * o.dilation[i]!);
              if (inPos.some((v, i) => v < 0 || v >= sp[i]!)) continue;
              acc += x[idx([n, c, ...inPos], xShape)]! * w[idx([oc, ci, ...kpos], wShape)]!;
            }
          }
          data.push(acc);
        }
      }
    }
    return { data, shape: [N, O, ...outSp] };
  }

  test(
    'conv2d hand-computed 3×3 * 2×2',
    scoped(() => {
      const x = torch.arange(1, 10).float().view(1, 1, 3, 3);
      const w = torch
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .float()
        .view(1, 1, 2, 2);
      // out[0][0] = 1·1 + 2·2 + 3·4 + 4·5 = 37, and so on.
      assertValues(F.conv2d(x, w), [
        [
          [
            [37, 47],
            [67, 77],
          ],
        ],
      ]);
      assertValues(F.conv2d(x, w, torch.tensor([-1]).float()), [
        [
          [
            [36, 46],
            [66, 76],
          ],
        ],
      ]);
      // padding 1, stride 2: corners see one input each from the zero-padded border.
      assertValues(F.conv2d(x, w, null, { padding: 1, stride: 2 }), [
        [
          [
            [4, 3 * 2 + 4 * 3],
            [2 * 4 + 4 * 7, 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9],
          ],
        ],
      ]);
    }),
  );

  const cases2d: [string, number[], number[], Partial<ConvOpts>, boolean][] = [
    ['multi-channel with bias', [2, 2, 4, 5], [3, 2, 2, 3], {}, true],
    ['stride and padding', [1, 2, 5, 5], [2, 2, 3, 3], { stride: [2, 1], padding: [1, 2] }, true],
    ['dilation', [1, 1, 5, 5], [2, 1, 2, 2], { dilation: [2, 1] }, false],
    ['groups', [1, 4, 3, 3], [2, 2, 2, 2], { groups: 2 }, true],
  ];
  for (const [name, xs, ws, opts, withBias] of cases2d) {
    test(
      `conv2d ${name} against a direct loop`,
      scoped(() => {
        const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
        const xv = values(n(xs), 10);
        const wv = values(n(ws), 20);
        const bv = withBias ? values(ws[0]!, 30) : null;
        const full: ConvOpts = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, ...opts };
        const ref = convRef(xv, xs, wv, ws, bv, full);
        const out = F.conv2d(
          torch.tensor(xv, { shape: xs, dtype: 'float32' }),
          torch.tensor(wv, { shape: ws, dtype: 'float32' }),
          bv === null ? null : torch.tensor(bv, { dtype: 'float32' }),
          opts,
        );
        assertClose(out, nest(ref.data, ref.shape), { atol: 1e-5, rtol: 1e-5 });
      }),
    );
  }

  test(
    'conv3d hand-computed and against a direct loop',
    scoped(() => {
      const x = torch.arange(1, 9).float().view(1, 1, 2, 2, 2);
      assertValues(F.conv3d(x, torch.ones([1, 1, 2, 2, 2])), [[[[[36]]]]]);
      assertValues(F.conv3d(x, torch.ones([1, 1, 1, 1, 1]).mul(2), torch.tensor([1]).float()), [
        [
          [
            [
              [3, 5],
              [7, 9],
            ],
            [
              [11, 13],
              [15, 17],
            ],
          ],
        ],
      ]);
      // Kernel = stride, the video patch-embedding layout (t, h, w patches), with padding variants.
      const cases: [number[], number[], Partial<ConvOpts>][] = [
        [[1, 2, 2, 4, 4], [3, 2, 2, 2, 2], { stride: [2, 2, 2] }],
        [[1, 1, 3, 3, 4], [2, 1, 2, 2, 3], { stride: [1, 2, 1], padding: [0, 1, 1] }],
      ];
      cases.forEach(([xs, ws, opts], i) => {
        const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
        const xv = values(n(xs), 40 + i);
        const wv = values(n(ws), 50 + i);
        const bv = values(ws[0]!, 60 + i);
        const full: ConvOpts = { stride: [1, 1, 1], padding: [0, 0, 0], dilation: [1, 1, 1], groups: 1, ...opts };
        const ref = convRef(xv, xs, wv, ws, bv, full);
        const out = F.conv3d(
          torch.tensor(xv, { shape: xs, dtype: 'float32' }),
          torch.tensor(wv, { shape: ws, dtype: 'float32' }),
          torch.tensor(bv, { dtype: 'float32' }),
          opts,
        );
        assertClose(out, nest(ref.data, ref.shape), { atol: 1e-5, rtol: 1e-5 }, `case ${i}`);
      });
    }),
  );
});
