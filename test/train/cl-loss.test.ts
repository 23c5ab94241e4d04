import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import * as m from '../../src/models/index.js';
import { gradCache } from '../../src/train/cl/grad-cache.js';
import { infoNce } from '../../src/train/cl/loss.js';
import * as torch from '../../src/torch/index.js';

const modelDir = fileURLToPath(new URL('../../../test/fixtures/qwen25vl-tiny', import.meta.url));

describe('InfoNCE', () => {
  test('hand-derived: 2 queries, in-batch positives and one own hard negative each', () => {
    // Unit vectors: q0 = e0, q1 = e1; p0 = e0, p1 = (e0 + e1)/√2; n0 = e1, n1 = −e1.
    const s = Math.SQRT1_2;
    const q = torch
      .tensor([
        [1, 0],
        [0, 1],
      ])
      .float();
    const p = torch.tensor([
      [1, 0],
      [s, s],
    ]);
    const n = torch.tensor([[[0, 1]], [[0, -1]]]);
    const tau = 0.5;
    // Row 0 logits: [1, s, 0]/τ, target 0. Row 1: [0, s, −1]/τ, target 1.
    const ce = (logits: number[], t: number) => {
      const z = logits.map((x) => x / tau);
      const lse = Math.log(z.reduce((a, x) => a + Math.exp(x), 0));
      return lse - z[t]!;
    };
    const expected = (ce([1, s, 0], 0) + ce([0, s, -1], 1)) / 2;
    const r = infoNce(q, p, n, { temperature: tau });
    assert.ok(Math.abs(r.loss.item() - expected) < 1e-6, `${r.loss.item()} vs ${expected}`);
    assert.equal(r.accuracy, 1);
    // Shared negatives: each query also sees the other's negative: row 0 [1, s, 0, 0], row 1 [0, s, 1, −1].
    const shared = (ce([1, s, 0, 0], 0) + ce([0, s, 1, -1], 1)) / 2;
    assert.ok(Math.abs(infoNce(q, p, n, { temperature: tau, sharedNegatives: true }).loss.item() - shared) < 1e-6);
    // Symmetric: plus positives against queries: p0 → [1, 0] target 0, p1 → [s, s] target 1.
    const sym = (expected + (ce([1, 0], 0) + ce([s, s], 1)) / 2) / 2;
    assert.ok(Math.abs(infoNce(q, p, n, { temperature: tau, symmetric: true }).loss.item() - sym) < 1e-6);
    // No hard negatives: in-batch only.
    const inBatch = (ce([1, s], 0) + ce([0, s], 1)) / 2;
    assert.ok(Math.abs(infoNce(q, p, null, { temperature: tau }).loss.item() - inBatch) < 1e-6);
  });

  test('GradCache gives the plain loss and the same parameter gradients (tiny model, chunks of 2)', () => {
    const { model } = m.loadQwen25VL(modelDir);
    torch.manualSeed(9);
    const rows = (count: number, len: number) =>
      Array.from({ length: count }, (_, i) => Array.from({ length: len - (i % 3) }, (_, j) => (i * 31 + j * 7) % 250));
    const groups = { q: rows(5, 9), p: rows(5, 7), n: rows(10, 8) };
    const embed = (ids: number[][]) => {
      const len = Math.max(...ids.map((r) => r.length));
      const inputIds = torch.tensor(ids.map((r) => [...r, ...new Array<number>(len - r.length).fill(256)]));
      const mask = torch.tensor(ids.map((r) => [...r.map(() => 1), ...new Array<number>(len - r.length).fill(0)]));
      return model.embed({ inputIds, attentionMask: mask }, { normalize: false });
    };
    const loss = (e: torch.Tensor[]) => infoNce(e[0]!, e[1]!, e[2]!.view(5, 2, -1), { temperature: 0.03 });

    const plain = loss([embed(groups.q), embed(groups.p), embed(groups.n)]);
    plain.loss.backward();
    const params = model.namedParameters();
    // Text-only inputs: the vision tower gets no gradient (null) in both runs.
    const plainGrads = new Map(params.map(([name, p]) => [name, p.grad?.clone().keep() ?? null]));
    model.zeroGrad();

    const cached = gradCache(
      [
        { size: 5, embed: (idx) => embed(idx.map((i) => groups.q[i]!)) },
        { size: 5, embed: (idx) => embed(idx.map((i) => groups.p[i]!)) },
        { size: 10, embed: (idx) => embed(idx.map((i) => groups.n[i]!)) },
      ],
      (e) => {
        const r = loss(e);
        return { loss: r.loss, extra: r.accuracy };
      },
      { chunkSize: 2 },
    );
    assert.ok(Math.abs(cached.value - plain.loss.item()) < 1e-5);
    let worst = 0;
    let compared = 0;
    for (const [name, p] of params) {
      const g = p.grad;
      const ref = plainGrads.get(name)!;
      if (ref === null || g === null) {
        assert.equal(g === null, ref === null, `${name}: gradient present in only one of the runs`);
        continue;
      }
      const rel = torch.scope(() => g.sub(ref).norm().item() / Math.max(ref.norm().item(), 1e-12));
      worst = Math.max(worst, rel);
      compared++;
    }
    assert.ok(compared > 20);
    assert.ok(worst < 1e-4, `max relative gradient difference ${worst}`);
  });
});
