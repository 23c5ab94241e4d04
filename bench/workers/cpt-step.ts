// Worker for `cpt-step` (ours): one MoCa stage-1 training step on a fixed interleaved micro-batch with fixed
// masks: forward (MLM + MAE), backward, AdamW step, zero_grad — the same step as bench/peers/cpt_step.py.
import * as m from '../../src/models/index.js';
import type { CptMasks } from '../../src/train/cpt/masking.js';
import { CptObjective, MaeHeads, type CptBatch } from '../../src/train/cpt/objective.js';
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

interface CptStepConfig {
  modelDir: string;
  batchFile: string;
  headsFile: string;
  threads: number;
  lr: number;
}

let objective: CptObjective | undefined;
let optimizer: torch.AdamW | undefined;
let batch: CptBatch | undefined;
let masks: CptMasks | undefined;
let tokens = 0;

serveWorker({
  init(raw) {
    const c = raw as unknown as CptStepConfig;
    torch.setNumThreads(c.threads);
    const { model } = m.loadQwen25VL(c.modelDir, { withLmHead: true });
    const file = torch.SafetensorsFile.open(c.batchFile);
    const t = (k: string) => file.get(k).keep();
    const heads = new MaeHeads(model, t('pixel_values').size(1));
    heads.loadStateDict(torch.loadSafetensors(c.headsFile));
    const maskTokenId = Number(file.metadata.mask_token_id);
    objective = new CptObjective(model, heads, {
      mlmProb: 0.4,
      maeProb: 0.5,
      maeWeight: 0.1,
      useMlm: true,
      useMae: true,
      maskTokenId,
      specialIds: [],
    });
    batch = {
      inputIds: t('input_ids'),
      attentionMask: t('attention_mask'),
      pixelValues: t('pixel_values'),
      imageGridThw: (t('image_grid_thw').tolist() as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const),
    };
    masks = { mlmMask: t('mlm_mask'), maeTokenMask: t('mae_token_mask'), noise: t('noise') };
    tokens = torch.scope(() => batch!.attentionMask.sum().item());
    optimizer = new torch.AdamW([...model.parameters(), ...heads.parameters()], {
      lr: c.lr,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
    });
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      parameters: model.numParameters() + heads.numParameters(),
      mask_token_id: maskTokenId,
    };
  },

  step() {
    const metrics = torch.scope(() => {
      const out = objective!.loss(batch!, masks);
      out.loss.backward();
      optimizer!.step();
      optimizer!.zeroGrad();
      return out.metrics;
    });
    return { loss: metrics.loss, mlm_loss: metrics.mlm_loss, mae_loss: metrics.mae_loss, tokens };
  },
});
