// The fused path of the models (packed real tokens, flash attention over segments and windows, fused RMSNorm /
// rotary / SwiGLU) against the composed path (`withFusedKernels(false)`) on the tiny checkpoint: the same
// hidden states on real tokens and the same parameter gradients. Also low-precision inference (bf16 / int8
// packed linear layers): embeddings close to float32.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import * as m from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';

const fixtureDir = fileURLToPath(new URL('../../../test/fixtures/qwen25vl-tiny', import.meta.url));
const inputs = torch.loadSafetensors(`${fixtureDir}/inputs.safetensors`);
for (const t of inputs.values()) t.keep();
const get = (name: string): torch.Tensor => inputs.get(name)!;
const grids = (get('image_grid_thw').tolist() as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const);
const batch: m.ModelInputs = {
  inputIds: get('input_ids'),
  attentionMask: get('attention_mask'),
  pixelValues: get('pixel_values'),
  imageGridThw: grids,
};
const real = get('attention_mask').ne(0).keep();

function maxAbsReal(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().amax(-1).maskedSelect(real).max().item());
}

describe('fused vs composed model path (tiny Qwen2.5-VL)', () => {
  test('only right-padded batches take the packed path (left padding falls back to the composed one)', () => {
    assert.deepEqual(m.rightPaddedLengths([1, 1, 0, 1, 1, 1, 0, 0, 0], 3, 3), [2, 3, 0]);
    assert.equal(m.rightPaddedLengths([0, 1, 1, 1, 1, 1], 2, 3), null);
    assert.equal(m.rightPaddedLengths([1, 0, 1], 1, 3), null);
  });

  test('the fixture batch has padding, so the packed layout is exercised', () => {
    const lengths = get('attention_mask').sum(1).toArray() as number[];
    assert.ok(Math.min(...lengths) < get('attention_mask').size(1), `lengths ${lengths}`);
  });

  for (const attention of ['bidirectional', 'causal'] as const) {
    test(`${attention}: hidden states on real tokens and every parameter gradient agree`, () => {
      torch.scope(() => {
        const model = m.loadQwen25VL(fixtureDir, { attention }).model;
        const run = (fused: boolean) =>
          torch.withFusedKernels(fused, () =>
            torch.scope(() => {
              model.zeroGrad();
              const hidden = model.hiddenStates(batch);
              // A loss that weighs every real position differently.
              const w = torch
                .arange(hidden.numel())
                .float()
                .remainder(7)
                .sub(3)
                .view(...hidden.shape);
              hidden.mul(w).mul(real.unsqueeze(-1)).sum().backward();
              const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad!.clone()]));
              return { hidden: hidden.detach(), grads };
            }),
          );
        const fused = run(true);
        const composed = run(false);
        const dh = maxAbsReal(fused.hidden, composed.hidden);
        assert.ok(dh < 1e-4, `hidden |Δ| ${dh}`);
        let worst = 0;
        let worstName = '';
        for (const [name, g] of composed.grads) {
          const f = fused.grads.get(name)!;
          const rel = torch.scope(() => f.sub(g).abs().max().item() / Math.max(g.abs().max().item(), 1e-6));
          if (rel > worst) [worst, worstName] = [rel, name];
        }
        assert.ok(worst < 1e-3, `largest relative gradient difference ${worst} at ${worstName}`);
      });
    });
  }

  test('padded positions of the packed path are zero; pooled embeddings are equal', () => {
    torch.scope(() => {
      const model = m.loadQwen25VL(fixtureDir).model.eval();
      torch.noGrad(() => {
        const hidden = model.hiddenStates(batch);
        const pad = real.logicalNot();
        assert.equal(hidden.abs().amax(-1).maskedSelect(pad).max().item(), 0);
        const a = model.embed(batch);
        const b = torch.withFusedKernels(false, () => model.embed(batch));
        assert.ok(a.sub(b).abs().max().item() < 1e-5);
      });
    });
  });
});

describe('low-precision inference (packed linear layers)', () => {
  for (const [format, minCosine] of [
    ['bfloat16', 0.999],
    ['int8', 0.99],
  ] as const) {
    test(`${format}: every linear layer packed, embeddings agree with float32 (cosine > ${minCosine})`, () => {
      torch.scope(() => {
        const f32 = m.loadQwen25VL(fixtureDir).model.eval();
        const low = m.loadQwen25VL(fixtureDir).model.eval();
        const linears = f32.namedModules().filter(([, mod]) => mod instanceof torch.Linear).length;
        const report = m.prepareInferencePrecision(low, format);
        assert.equal(report.packedLayers.length, linears);
        assert.equal(low.namedModules().filter(([, mod]) => mod instanceof torch.Linear).length, 0);
        assert.ok(report.packedBytes > 0);
        torch.noGrad(() => {
          const a = f32.embed(batch);
          const b = low.embed(batch);
          assert.equal(b.dtype, 'float32');
          const cos = torch.F.cosineSimilarity(a, b, -1).min().item();
          assert.ok(cos > minCosine, `min cosine ${cos}`);
          assert.ok(cos < 1 - 1e-7, 'the weights really are low precision');
        });
      });
    });
  }
});
