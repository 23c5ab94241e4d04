import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { linearCrossEntropy } from '../../src/train/linear-cross-entropy.js';
import * as torch from '../../src/torch/index.js';

function gradOf(t: torch.Tensor): Float64Array {
  const g = t.grad!;
  const a = g.toTypedArray() as Float64Array;
  g.dispose();
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('chunked linear cross-entropy', () => {
  for (const chunkElements of [1e9, 7 * 50, 50]) {
    test(`equals cross-entropy of full logits, value and gradients (chunk ${chunkElements} elements)`, () => {
      torch.manualSeed(5);
      const h1 = torch.randn([13, 8], { dtype: 'float64' }).requiresGrad_();
      const w1 = torch.randn([50, 8], { dtype: 'float64' }).requiresGrad_();
      const labels = torch.randint(0, 50, [13]);
      const h2 = h1.detach().clone().requiresGrad_();
      const w2 = w1.detach().clone().requiresGrad_();

      const reference = torch.F.crossEntropy(h1.matmul(w1.t()), labels);
      reference.backward();
      const ours = linearCrossEntropy(h2, w2, labels, { chunkElements });
      ours.loss.backward();

      assert.ok(Math.abs(ours.loss.item() - reference.item()) < 1e-6, `${ours.loss.item()} vs ${reference.item()}`);
      assert.ok(maxAbsDiff(gradOf(h2), gradOf(h1)) < 1e-6, 'grad hidden');
      assert.ok(maxAbsDiff(gradOf(w2), gradOf(w1)) < 1e-6, 'grad weight');
      const argmax = torch.scope(() => h1.matmul(w1.t()).argmax(1).eq(labels).sum().item());
      assert.equal(ours.correct, argmax);
    });
  }

  test('no rows: zero loss with zero gradients, no NaN', () => {
    const h = torch.zeros([0, 4]).requiresGrad_();
    const w = torch.randn([10, 4]).requiresGrad_();
    const r = linearCrossEntropy(h, w, torch.zeros([0], { dtype: 'int64' }));
    assert.equal(r.loss.item(), 0);
    r.loss.backward();
    assert.equal(
      torch.scope(() => w.grad!.abs().sum().item()),
      0,
    );
  });

  test('peak memory stays far below full logits for a 32k vocabulary', () => {
    torch.manualSeed(1);
    const vocab = 32768;
    const rows = 512;
    const h = torch.randn([rows, 64]).requiresGrad_();
    const w = torch.randn([vocab, 64]).mul(0.02).requiresGrad_();
    const labels = torch.randint(0, vocab, [rows]);
    const fullLogitsBytes = rows * vocab * 4; // 64 MiB
    const before = torch.liveTensorStats().bytes;
    let peak = 0;
    // Measure the live tensor bytes at the end of the forward (the gradients are held, the logits are not).
    const r = linearCrossEntropy(h, w, labels, { chunkElements: 1 << 20 });
    peak = torch.liveTensorStats().bytes - before;
    r.loss.backward();
    assert.ok(Number.isFinite(r.loss.item()));
    assert.ok(peak < fullLogitsBytes / 4, `held ${peak} bytes vs ${fullLogitsBytes} for full logits`);
  });
});
