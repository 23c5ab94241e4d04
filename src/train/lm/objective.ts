// Causal language modelling (next-token prediction) on interleaved documents: what a base VLM such as Qwen2.5-VL
// was trained with before MoCa. The demo uses it to make a small "causal VLM" from scratch, which both arms of the
// ablation then start from; it is also usable on its own (`moca train lm`).
import type { Qwen25VLModel } from '../../models/index.js';
import { scope, type Tensor } from '../../torch/index.js';
import { linearCrossEntropy } from '../linear-cross-entropy.js';
import type { CptBatch } from '../cpt/objective.js';

export interface CausalLmOptions {
  /** Token ids never used as targets (image pads: their "next token" is decided by the image, not the text). */
  ignoreTargetIds: readonly number[];
  /** Bound on one chunk of logits (rows × vocabulary) in the chunked cross-entropy. */
  chunkElements?: number;
}

export interface CausalLmLoss {
  loss: Tensor;
  metrics: { lm_loss: number; lm_accuracy: number; predicted_tokens: number; tokens: number };
}

export class CausalLmObjective {
  constructor(
    readonly model: Qwen25VLModel,
    readonly options: CausalLmOptions,
  ) {
    if (model.lm_head === null) throw new Error('causal LM training needs the model loaded with its LM head');
    if (model.attentionMode !== 'causal')
      throw new Error('causal LM training needs causal attention; load the model with attention "causal"');
  }

  /** Mean next-token cross-entropy over the real (non-padding) positions whose target is not an ignored id. */
  loss(batch: CptBatch): CausalLmLoss {
    return scope(() => {
      const { hidden } = this.model.forwardWithContext({
        inputIds: batch.inputIds,
        attentionMask: batch.attentionMask,
        pixelValues: batch.pixelValues,
        imageGridThw: batch.imageGridThw,
      });
      const seqLen = batch.inputIds.size(1);
      const real = batch.attentionMask.ne(0);
      const targets = batch.inputIds.narrow(1, 1, seqLen - 1);
      let valid = real.narrow(1, 0, seqLen - 1).logicalAnd(real.narrow(1, 1, seqLen - 1));
      for (const id of this.options.ignoreTargetIds) valid = valid.logicalAnd(targets.ne(id));
      const selected = hidden.narrow(1, 0, seqLen - 1).index(valid);
      const labels = targets.maskedSelect(valid);
      const ce = linearCrossEntropy(selected, this.model.lm_head!.weight, labels, {
        ...(this.options.chunkElements === undefined ? {} : { chunkElements: this.options.chunkElements }),
      });
      return {
        loss: ce.loss,
        metrics: {
          lm_loss: ce.loss.item(),
          lm_accuracy: ce.rows > 0 ? ce.correct / ce.rows : 0,
          predicted_tokens: ce.rows,
          tokens: real.sum().item(),
        },
      };
    });
  }
}
