// Stage-1 loss parity with the independent PyTorch reference (tools/reference/cpt_reference.py), for explicit
// masks, on the tiny model: fixtures in test/fixtures/cpt-tiny (tools/gen_cpt_fixture.py).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import * as m from '../../src/models/index.js';
import { applyMaeMask, applyMlmMask, type CptMasks, maePredictionMask } from '../../src/train/cpt/masking.js';
import { CptObjective, MaeHeads } from '../../src/train/cpt/objective.js';
import * as torch from '../../src/torch/index.js';

const modelDir = fileURLToPath(new URL('../../../test/fixtures/qwen25vl-tiny', import.meta.url));
const fixtureDir = fileURLToPath(new URL('../../../test/fixtures/cpt-tiny', import.meta.url));
const batchFile = torch.SafetensorsFile.open(`${fixtureDir}/batch.safetensors`);
const expectedFile = torch.SafetensorsFile.open(`${fixtureDir}/expected.safetensors`);
const b = (k: string) => batchFile.get(k).keep();
const e = (k: string) => expectedFile.get(k).keep();

const MASK_ID = 270;
const SPECIAL = Array.from({ length: 15 }, (_, i) => 256 + i);

function setup(): { objective: CptObjective; model: m.Qwen25VLModel; heads: MaeHeads } {
  const { model } = m.loadQwen25VL(modelDir, { withLmHead: true });
  const heads = new MaeHeads(model, 1176);
  heads.loadStateDict(torch.loadSafetensors(`${fixtureDir}/heads.safetensors`));
  const objective = new CptObjective(model, heads, {
    mlmProb: 0.4,
    maeProb: 0.5,
    maeWeight: 0.1,
    useMlm: true,
    useMae: true,
    maskTokenId: MASK_ID,
    specialIds: SPECIAL,
  });
  return { objective, model, heads };
}

const grids = (b('image_grid_thw').tolist() as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const);
const batch = {
  inputIds: b('input_ids'),
  attentionMask: b('attention_mask'),
  pixelValues: b('pixel_values'),
  imageGridThw: grids,
};
const masks: CptMasks = { mlmMask: b('mlm_mask'), maeTokenMask: b('mae_token_mask'), noise: b('noise') };

function relClose(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.max(1e-6, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

describe('stage-1 loss parity with the PyTorch reference', () => {
  test('corrupted inputs: masked ids, labels, noisy pixel rows, MAE prediction positions', () => {
    const { ids, labels } = applyMlmMask(batch.inputIds, masks.mlmMask, MASK_ID);
    assert.ok(ids.equal(e('input_ids_masked')));
    assert.ok(labels.equal(e('mlm_labels')));
    assert.ok(applyMaeMask(batch.pixelValues, masks.maeTokenMask, masks.noise, 4).equal(e('pixel_values_corrupted')));
    assert.ok(maePredictionMask(ids, 268, masks.maeTokenMask).equal(e('mae_pred_mask')));
  });

  test('MLM, MAE and joint loss, and gradient norms of named parameters', () => {
    const { objective, model, heads } = setup();
    const out = objective.loss(batch, masks);
    relClose(out.metrics.mlm_loss, e('mlm_loss').item(), 1e-5, 'mlm_loss');
    relClose(out.metrics.mae_loss, e('mae_loss').item(), 1e-5, 'mae_loss');
    relClose(out.loss.item(), e('loss').item(), 1e-5, 'loss');
    out.loss.backward();
    const names = JSON.parse(expectedFile.metadata.grad_norm_names ?? '[]') as string[];
    const norms = e('grad_norms').toArray();
    assert.ok(names.length >= 10 && names.length === norms.length, 'fixture lists the gradient norms it recorded');
    const params = new Map([...model.namedParameters(), ...heads.namedParameters()]);
    const allGrads: number[] = [];
    names.forEach((name, i) => {
      if (name === 'total') return;
      const p = params.get(name);
      assert.ok(p, `no parameter ${name}`);
      const g = p.grad!;
      relClose(
        torch.scope(() => g.norm().item()),
        norms[i]!,
        1e-3,
        `grad norm ${name}`,
      );
      g.dispose();
    });
    for (const p of params.values()) {
      const g = p.grad;
      if (g) {
        allGrads.push(torch.scope(() => g.square().sum().item()));
        g.dispose();
      }
    }
    const totalIndex = names.indexOf('total');
    if (totalIndex >= 0) relClose(Math.sqrt(allGrads.reduce((a, x) => a + x, 0)), norms[totalIndex]!, 1e-3, 'total');
    const gBias = heads.mae_proj.bias!.grad!;
    assert.ok(torch.scope(() => gBias.sub(e('grad.mae_proj.bias')).abs().max().item()) < 1e-6);
  });

  test('bfloat16 autocast stays close to the float32 reference loss and keeps float32 gradients', () => {
    const { objective, model } = setup();
    const out = torch.autocast('bfloat16', () => objective.loss(batch, masks));
    relClose(out.metrics.mlm_loss, e('mlm_loss').item(), 2e-2, 'mlm_loss (bf16 autocast)');
    relClose(out.metrics.mae_loss, e('mae_loss').item(), 2e-2, 'mae_loss (bf16 autocast)');
    out.loss.backward();
    const g = model.model.layers.get(0).self_attn.q_proj.weight.grad!;
    assert.equal(g.dtype, 'float32');
    assert.ok(Number.isFinite(torch.scope(() => g.norm().item())));
    g.dispose();
  });

  for (const [prefix, mlm, mae] of [
    ['no_mlm', false, true],
    ['no_mae', true, false],
    ['none', false, false],
  ] as const) {
    test(`degenerate masks (${prefix}): the empty term is 0, never NaN, and backward runs`, () => {
      const { objective } = setup();
      const given: CptMasks = {
        mlmMask: mlm ? masks.mlmMask : torch.zerosLike(masks.mlmMask),
        maeTokenMask: mae ? masks.maeTokenMask : torch.zerosLike(masks.maeTokenMask),
        noise: masks.noise,
      };
      const out = objective.loss(batch, given);
      relClose(out.metrics.mlm_loss, e(`${prefix}.mlm_loss`).item(), 1e-5, 'mlm');
      relClose(out.metrics.mae_loss, e(`${prefix}.mae_loss`).item(), 1e-5, 'mae');
      relClose(out.loss.item(), e(`${prefix}.loss`).item(), 1e-5, 'loss');
      assert.ok(Number.isFinite(out.loss.item()));
      out.loss.backward();
    });
  }
});
