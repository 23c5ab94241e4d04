// Packed low-precision linear layers (native/src/quant.cc): the packed weight stands for the independently
// quantised matrix, and the kernels compute linear(x, bf16 W) + b, or linear(int8-quantised x, int8 W) + b, up
// to float32 accumulation order, for odd shapes (k not a multiple of the k-group, channels not a multiple of the 64-channel panel).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';

const F = torch.F;
const scoped = (fn: () => void) => () => torch.scope(fn);

/** Per-row symmetric int8 quantisation (scale max|x|/127, round half to even), returned dequantised. */
function int8Dequantised(x: Tensor): Tensor {
  return torch.scope(() => {
    const s = x.abs().amax([-1], true).div(127);
    return x.div(s).round().clamp(-127, 127).mul(s);
  });
}

function relErr(a: Tensor, b: Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item() / b.abs().max().item());
}

describe('packed linear weights', () => {
  // The last shape has enough rows for the bf16 path that widens the weight and calls BLAS.
  for (const [m, k, n] of [
    [1, 7, 3],
    [5, 130, 70],
    [13, 64, 129],
    [16, 300, 200], // several k-blocks and panels with three passes of rows (the passes prefetch ahead)
    [150, 70, 130],
  ] as const) {
    test(
      `bfloat16 and int8 at (${m} × ${k}) · (${n} × ${k})ᵀ equal the quantised reference`,
      scoped(() => {
        torch.manualSeed(m * 1000 + k + n);
        const x = torch.randn([m, k]);
        const w = torch.randn([n, k]).mul(0.1);
        const b = torch.randn([n]);
        const bf = torch.PackedLinearWeight.pack(w, 'bfloat16');
        const i8 = torch.PackedLinearWeight.pack(w, 'int8');
        try {
          assert.equal(bf.unpack().sub(w.bfloat16().float()).abs().max().item(), 0);
          assert.equal(i8.unpack().sub(int8Dequantised(w)).abs().max().item(), 0);
          torch.noGrad(() => {
            const ybf = torch.packedLinear(x, bf, b);
            const refBf = F.linear(x, w.bfloat16().float(), b); // bf16 weights, float32 activations
            assert.ok(relErr(ybf, refBf) < 1e-5, `bf16 rel ${relErr(ybf, refBf)}`);
            const yi8 = torch.packedLinear(x, i8, b);
            const refI8 = F.linear(int8Dequantised(x), int8Dequantised(w), b);
            assert.ok(relErr(yi8, refI8) < 1e-5, `int8 rel ${relErr(yi8, refI8)}`);
            // And both are close to float32.
            const y = F.linear(x, w, b);
            assert.ok(relErr(ybf, y) < 2e-2 && relErr(yi8, y) < 5e-2);
          });
        } finally {
          bf.dispose();
          i8.dispose();
        }
      }),
    );
  }

  test(
    'leading dimensions are kept; bf16 packs half and int8 a quarter of the float32 bytes',
    scoped(() => {
      const w = torch.randn([256, 512]);
      const bf = torch.PackedLinearWeight.pack(w, 'bfloat16');
      const i8 = torch.PackedLinearWeight.pack(w, 'int8');
      try {
        assert.equal(bf.bytes, (256 * 512 * 4) / 2);
        assert.equal(i8.bytes, (256 * 512 * 4) / 4 + 256 * 8);
        const y = torch.noGrad(() => torch.packedLinear(torch.randn([2, 3, 512]), i8));
        assert.deepEqual(y.shape, [2, 3, 256]);
      } finally {
        bf.dispose();
        i8.dispose();
      }
    }),
  );

  test(
    'inference only, and shape errors name the problem',
    scoped(() => {
      const w = torch.PackedLinearWeight.pack(torch.randn([8, 16]), 'int8');
      try {
        assert.throws(() => torch.packedLinear(torch.randn([2, 16]).requiresGrad_(true), w), /inference-only/);
        assert.throws(() => torch.noGrad(() => torch.packedLinear(torch.randn([2, 15]), w)), /16 input features/);
      } finally {
        w.dispose();
      }
      assert.match(torch.packedLinearKernels(), /^bfloat16:(avx512|portable),int8:(avx512_vnni|portable)$/);
    }),
  );

  test(
    'float32 inference on ≤ 16 rows of a large weight (small-batch kernel) equals the BLAS product',
    scoped(() => {
      torch.manualSeed(4);
      const w = torch.randn([1100, 1030]);
      const b = torch.randn([1100]);
      for (const rows of [1, 3, 8, 13, 16]) {
        const x = torch.randn([rows, 1030]);
        const small = torch.noGrad(() => F.linear(x, w, b));
        const blas = torch.withFusedKernels(false, () => torch.noGrad(() => F.linear(x, w, b)));
        assert.ok(relErr(small, blas) < 1e-5, `rows ${rows}: rel ${relErr(small, blas)}`);
      }
      // With gradients recorded the usual product runs (and is differentiable).
      const x = torch.randn([2, 1030]).requiresGrad_(true);
      F.linear(x, w, b).sum().backward();
      assert.deepEqual(x.grad!.shape, [2, 1030]);
    }),
  );

  test(
    'packLinearLayers replaces fields and list items, keeps weights another module shares',
    scoped(() => {
      class Net extends torch.Module {
        a = new torch.Linear(4, 6);
        list = new torch.ModuleList([new torch.Linear(6, 6), new torch.Linear(6, 2, { bias: false })]);
        emb = new torch.Embedding(2, 6);
        constructor() {
          super();
          this.list.get(1).weight = this.emb.weight; // tied
        }
        forward(x: Tensor): Tensor {
          return this.list.get(1).forward(this.list.get(0).forward(this.a.forward(x)));
        }
      }
      const net = new Net();
      const x = torch.randn([3, 4]);
      const before = torch.noGrad(() => net.forward(x));
      const names = torch.packLinearLayers(net, 'bfloat16');
      assert.deepEqual(names, ['a', 'list.0', 'list.1']);
      assert.ok(net.a instanceof torch.PackedLinear);
      assert.ok(net.list.get(0) instanceof torch.PackedLinear);
      assert.ok(!net.emb.weight.isDisposed, 'the tied embedding survives');
      const after = torch.noGrad(() => net.forward(x));
      assert.ok(relErr(after, before) < 2e-2);
    }),
  );
});
