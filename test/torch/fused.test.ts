// Fused kernels (native/src/fused_*.cc): finite-difference gradient checks in float64 (the portable scalar
// path), and float32 outputs and gradients against the composed ops they replace (the AVX-512 path where the
// CPU has it), plus their argument checking.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { gradcheck, randomInput } from '../helpers/gradcheck.js';

const F = torch.F;
const scoped = (fn: () => void) => () => torch.scope(fn);

/** max |a − b| */
function maxAbs(a: Tensor, b: Tensor): number {
  return torch.scope(() => a.float().sub(b.float()).abs().max().item());
}

/** Composed attention of one segment, per head (GQA by repeating K/V), with the causal mask when asked. */
function composedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  segments: readonly torch.AttentionSegment[],
  scale: number,
  causal: boolean,
): Tensor {
  return torch.scope(() => {
    const rep = q.size(1) / k.size(1);
    const out = torch.zeros([q.size(0), q.size(1), v.size(2)], { dtype: q.dtype });
    const parts: Tensor[] = [];
    const rows: number[] = [];
    for (const s of segments) {
      if (s.qLen === 0) continue;
      const qs = q.narrow(0, s.qStart, s.qLen).transpose(0, 1);
      const ks = k.narrow(0, s.kStart, s.kLen).transpose(0, 1).repeatInterleave(rep, 0);
      const vs = v.narrow(0, s.kStart, s.kLen).transpose(0, 1).repeatInterleave(rep, 0);
      let scores = qs.matmul(ks.transpose(-1, -2)).mul(scale);
      if (causal) {
        const keep = torch.ones([s.qLen, s.kLen], { dtype: 'bool' }).tril();
        scores = scores.maskedFill(keep.logicalNot(), -Infinity);
      }
      parts.push(scores.softmax(-1).matmul(vs).transpose(0, 1));
      for (let i = 0; i < s.qLen; i++) rows.push(s.qStart + i);
    }
    const idx = torch.tensor(Int32Array.from(rows), { dtype: 'int64' });
    return out.indexAdd(0, idx, torch.cat(parts, 0));
  });
}

/** Gradients of sum(fn(inputs) · w) w.r.t. each input. */
function gradsOf(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], w: Tensor): { out: Tensor; grads: Tensor[] } {
  const leaves = inputs.map((x) => x.detach().requiresGrad_(true));
  const out = fn(...leaves);
  const grads = torch.grad([out.mul(w).sum()], leaves, { allowUnused: true });
  return { out: out.detach(), grads: grads.map((g, i) => g ?? torch.zerosLike(inputs[i]!)) };
}

