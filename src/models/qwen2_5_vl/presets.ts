// Model shapes for `moca init`: tiny/small for tests and CPU demos, and the real Qwen2.5-VL 3B / 7B shapes.
import type { Qwen25VLConfig, VisionConfig } from './config.js';

export type PresetName = 'tiny' | 'small' | '3b' | '7b';

/** Special-token ids given the first id of the special block (Qwen's order; the real models start at 151643). */
export function specialTokenIds(first: number) {
  return {
    endoftext: first,
    imStart: first + 1,
    imEnd: first + 2,
    visionStart: first + 9,
    visionEnd: first + 10,
    visionPad: first + 11,
    imagePad: first + 12,
    videoPad: first + 13,
  };
}

const REAL_VISION: VisionConfig = {
  depth: 32,
  hiddenSize: 1280,
  hiddenAct: 'silu',
  intermediateSize: 3420,
  numHeads: 16,
  inChannels: 3,
  outHiddenSize: 2048,
  patchSize: 14,
  spatialMergeSize: 2,
  temporalPatchSize: 2,
  windowSize: 112,
  fullattBlockIndexes: [7, 15, 23, 31],
  tokensPerSecond: 2,
};

function base(
  firstSpecial: number,
  vocabSize: number,
): Omit<
  Qwen25VLConfig,
  | 'vision'
  | 'hiddenSize'
  | 'intermediateSize'
  | 'numHiddenLayers'
  | 'numAttentionHeads'
  | 'numKeyValueHeads'
  | 'mropeSection'
  | 'tieWordEmbeddings'
> {
  const ids = specialTokenIds(firstSpecial);
  return {
    vocabSize,
    hiddenAct: 'silu',
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    maxPositionEmbeddings: 128000,
    imageTokenId: ids.imagePad,
    videoTokenId: ids.videoPad,
    visionStartTokenId: ids.visionStart,
    visionEndTokenId: ids.visionEnd,
    visionTokenId: ids.visionPad,
    bosTokenId: ids.endoftext,
    eosTokenId: ids.imEnd,
    torchDtype: 'float32',
    extra: {},
  };
}

/**
 * `tinyVocab`: vocabulary rows of the small presets (byte-level base tokens + merges + specials must fit). The
 * special block starts right after the BPE vocabulary, leaving room for added tokens such as `<|mask|>`.
 */
export function presetConfig(name: PresetName, options: { bpeVocabSize?: number } = {}): Qwen25VLConfig {
  switch (name) {
    case 'tiny': {
      const bpe = options.bpeVocabSize ?? 256;
      return {
        ...base(bpe, bpe + 32),
        hiddenSize: 64,
        intermediateSize: 128,
        numHiddenLayers: 2,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        mropeSection: [2, 3, 3],
        tieWordEmbeddings: true,
        vision: {
          ...REAL_VISION,
          depth: 2,
          hiddenSize: 32,
          intermediateSize: 64,
          numHeads: 2,
          outHiddenSize: 64,
          fullattBlockIndexes: [1],
        },
      };
    }
    case 'small': {
      const bpe = options.bpeVocabSize ?? 4096;
      return {
        ...base(bpe, bpe + 64),
        hiddenSize: 512,
        intermediateSize: 1376,
        numHiddenLayers: 4,
        numAttentionHeads: 8,
        numKeyValueHeads: 2,
        mropeSection: [8, 12, 12],
        tieWordEmbeddings: true,
        vision: {
          ...REAL_VISION,
          depth: 4,
          hiddenSize: 256,
          intermediateSize: 684,
          numHeads: 4,
          outHiddenSize: 512,
          fullattBlockIndexes: [1, 3],
        },
      };
    }
    case '3b':
      return {
        ...base(151643, 151936),
        hiddenSize: 2048,
        intermediateSize: 11008,
        numHiddenLayers: 36,
        numAttentionHeads: 16,
        numKeyValueHeads: 2,
        mropeSection: [16, 24, 24],
        tieWordEmbeddings: true,
        torchDtype: 'bfloat16',
        vision: { ...REAL_VISION, outHiddenSize: 2048 },
      };
    case '7b':
      return {
        ...base(151643, 152064),
        hiddenSize: 3584,
        intermediateSize: 18944,
        numHiddenLayers: 28,
        numAttentionHeads: 28,
        numKeyValueHeads: 4,
        mropeSection: [16, 24, 24],
        tieWordEmbeddings: false,
        torchDtype: 'bfloat16',
        vision: { ...REAL_VISION, outHiddenSize: 3584 },
      };
  }
}
