// Prepares the `embed` and `cpt-step` benches: a `small` random model directory, two input batches (text-only
// rows and image+text rows) built with our processor, and for `cpt-step` a mixed batch with fixed MLM/MAE masks
// plus MoCa-initialised MAE heads — written as safetensors files that both sides read.
// Usage: node dist/bench/workers/embed-prepare.js <dir> <seed>
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';

import { initModelDirectory } from '../../src/embed/index.js';
import { loadQwen25VL } from '../../src/models/index.js';
import { MaeHeads } from '../../src/train/cpt/objective.js';
import { sampleMasks } from '../../src/train/cpt/masking.js';
import { loadImageProcessorConfig, Qwen2VLImageProcessor, decodeImage } from '../../src/processing/image/index.js';
import { buildBatch, encodeInput, imageTokenIds } from '../../src/processing/sequence.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import * as torch from '../../src/torch/index.js';

const PH = '<|vision_start|><|image_pad|><|vision_end|>';
const WORDS =
  'the a red blue small large cat dog house tree car person image photo of with on under next to near'.split(' ');

function sentence(rng: () => number, words: number): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(rng() * WORDS.length)]).join(' ');
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main(): Promise<void> {
  const [dir, seedArg] = process.argv.slice(2);
  if (!dir) throw new Error('usage: embed-prepare.js <dir> <seed>');
  const seed = Number(seedArg ?? 0);
  const modelDir = path.join(dir, 'model');
  if (!existsSync(path.join(modelDir, 'model.safetensors'))) {
    mkdirSync(dir, { recursive: true });
    await initModelDirectory(modelDir, { preset: 'small', seed });
  }
  const tokenizer = Tokenizer.fromDir(modelDir);
  const processor = new Qwen2VLImageProcessor(await loadImageProcessorConfig(modelDir));
  const rng = mulberry32(seed);
  const ids = imageTokenIds(tokenizer);

  // Text-only: 16 rows of 20–60 words (byte-level tokens: a few hundred tokens each).
  const textItems = Array.from({ length: 16 }, () =>
    encodeInput(tokenizer, { text: sentence(rng, 20 + Math.floor(rng() * 40)) }, []),
  );
  // Image+text: 4 rows, one 320×240 image each (MoCa's pixel limits make it 256+ merged tokens) + an instruction.
  const imageItems = [];
  for (let i = 0; i < 4; i++) {
    const raw = Buffer.alloc(320 * 240 * 3);
    for (let k = 0; k < raw.length; k++) raw[k] = Math.floor(rng() * 256);
    const png = await sharp(raw, { raw: { width: 320, height: 240, channels: 3 } })
      .png()
      .toBuffer();
    const processed = processor.process(await decodeImage(png));
    imageItems.push(
      encodeInput(tokenizer, { text: `${PH}\nRepresent the given image: ${sentence(rng, 8)}\n` }, [processed]),
    );
  }
  for (const [name, items] of [
    ['text', textItems],
    ['image', imageItems],
  ] as const) {
    const b = buildBatch(items, { ...ids, mergeSize: 2, maxLength: 1280 });
    const tensors = new Map<string, torch.Tensor>([
      ['input_ids', torch.tensor(b.inputIds, { shape: [b.batchSize, b.seqLen] })],
      ['attention_mask', torch.tensor(b.attentionMask, { shape: [b.batchSize, b.seqLen] })],
    ]);
    if (b.imageGridThw.length > 0) {
      tensors.set(
        'pixel_values',
        torch.tensor(b.pixelValues, { shape: [b.pixelValues.length / b.patchDim, b.patchDim] }),
      );
      tensors.set('image_grid_thw', torch.tensor(b.imageGridThw, { dtype: 'int64' }));
    }
    torch.saveSafetensors(path.join(dir, `${name}.safetensors`), tensors, {
      rows: String(b.batchSize),
      seq_len: String(b.seqLen),
    });
  }

  // cpt-step: 4 text rows + the 4 image rows in one micro-batch, masks drawn once (seeded), MoCa's initial heads.
  const mixed = [...textItems.slice(0, 4), ...imageItems];
  const b = buildBatch(mixed, { ...ids, mergeSize: 2, maxLength: 1280 });
  const inputIds = torch.tensor(b.inputIds, { shape: [b.batchSize, b.seqLen] });
  const attentionMask = torch.tensor(b.attentionMask, { shape: [b.batchSize, b.seqLen] });
  torch.manualSeed(seed);
  const maskId = tokenizer.idLimit; // the id <|mask|> gets when added (inside the embedding rows)
  const masks = sampleMasks(inputIds, attentionMask, b.pixelValues.length / b.patchDim / 4, b.patchDim, {
    specialIds: [...tokenizer.specialTokenIds, maskId],
    mlmProb: 0.4,
    maeProb: 0.5,
  });
  torch.saveSafetensors(
    path.join(dir, 'cpt.safetensors'),
    new Map([
      ['input_ids', inputIds],
      ['attention_mask', attentionMask],
      ['pixel_values', torch.tensor(b.pixelValues, { shape: [b.pixelValues.length / b.patchDim, b.patchDim] })],
      ['image_grid_thw', torch.tensor(b.imageGridThw, { dtype: 'int64' })],
      ['mlm_mask', masks.mlmMask],
      ['mae_token_mask', masks.maeTokenMask],
      ['noise', masks.noise],
    ]),
    { mask_token_id: String(maskId) },
  );
  const { model } = loadQwen25VL(modelDir, { withLmHead: true });
  const heads = new MaeHeads(model, b.patchDim);
  heads.initializeFrom(model);
  torch.saveSafetensors(path.join(dir, 'heads.safetensors'), heads.stateDict());
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`embed-prepare failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