describe('fused attention (flashAttention)', () => {
  // Lengths around the 64-row blocks: a segment shorter than a block, one spanning two.
  const packed = torch.packedSegments([3, 5, 67]);
  const rowsOf = (segs: readonly torch.AttentionSegment[]) => Math.max(...segs.map((s) => s.qStart + s.qLen));

  for (const causal of [false, true]) {
    test(
      `float64 gradients equal finite differences (packed segments, GQA 4/2 heads${causal ? ', causal' : ''})`,
      scoped(() => {
        const n = rowsOf(packed);
        const q = randomInput([n, 4, 3], 1);
        const k = randomInput([n, 2, 3], 2);
        const v = randomInput([n, 2, 3], 3);
        gradcheck((a, b, c) => torch.flashAttention(a, b, c, packed, { scale: 0.7, causal }), [q, k, v], {
          atol: 1e-7,
          rtol: 1e-6,
        });
      }),
    );
  }

  test(
    'float64 gradients with padded rows (queries = whole row, keys = real tokens) and uncovered rows',
    scoped(() => {
      // Two rows of length 6 with 4 and 2 real keys; rows 12..13 belong to no segment (output and grads 0).
      const segs = [
        { qStart: 0, qLen: 6, kStart: 0, kLen: 4 },
        { qStart: 6, qLen: 6, kStart: 6, kLen: 2 },
      ];
      const q = randomInput([14, 2, 4], 4);
      const k = randomInput([14, 2, 4], 5);
      const v = randomInput([14, 2, 5], 6);
      const r = gradcheck((a, b, c) => torch.flashAttention(a, b, c, segs), [q, k, v], { atol: 1e-7, rtol: 1e-6 });
      // Keys outside every segment (4, 5 of row 0) get no gradient.
      const dk = r.analytic[1]!;
      for (const row of [4, 5, 12, 13]) for (let j = 0; j < 8; j++) assert.equal(dk[row * 8 + j], 0);
      const out = torch.flashAttention(q, k, v, segs);
      assert.equal(out.index('12:').abs().max().item(), 0);
    }),
  );

  for (const causal of [false, true]) {
    test(
      `float32 output and gradients equal composed attention (2 segments over 2 blocks, head dim 80${causal ? ', causal' : ''})`,
      scoped(() => {
        torch.manualSeed(7);
        const segs = torch.packedSegments([130, 77]);
        const n = 207;
        const q = torch.randn([n, 4, 80]);
        const k = torch.randn([n, 2, 80]);
        const v = torch.randn([n, 2, 80]);
        const w = torch.randn([n, 4, 80]);
        const scale = 1 / Math.sqrt(80);
        const fused = gradsOf((a, b, c) => torch.flashAttention(a, b, c, segs, { scale, causal }), [q, k, v], w);
        const ref = gradsOf((a, b, c) => composedAttention(a, b, c, segs, scale, causal), [q, k, v], w);
        assert.ok(maxAbs(fused.out, ref.out) < 2e-6, `output |Δ| ${maxAbs(fused.out, ref.out)}`);
        fused.grads.forEach((g, i) => {
          const d = maxAbs(g, ref.grads[i]!);
          assert.ok(d < 2e-5, `grad ${'qkv'[i]} |Δ| ${d}`);
        });
      }),
    );
  }

  test(
    'F.scaledDotProductAttention: fused and composed paths agree (4-D, causal and not)',
    scoped(() => {
      torch.manualSeed(3);
      const q = torch.randn([2, 3, 70, 16]);
      const k = torch.randn([2, 3, 70, 16]);
      const v = torch.randn([2, 3, 70, 16]);
      for (const isCausal of [false, true]) {
        const a = F.scaledDotProductAttention(q, k, v, { isCausal });
        const b = torch.withFusedKernels(false, () => F.scaledDotProductAttention(q, k, v, { isCausal }));
        assert.deepEqual(a.shape, [2, 3, 70, 16]);
        assert.ok(maxAbs(a, b) < 2e-6, `isCausal ${isCausal}: |Δ| ${maxAbs(a, b)}`);
      }
    }),
  );

  test(
    'bfloat16 inputs: computed in float32, close to the float32 result',
    scoped(() => {
      torch.manualSeed(5);
      const segs = torch.packedSegments([40, 90]);
      const q = torch.randn([130, 2, 32]);
      const k = torch.randn([130, 2, 32]);
      const v = torch.randn([130, 2, 32]);
      const f32 = torch.flashAttention(q, k, v, segs);
      const bf = torch.flashAttention(q.bfloat16(), k.bfloat16(), v.bfloat16(), segs);
      assert.equal(bf.dtype, 'bfloat16');
      assert.ok(maxAbs(bf, f32) < 0.05, `|Δ| ${maxAbs(bf, f32)}`);
    }),
  );

  test(
    'strided q/k/v views (the vision tower slices one qkv projection) give the same result as copies',
    scoped(() => {
      torch.manualSeed(9);
      const qkv = torch.randn([50, 3, 2, 8]);
      const segs = torch.packedSegments([20, 30]);
      const [q, k, v] = [0, 1, 2].map((i) => qkv.select(1, i)) as [Tensor, Tensor, Tensor];
      const a = torch.flashAttention(q, k, v, segs);
      const b = torch.flashAttention(q.contiguous(), k.contiguous(), v.contiguous(), segs);
      assert.equal(maxAbs(a, b), 0);
    }),
  );

  test(
    'bad arguments name the problem',
    scoped(() => {
      const q = torch.randn([10, 2, 4]);
      const k = torch.randn([10, 2, 4]);
      assert.throws(
        () =>
          torch.flashAttention(q, k, k, [
            { qStart: 0, qLen: 6, kStart: 0, kLen: 6 },
            { qStart: 5, qLen: 5, kStart: 6, kLen: 4 },
          ]),
        /query ranges of two segments overlap/,
      );
      assert.throws(
        () => torch.flashAttention(q, k, k, [{ qStart: 0, qLen: 11, kStart: 0, kLen: 10 }]),
        /outside the 10 query rows/,
      );
      assert.throws(
        () => torch.flashAttention(q, torch.randn([10, 3, 4]), torch.randn([10, 3, 4]), torch.packedSegments([10])),
        /multiple of key\/value heads/,
      );
      assert.throws(
        () => torch.flashAttention(q, k.double(), k.double(), torch.packedSegments([10])),
        /must share a dtype/,
      );
    }),
  );
});

