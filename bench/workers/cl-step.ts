// Worker for `cl-step` (ours): one MoCa stage-2 step on a prepared contrastive batch — embed queries, positives
// and hard negatives, InfoNCE (τ 0.03), backward (plain, or GradCache in chunks), AdamW step, zero_grad. The case
// id chooses plain or GradCache.
import * as m from '../../src/models/index.js';
import { gradCache } from '../../src/train/cl/grad-cache.js';
import { infoNce } from '../../src/train/cl/loss.js';
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

interface ClStepConfig {
  modelDir: string;
  batchFile: string;
  threads: number;
  lr: number;
  temperature: number;
  chunkSize: number;
}

let model: m.Qwen25VLModel | undefined;
let optimizer: torch.AdamW | undefined;
let groups: m.ModelInputs[] = [];
let config: ClStepConfig | undefined;

function group(file: torch.SafetensorsFile, prefix: string): m.ModelInputs {
  const t = (k: string) => (file.has(`${prefix}.${k}`) ? file.get(`${prefix}.${k}`).keep() : null);
  return {
    inputIds: t('input_ids')!,
    attentionMask: t('attention_mask')!,
    pixelValues: t('pixel_values'),
    imageGridThw: ((t('image_grid_thw')?.tolist() ?? []) as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const),
  };
}

/** Rows [start, start + len) of a group whose images are, as prepared, only on some rows (one each at most). */
function slice(g: m.ModelInputs, start: number, len: number): m.ModelInputs {
  const imageRows = (g.inputIds.eq(model!.config.imageTokenId).sum(1).toArray() as number[]).map((x) => x > 0);
  const grids = g.imageGridThw ?? [];
  let gridAt = 0;
  let pixelAt = 0;
  const keepGrids: m.GridThw[] = [];
  const pixels: torch.Tensor[] = [];
  imageRows.forEach((has, row) => {
    if (!has) return;
    const grid = grids[gridAt++]!;
    const rows = grid[0] * grid[1] * grid[2];
    if (row >= start && row < start + len) {
      keepGrids.push(grid);
      pixels.push(g.pixelValues!.narrow(0, pixelAt, rows));
    }
    pixelAt += rows;
  });
  return {
    inputIds: g.inputIds.narrow(0, start, len),
    attentionMask: g.attentionMask.narrow(0, start, len),
    pixelValues: pixels.length ? torch.cat(pixels, 0) : null,
    imageGridThw: keepGrids,
  };
}

serveWorker({
  init(raw) {
    config = raw as unknown as ClStepConfig;
    torch.setNumThreads(config.threads);
    model = m.loadQwen25VL(config.modelDir).model;
    const file = torch.SafetensorsFile.open(config.batchFile);
    groups = ['q', 'p', 'n'].map((p) => group(file, p));
    optimizer = new torch.AdamW(model.parameters(), { lr: config.lr, weightDecay: 0 });
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      parameters: model.numParameters(),
    };
  },

  step(caseId) {
    const c = config!;
    const b = groups[0]!.inputIds.size(0);
    const k = groups[2]!.inputIds.size(0) / b;
    const lossOf = (e: torch.Tensor[]) => infoNce(e[0]!, e[1]!, e[2]!.view(b, k, -1), { temperature: c.temperature });
    let loss: number;
    if (caseId === 'gradcache') {
      loss = gradCache(
        groups.map((g) => ({
          size: g.inputIds.size(0),
          embed: (idx: readonly number[]) => model!.embed(slice(g, idx[0]!, idx.length)),
        })),
        (e) => ({ loss: lossOf(e).loss, extra: null }),
        { chunkSize: c.chunkSize },
      ).value;
    } else {
      loss = torch.scope(() => {
        const r = lossOf(groups.map((g) => model!.embed(g)));
        r.loss.backward();
        return r.loss.item();
      });
    }
    optimizer!.step();
    optimizer!.zeroGrad();
    return { loss, rows: b * (2 + k), queries: b };
  },
});
