// MoCa's corruptions for continual pre-training (spec §2.4–§2.5), drawn from libtorch's seeded generator so
// that they are reproducible and restored with the RNG state on resume.
import { bernoulli, noGrad, randn, scope, tensor, type Tensor, where, zeros } from '../../torch/index.js';

export interface CptMasks {
  /** (B, L) bool: text positions replaced by the mask token (MLM targets). */
  mlmMask: Tensor;
  /** (n merged image tokens,) bool, in image-token order (= pixel rows / 4). */
  maeTokenMask: Tensor;
  /** (patchDim,) float32: the one Gaussian vector written over every masked pixel row of the micro-batch. */
  noise: Tensor;
}

/**
 * MLM: every real, non-special token is selected with probability `prob` (i.i.d.); special tokens (pad,
 * vision markers, image placeholders, the mask token…) and padding never are.
 */
export function sampleMlmMask(
  inputIds: Tensor,
  attentionMask: Tensor,
  specialIds: Iterable<number>,
  prob: number,
): Tensor {
  return noGrad(() =>
    scope(() => {
      let candidate = attentionMask.ne(0);
      for (const id of specialIds) candidate = candidate.logicalAnd(inputIds.ne(id));
      const draw = bernoulli(zeros(inputIds.shape, { dtype: 'float32' }), prob).bool();
      return draw.logicalAnd(candidate);
    }),
  );
}

/** MAE: every merged image token (2×2 patches, both frames) is masked with probability `prob`. */
export function sampleMaeTokenMask(numMergedTokens: number, prob: number): Tensor {
  return noGrad(() => scope(() => bernoulli(zeros([numMergedTokens], { dtype: 'float32' }), prob).bool()));
}

export function sampleMasks(
  inputIds: Tensor,
  attentionMask: Tensor,
  numMergedTokens: number,
  patchDim: number,
  options: { specialIds: Iterable<number>; mlmProb: number; maeProb: number },
): CptMasks {
  return {
    mlmMask: sampleMlmMask(inputIds, attentionMask, options.specialIds, options.mlmProb),
    maeTokenMask: sampleMaeTokenMask(numMergedTokens, options.maeProb),
    noise: noGrad(() => randn([patchDim])),
  };
}

/** Input ids with the MLM positions replaced by `maskTokenId`, and the labels (original id there, −100 elsewhere). */
export function applyMlmMask(inputIds: Tensor, mlmMask: Tensor, maskTokenId: number): { ids: Tensor; labels: Tensor } {
  return noGrad(() =>
    scope(() => ({
      ids: where(mlmMask, maskTokenId, inputIds),
      labels: where(mlmMask, inputIds, -100),
    })),
  );
}

/** Pixel rows with every row of a masked merged token (`mergeUnit` rows each) overwritten by `noise`. */
export function applyMaeMask(pixelValues: Tensor, maeTokenMask: Tensor, noise: Tensor, mergeUnit: number): Tensor {
  return noGrad(() =>
    scope(() => {
      const rowMask = maeTokenMask.repeatInterleave(mergeUnit).unsqueeze(1);
      return where(rowMask, noise.to(pixelValues.dtype).unsqueeze(0), pixelValues);
    }),
  );
}

/**
 * (B, L) bool marking the image-placeholder positions whose merged token is masked: image tokens are taken in
 * row-major order, which is the order of the merged tokens (MoCa's `mae_pred_mask`).
 */
export function maePredictionMask(inputIds: Tensor, imageTokenId: number, maeTokenMask: Tensor): Tensor {
  return noGrad(() =>
    scope(() => {
      const isImage = inputIds.eq(imageTokenId);
      const count = isImage.sum().item();
      if (count !== maeTokenMask.size(0)) {
        throw new Error(`MAE mask covers ${maeTokenMask.size(0)} merged tokens but the ids hold ${count} image tokens`);
      }
      return zeros(inputIds.shape, { dtype: 'bool' }).maskedScatter(isImage, maeTokenMask);
    }),
  );
}

/** Deterministic masks from explicit boolean arrays (tests and fixtures). */
export function masksFrom(mlm: boolean[][], mae: boolean[], noise: Float32Array): CptMasks {
  return {
    mlmMask: tensor(mlm),
    maeTokenMask: tensor(mae.length ? mae : [], { dtype: 'bool' }),
    noise: tensor(noise),
  };
}