describe('fused RMSNorm, rotary, silu·mul, tanh-GELU', () => {
  test(
    'float64 gradients equal finite differences',
    scoped(() => {
      const x = randomInput([5, 7], 11);
      const w = randomInput([7], 12);
      gradcheck((a, b) => torch.fusedRmsNorm(a, b, 1e-6), [x, w]);
      gradcheck((a) => torch.fusedRmsNorm(a, null, 1e-6), [x]);
      const angles = randomInput([5, 4], 13, -3, 3);
      const cos = torch.cat([angles, angles], -1).cos();
      const sin = torch.cat([angles, angles], -1).sin();
      gradcheck((a) => torch.fusedRotary(a, cos, sin), [randomInput([5, 3, 8], 14)]);
      gradcheck((g, u) => torch.fusedSiluMul(g, u), [randomInput([4, 9], 15, -4, 4), randomInput([4, 9], 16)]);
      gradcheck((a) => torch.fusedGeluTanh(a), [randomInput([40], 17, -5, 5)]);
    }),
  );

  test(
    'float32 outputs and gradients equal the composed ops',
    scoped(() => {
      torch.manualSeed(21);
      const x = torch.randn([33, 100]).mul(3);
      const wRms = torch.randn([100]);
      const gy = torch.randn([33, 100]);
      const rmsFused = gradsOf((a, b) => torch.fusedRmsNorm(a, b, 1e-6), [x, wRms], gy);
      const rmsRef = gradsOf((a, b) => F.rmsNormComposed(a, b, 1e-6), [x, wRms], gy);
      assert.ok(maxAbs(rmsFused.out, rmsRef.out) < 1e-5);
      rmsFused.grads.forEach((g, i) => assert.ok(maxAbs(g, rmsRef.grads[i]!) < 1e-4, `rmsNorm grad ${i}`));

      const xr = torch.randn([33, 4, 64]);
      const ang = torch.randn([33, 32]).mul(10);
      const cos = torch.cat([ang, ang], -1).cos();
      const sin = torch.cat([ang, ang], -1).sin();
      const gr = torch.randn([33, 4, 64]);
      const rotate = (t: Tensor) => torch.cat([t.narrow(-1, 32, 32).neg(), t.narrow(-1, 0, 32)], -1);
      const rotFused = gradsOf((a) => torch.fusedRotary(a, cos, sin), [xr], gr);
      const rotRef = gradsOf((a) => a.mul(cos.unsqueeze(1)).add(rotate(a).mul(sin.unsqueeze(1))), [xr], gr);
      assert.ok(maxAbs(rotFused.out, rotRef.out) < 1e-5);
      assert.ok(maxAbs(rotFused.grads[0]!, rotRef.grads[0]!) < 1e-5);

      // Tails that are not a multiple of the 16-lane vectors.
      const g = torch.randn([1001]).mul(6);
      const u = torch.randn([1001]);
      const gs = torch.randn([1001]);
      const sFused = gradsOf((a, b) => torch.fusedSiluMul(a, b), [g, u], gs);
      const sRef = gradsOf((a, b) => a.silu().mul(b), [g, u], gs);
      assert.ok(maxAbs(sFused.out, sRef.out) < 1e-5);
      sFused.grads.forEach((gg, i) => assert.ok(maxAbs(gg, sRef.grads[i]!) < 1e-5, `siluMul grad ${i}`));
      const gFused = gradsOf((a) => torch.fusedGeluTanh(a), [g], gs);
      const gRef = gradsOf((a) => torch.withFusedKernels(false, () => F.gelu(a, 'tanh')), [g], gs);
      assert.ok(maxAbs(gFused.out, gRef.out) < 1e-5);
      assert.ok(maxAbs(gFused.grads[0]!, gRef.grads[0]!) < 1e-5);
    }),
  );

  test(
    'rotary on a strided view, and bfloat16 RMSNorm keeps Qwen2RMSNorm rounding',
    scoped(() => {
      torch.manualSeed(2);
      const base = torch.randn([6, 3, 2, 8]);
      const ang = torch.randn([6, 4]);
      const cos = torch.cat([ang, ang], -1).cos();
      const sin = torch.cat([ang, ang], -1).sin();
      const view = base.select(1, 1);
      assert.equal(maxAbs(torch.fusedRotary(view, cos, sin), torch.fusedRotary(view.contiguous(), cos, sin)), 0);
      const x = torch.randn([4, 64]).bfloat16();
      const w = torch.randn([64]).bfloat16();
      const a = torch.fusedRmsNorm(x, w, 1e-6);
      const b = F.rmsNormComposed(x, w, 1e-6);
      assert.equal(a.dtype, 'bfloat16');
      assert.ok(maxAbs(a, b) <= 0.02 * b.abs().max().item(), `|Δ| ${maxAbs(a, b)}`);
    }),
  );

  test(
    'in-place silu·mul (inference) overwrites the gate with the fused product',
    scoped(() => {
      const g = torch.randn([7, 33]).mul(3);
      const u = torch.randn([7, 33]);
      const expected = g.silu().mul(u);
      const out = torch.noGrad(() => torch.fusedSiluMul_(g, u));
      assert.equal(out, g);
      assert.ok(maxAbs(g, expected) < 1e-5);
      assert.throws(
        () => torch.fusedSiluMul_(torch.randn([3]).requiresGrad_(true), torch.randn([3])),
        /inference-only/,
      );
    }),
  );

  test(
    'argument checks',
    scoped(() => {
      const cos = torch.ones([3, 4]).requiresGrad_(true);
      assert.throws(() => torch.fusedRotary(torch.randn([3, 2, 4]), cos, torch.ones([3, 4])), /must not require/);
      assert.throws(
        () => torch.fusedRotary(torch.randn([3, 2, 4]), torch.ones([2, 4]), torch.ones([2, 4])),
        /cos\/sin/,
      );
      assert.throws(() => torch.fusedRmsNorm(torch.randn([3, 4]), torch.ones([5]), 1e-6), /does not match/);
      assert.throws(() => torch.fusedSiluMul(torch.randn([3]), torch.randn([4])), /differ in shape/);
    }),
  );
});

