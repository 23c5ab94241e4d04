// Stage-2 loss parity with the independent PyTorch reference (tools/reference/cl_reference.py): explicit
// embeddings for every loss variant, and the tiny model end to end, plain and with GradCache
// (fixtures in test/fixtures/cl-tiny, tools/gen_cl_fixture.py).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import * as m from '../../src/models/index.js';
import { gradCache } from '../../src/train/cl/grad-cache.js';
import { infoNce, type InfoNceOptions } from '../../src/train/cl/loss.js';
import * as torch from '../../src/torch/index.js';

const fixtureDir = fileURLToPath(new URL('../../../test/fixtures/cl-tiny', import.meta.url));
const modelDir = fileURLToPath(new URL('../../../test/fixtures/qwen25vl-tiny', import.meta.url));
const explicit = torch.loadSafetensors(`${fixtureDir}/explicit.safetensors`);
const batchFile = torch.SafetensorsFile.open(`${fixtureDir}/batch.safetensors`);
const expectedFile = torch.SafetensorsFile.open(`${fixtureDir}/expected.safetensors`);
const TAU = Number(expectedFile.metadata.temperature ?? '0.03');

function get(map: Map<string, torch.Tensor>, k: string): torch.Tensor {
  const t = map.get(k);
  if (!t) throw new Error(`fixture has no '${k}'`);
  return t;
}

function maxRel(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-12));
}

describe('stage-2 loss parity with the PyTorch reference', () => {
  const variants: [string, InfoNceOptions, boolean][] = [
    ['default', { temperature: TAU }, true],
    ['symmetric', { temperature: TAU, symmetric: true }, true],
    ['shared', { temperature: TAU, sharedNegatives: true }, true],
    ['no_negatives', { temperature: TAU }, false],
  ];
  for (const [name, options, withNegatives] of variants) {
    test(`explicit embeddings, ${name}: loss and gradients w.r.t. the raw embeddings`, () => {
      const q = get(explicit, 'q').clone().requiresGrad_();
      const p = get(explicit, 'p').clone().requiresGrad_();
      const n = withNegatives ? get(explicit, 'n').clone().requiresGrad_() : null;
      const r = infoNce(q, p, n, options);
      const expected = get(explicit, `${name}.loss`).item();
      assert.ok(Math.abs(r.loss.item() - expected) <= 1e-5 * Math.abs(expected), `${r.loss.item()} vs ${expected}`);
      r.loss.backward();
      assert.ok(maxRel(q.grad!, get(explicit, `${name}.grad_q`)) < 1e-4, 'grad q');
      assert.ok(maxRel(p.grad!, get(explicit, `${name}.grad_p`)) < 1e-4, 'grad p');
      if (n) assert.ok(maxRel(n.grad!, get(explicit, `${name}.grad_n`)) < 1e-4, 'grad n');
    });
  }

  function group(prefix: string): m.ModelInputs {
    const t = (k: string) => (batchFile.has(`${prefix}.${k}`) ? batchFile.get(`${prefix}.${k}`) : null);
    return {
      inputIds: t('input_ids')!,
      attentionMask: t('attention_mask')!,
      pixelValues: t('pixel_values'),
      imageGridThw: ((t('image_grid_thw')?.tolist() ?? []) as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const),
    };
  }

  /** Rows `idx` of a group as its own inputs (its images only). */
  function rowsOf(g: m.ModelInputs, idx: readonly number[]): m.ModelInputs {
    const imageToken = 268;
    const perRow = (g.inputIds.eq(imageToken).sum(1).toArray() as number[]).map((n) => n);
    const grids = g.imageGridThw ?? [];
    let gridAt = 0;
    let rowAt = 0;
    const rowGrids: (typeof grids)[number][][] = [];
    const rowPixels: [number, number][] = [];
    perRow.forEach((tokens) => {
      const mine: (typeof grids)[number][] = [];
      let rows = 0;
      let counted = 0;
      while (counted < tokens) {
        const gr = grids[gridAt++]!;
        mine.push(gr);
        counted += (gr[1] * gr[2]) / 4;
        rows += gr[0] * gr[1] * gr[2];
      }
      rowGrids.push(mine);
      rowPixels.push([rowAt, rows]);
      rowAt += rows;
    });
    const index = torch.tensor(
      idx.map((i) => i),
      { dtype: 'int64' },
    );
    const pix = idx
      .filter((i) => rowPixels[i]![1] > 0)
      .map((i) => g.pixelValues!.narrow(0, rowPixels[i]![0], rowPixels[i]![1]));
    return {
      inputIds: g.inputIds.indexSelect(0, index),
      attentionMask: g.attentionMask.indexSelect(0, index),
      pixelValues: pix.length ? torch.cat(pix, 0) : null,
      imageGridThw: idx.flatMap((i) => rowGrids[i]!),
    };
  }

  test('tiny model end to end: loss and gradient norms, plain and with GradCache (chunks of 2)', () => {
    const names = JSON.parse(expectedFile.metadata.grad_norm_names ?? '[]') as string[];
    assert.ok(names.length >= 5);
    const norms = (model: m.Qwen25VLModel) => {
      const params = new Map(model.namedParameters());
      return names.map((name) => {
        if (name === 'total') {
          let s = 0;
          for (const p of params.values()) {
            const g = p.grad;
            if (g) s += torch.scope(() => g.square().sum().item());
          }
          return Math.sqrt(s);
        }
        return torch.scope(() => params.get(name)!.grad!.norm().item());
      });
    };
    const [q, p, n] = [group('q'), group('p'), group('n')];
    const B = q.inputIds.size(0);
    const K = n.inputIds.size(0) / B;
    const lossOf = (e: torch.Tensor[]) => infoNce(e[0]!, e[1]!, e[2]!.view(B, K, -1), { temperature: TAU });
    const expectedNorms = expectedFile.get('grad_norms').toArray();
    const expectedLoss = expectedFile.get('loss').item();

    const plainModel = m.loadQwen25VL(modelDir).model;
    const plain = lossOf([plainModel.embed(q), plainModel.embed(p), plainModel.embed(n)]);
    assert.ok(Math.abs(plain.loss.item() - expectedLoss) <= 1e-5 * expectedLoss, `loss ${plain.loss.item()}`);
    plain.loss.backward();
    norms(plainModel).forEach((v, i) => {
      assert.ok(
        Math.abs(v - expectedNorms[i]!) <= 1e-3 * expectedNorms[i]!,
        `${names[i]}: ${v} vs ${expectedNorms[i]}`,
      );
    });

    const gcModel = m.loadQwen25VL(modelDir).model;
    const groups = [q, p, n].map((g) => ({
      size: g.inputIds.size(0),
      embed: (idx: readonly number[]) => gcModel.embed(rowsOf(g, idx)),
    }));
    const cached = gradCache(groups, (e) => ({ loss: lossOf(e).loss, extra: null }), { chunkSize: 2 });
    assert.ok(Math.abs(cached.value - expectedLoss) <= 1e-5 * expectedLoss, `GradCache loss ${cached.value}`);
    const gcNorms = expectedFile.get('gc.grad_norms').toArray();
    norms(gcModel).forEach((v, i) => {
      assert.ok(Math.abs(v - gcNorms[i]!) <= 1e-3 * gcNorms[i]!, `GradCache ${names[i]}: ${v} vs ${gcNorms[i]}`);
    });
  });
});
