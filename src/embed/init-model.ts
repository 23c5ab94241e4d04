// Writes a randomly initialised model directory (config, weights, tokenizer, image processor config) in the
// Hugging Face layout, so users and tests can start without downloads.
import { mkdirSync } from 'node:fs';

import { type PresetName, presetConfig, Qwen25VLModel, saveQwen25VL, type Qwen25VLConfig } from '../models/index.js';
import { buildByteLevelBpeTokenizerJson, QWEN2_VL_SPECIAL_TOKENS } from '../processing/bpe-builder.js';
import {
  MOCA_PIXEL_LIMITS,
  QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  saveImageProcessorConfig,
} from '../processing/image/index.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { type DTypeLike, init, manualSeed, noGrad, noInit, toDType } from '../torch/index.js';

export interface InitModelOptions {
  preset: PresetName;
  seed?: number;
  /** Storage dtype of the weights (default: float32 for tiny/small, bfloat16 for 3b/7b). */
  dtype?: DTypeLike;
  /** Standard deviation of the normal initialisation (transformers' initializer_range, 0.02). */
  initializerRange?: number;
  /** Byte-level BPE merges for the tokenizer (default none: 256 byte tokens + Qwen's special tokens). */
  merges?: readonly (readonly [string, string])[];
  /** Shape changes applied over the preset (e.g. a CPU-sized demo model); `vision` is merged field by field. */
  configOverrides?: Omit<Partial<Qwen25VLConfig>, 'vision'> & { vision?: Partial<Qwen25VLConfig['vision']> };
  /** Image processor pixel limits (default MoCa's 256·28² … 1024·28²). */
  minPixels?: number;
  maxPixels?: number;
}

/**
 * Initialises weights as transformers' Qwen2.5-VL `_init_weights`: linear and embedding weights N(0, std), biases 0,
 * norm weights 1.
 */
export function initializeWeights(model: Qwen25VLModel, std = 0.02): void {
  noGrad(() => {
    for (const [name, p] of model.namedParameters()) {
      if (name.endsWith('.bias')) init.zeros_(p);
      else if (p.ndim === 1) init.ones_(p);
      else init.normal_(p, 0, std);
    }
  });
}

export async function initModelDirectory(dir: string, options: InitModelOptions): Promise<Qwen25VLConfig> {
  const real = options.preset === '3b' || options.preset === '7b';
  const merges = options.merges ?? [];
  const bpeVocab = 256 + merges.length;
  const preset = presetConfig(options.preset, real ? {} : { bpeVocabSize: bpeVocab });
  const { vision: visionOverrides, ...overrides } = options.configOverrides ?? {};
  const config: Qwen25VLConfig = { ...preset, ...overrides, vision: { ...preset.vision, ...visionOverrides } };
  const dtype = toDType(options.dtype ?? (real ? 'bfloat16' : 'float32'));
  mkdirSync(dir, { recursive: true });
  manualSeed(options.seed ?? 0);
  // Allocate without the layers' own initialisation, then initialise once in the target dtype.
  const model = noInit(() => new Qwen25VLModel({ ...config, torchDtype: dtype }, { dtype }));
  initializeWeights(model, options.initializerRange ?? 0.02);
  saveQwen25VL(dir, model, { dtype });
  for (const p of model.parameters()) p.dispose();

  const tokenizerJson = buildByteLevelBpeTokenizerJson({
    merges,
    firstSpecialId: config.bosTokenId ?? bpeVocab,
    specialTokens: QWEN2_VL_SPECIAL_TOKENS,
    includeToolAndFimTokens: real,
  });
  Tokenizer.fromJson(tokenizerJson, {}, `${dir}/tokenizer.json`).save(dir);
  await saveImageProcessorConfig(dir, {
    ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
    ...MOCA_PIXEL_LIMITS,
    ...(options.minPixels === undefined ? {} : { minPixels: options.minPixels }),
    ...(options.maxPixels === undefined ? {} : { maxPixels: options.maxPixels }),
  });
  return config;
}
