// MoCa's stage-1 objective (spec §2.4–§2.6): joint masked language modelling on text tokens and masked
// auto-encoding of image patches, on one forward pass of the bidirectional model.
import { type GridThw, type Qwen25VLModel } from '../../models/index.js';
import { DecoderLayer } from '../../models/qwen2_5_vl/text.js';
import { F, init, Linear, Module, noGrad, scalarTensor, scope, type Tensor } from '../../torch/index.js';
import { linearCrossEntropy } from '../linear-cross-entropy.js';
import { applyMaeMask, applyMlmMask, type CptMasks, maePredictionMask, sampleMasks } from './masking.js';

/** The MAE decoder layer and projection trained in stage 1 (saved with the training state, not exported). */
export class MaeHeads extends Module {
  mae_decoder: DecoderLayer;
  mae_proj: Linear;

  constructor(
    model: Qwen25VLModel,
    readonly patchDim: number,
  ) {
    super();
    const c = model.config;
    const f = { dtype: model.dtype, device: model.device };
    this.mae_decoder = new DecoderLayer(c, f);
    const unit = c.vision.spatialMergeSize ** 2;
    this.mae_proj = new Linear(c.hiddenSize, unit * patchDim, { ...f, bias: true });
  }

  /** MoCa's initialisation: the decoder is a copy of LLM layer ⌊L/2⌋; the projection N(0, 0.02) with zero bias. */
  initializeFrom(model: Qwen25VLModel): void {
    const middle = model.model.layers.get(Math.floor(model.config.numHiddenLayers / 2));
    this.mae_decoder.loadStateDict(middle.stateDict());
    noGrad(() => {
      init.normal_(this.mae_proj.weight, 0, 0.02);
      init.zeros_(this.mae_proj.bias!);
    });
  }
}

export interface CptOptions {
  /** Probability that a text token is masked (MoCa 0.4). */
  mlmProb: number;
  /** Probability that a merged image token is masked (MoCa 0.5). */
  maeProb: number;
  /** Weight of the MAE term (MoCa 0.1). */
  maeWeight: number;
  useMlm: boolean;
  useMae: boolean;
  maskTokenId: number;
  /** Ids never masked (all special tokens of the tokenizer). */
  specialIds: readonly number[];
  /** Bound on one chunk of MLM logits (rows × vocab). */
  chunkElements?: number;
}

export const CPT_DEFAULTS = { mlmProb: 0.4, maeProb: 0.5, maeWeight: 0.1, useMlm: true, useMae: true } as const;

export interface CptBatch {
  inputIds: Tensor;
  attentionMask: Tensor;
  pixelValues: Tensor | null;
  imageGridThw: readonly GridThw[];
}

export interface CptLoss {
  loss: Tensor;
  metrics: {
    loss: number;
    mlm_loss: number;
    mae_loss: number;
    mlm_accuracy: number;
    masked_tokens: number;
    masked_patches: number;
    tokens: number;
  };
}

export class CptObjective {
  constructor(
    readonly model: Qwen25VLModel,
    readonly heads: MaeHeads,
    readonly options: CptOptions,
  ) {
    if (model.lm_head === null)
      throw new Error('stage-1 training needs the model loaded with its LM head (withLmHead)');
    if (model.attentionMode !== 'bidirectional') {
      throw new Error('MoCa pre-trains with bidirectional attention; load the model with attention "bidirectional"');
    }
  }

  private get mergeUnit(): number {
    return this.model.config.vision.spatialMergeSize ** 2;
  }

  /** Masks drawn from libtorch's generator (seeded; part of the training state). */
  sampleMasks(batch: CptBatch): CptMasks {
    const rows = batch.pixelValues?.size(0) ?? 0;
    return sampleMasks(batch.inputIds, batch.attentionMask, rows / this.mergeUnit, this.heads.patchDim, {
      specialIds: this.options.specialIds,
      mlmProb: this.options.useMlm ? this.options.mlmProb : 0,
      maeProb: this.options.useMae ? this.options.maeProb : 0,
    });
  }

  /** Joint loss `MLM + maeWeight · MAE` for one micro-batch (masks drawn unless given). A term with nothing
   * masked is 0, never NaN. */
  loss(batch: CptBatch, givenMasks?: CptMasks): CptLoss {
    return scope(() => {
      const masks = givenMasks ?? this.sampleMasks(batch);
      const { ids, labels } = applyMlmMask(batch.inputIds, masks.mlmMask, this.options.maskTokenId);
      const pixels =
        batch.pixelValues === null
          ? null
          : applyMaeMask(batch.pixelValues, masks.maeTokenMask, masks.noise, this.mergeUnit);
      const { hidden, ctx } = this.model.forwardWithContext({
        inputIds: ids,
        attentionMask: batch.attentionMask,
        pixelValues: pixels,
        imageGridThw: batch.imageGridThw,
      });

      // MLM: same-position prediction through the LM head, only at masked positions, in chunks.
      const selected = hidden.index(masks.mlmMask);
      const targets = labels.maskedSelect(masks.mlmMask);
      const mlm = linearCrossEntropy(selected, this.model.lm_head!.weight, targets, {
        ...(this.options.chunkElements === undefined ? {} : { chunkElements: this.options.chunkElements }),
      });

      // MAE: one decoder layer over the final hidden states, projection at masked image tokens, MSE to the
      // original (processor-normalised) pixels of the masked patches.
      let mae: Tensor = scalarTensor(0, { dtype: 'float32' });
      let maskedPatches = 0;
      if (batch.pixelValues !== null && masks.maeTokenMask.size(0) > 0) {
        maskedPatches = masks.maeTokenMask.sum().item();
        if (maskedPatches > 0) {
          const predMask = maePredictionMask(ids, this.model.config.imageTokenId, masks.maeTokenMask);
          const decoded = this.heads.mae_decoder.forward(hidden, ctx);
          const n = maskedPatches;
          const pd = this.heads.patchDim;
          const pred = this.heads.mae_proj
            .forward(decoded.index(predMask))
            .view(n, pd, this.mergeUnit)
            .permute(0, 2, 1)
            .reshape(n * this.mergeUnit, pd);
          const rowMask = masks.maeTokenMask.repeatInterleave(this.mergeUnit);
          const target = batch.pixelValues.index(rowMask);
          mae = F.mseLoss(pred.float(), target.float());
        }
      }

      const mlmTerm = this.options.useMlm ? mlm.loss : mlm.loss.mul(0);
      const maeTerm = this.options.useMae ? mae.mul(this.options.maeWeight) : mae.mul(0);
      const loss = mlmTerm.add(maeTerm);
      const mlmLoss = mlm.loss.item();
      const maeLoss = mae.item();
      return {
        loss,
        metrics: {
          loss: (this.options.useMlm ? mlmLoss : 0) + (this.options.useMae ? this.options.maeWeight * maeLoss : 0),
          mlm_loss: mlmLoss,
          mae_loss: maeLoss,
          mlm_accuracy: mlm.rows > 0 ? mlm.correct / mlm.rows : 0,
          masked_tokens: mlm.rows,
          masked_patches: maskedPatches,
          tokens: batch.attentionMask.ne(0).sum().item(),
        },
      };
    });
  }
}
