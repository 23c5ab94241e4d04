// The deliverable of both training stages: a Hugging Face-layout embedding model directory.
import { mkdirSync } from 'node:fs';

import { type Qwen25VLModel, saveQwen25VL } from '../models/index.js';
import { type Qwen2VLImageProcessor, saveImageProcessorConfig } from '../processing/image/index.js';
import type { Tokenizer } from '../processing/tokenizer.js';

/** Weights and config, tokenizer and image processor config, loadable by `moca embed` and transformers. */
export async function exportEmbeddingModel(
  dir: string,
  model: Qwen25VLModel,
  tokenizer: Tokenizer,
  imageProcessor: Qwen2VLImageProcessor,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  saveQwen25VL(dir, model);
  tokenizer.save(dir);
  await saveImageProcessorConfig(dir, imageProcessor.config);
}