describe('fused linear + cross-entropy', () => {
  test(
    'float64 gradients equal finite differences (blocks smaller than the vocabulary, or one block; ignored rows)',
    scoped(() => {
      const h = randomInput([6, 5], 31);
      const w = randomInput([23, 5], 32);
      const labels = torch.tensor([3, -100, 22, 0, 7, 3], { dtype: 'int64' });
      for (const chunkElements of [20, 1 << 20]) {
        gradcheck((a, b) => torch.fusedLinearCrossEntropy(a, b, labels, { chunkElements }).loss, [h, w]);
      }
    }),
  );

  for (const chunkElements of [64 * 1000, 1 << 23]) {
    test(
      `float32 loss, accuracy and gradients equal logits + crossEntropy (${chunkElements < 300000 ? 'several blocks' : 'one block'})`,
      scoped(() => {
        torch.manualSeed(8);
        const h = torch.randn([300, 64]);
        const w = torch.randn([1000, 64]).mul(0.3);
        const labels = torch.randint(0, 1000, [300]);
        const leafH = h.detach().requiresGrad_(true);
        const leafW = w.detach().requiresGrad_(true);
        const r = torch.fusedLinearCrossEntropy(leafH, leafW, labels, { chunkElements });
        const [gh, gw] = torch.grad([r.loss], [leafH, leafW]) as [Tensor, Tensor];
        const logits = h.matmul(w.t());
        const refH = h.detach().requiresGrad_(true);
        const refW = w.detach().requiresGrad_(true);
        const ref = F.crossEntropy(refH.matmul(refW.t()), labels);
        const [rh, rw] = torch.grad([ref], [refH, refW]) as [Tensor, Tensor];
        assert.ok(Math.abs(r.loss.item() - ref.item()) < 1e-5, `${r.loss.item()} vs ${ref.item()}`);
        assert.equal(r.correct, logits.argmax(1).eq(labels).sum().item());
        assert.equal(r.rows, 300);
        assert.ok(maxAbs(gh, rh) < 1e-6);
        assert.ok(maxAbs(gw, rw) < 1e-6);
      }),
    );
  }

  test(
    'labels outside the vocabulary are an error naming the row',
    scoped(() => {
      const labels = torch.tensor([1, 50], { dtype: 'int64' });
      assert.throws(
        () => torch.fusedLinearCrossEntropy(torch.randn([2, 4]), torch.randn([10, 4]), labels),
        /label 50 of row 1 is outside the vocabulary/,
      );
    }),
  );
});

describe('the switch', () => {
  test('withFusedKernels restores the setting, MOCA_FUSED=0 is the off default', () => {
    const before = torch.fusedKernelsEnabled();
    assert.equal(before, process.env.MOCA_FUSED !== '0');
    torch.withFusedKernels(!before, () => assert.equal(torch.fusedKernelsEnabled(), !before));
    assert.equal(torch.fusedKernelsEnabled(), before);
    assert.match(torch.fusedKernelsName(), /^(avx512|generic)$/);
  });
});
