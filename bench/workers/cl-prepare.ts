// Prepares the `cl-step` bench: contrastive batches (queries, positives, 2 hard negatives each; text pairs, every
// fourth query with a small image) for the `small` model of the embed bench, written as q./p./n. groups (the
// layout of test/fixtures/cl-tiny/batch.safetensors that bench/peers/cl_step.py reads).
// Usage: node dist/bench/workers/cl-prepare.js <dir> <seed> <batch sizes, comma separated>
import path from 'node:path';

import sharp from 'sharp';

import { decodeImage, loadImageProcessorConfig, Qwen2VLImageProcessor } from '../../src/processing/image/index.js';
import { buildBatch, encodeInput, imageTokenIds, type SequenceItem } from '../../src/processing/sequence.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import * as torch from '../../src/torch/index.js';

const PH = '<|vision_start|><|image_pad|><|vision_end|>';
const NOUNS = 'cat dog house tree car person bird boat chair lamp'.split(' ');
const COLOURS = 'red blue green yellow black white'.split(' ');

async function main(): Promise<void> {
  const [dir, seedArg, sizesArg] = process.argv.slice(2);
  if (!dir) throw new Error('usage: cl-prepare.js <dir> <seed> <sizes>');
  const seed = Number(seedArg ?? 0);
  const modelDir = path.join(dir, 'model');
  const tokenizer = Tokenizer.fromDir(modelDir);
  const processor = new Qwen2VLImageProcessor({
    ...(await loadImageProcessorConfig(modelDir)),
    minPixels: 28 * 28 * 4,
    maxPixels: 28 * 28 * 16,
  });
  const ids = imageTokenIds(tokenizer);
  const png = await sharp({ create: { width: 84, height: 84, channels: 3, background: { r: 120, g: 40, b: 200 } } })
    .png()
    .toBuffer();
  const image = processor.process(await decodeImage(png));
  for (const size of (sizesArg ?? '32').split(',').map(Number)) {
    const q: SequenceItem[] = [];
    const p: SequenceItem[] = [];
    const n: SequenceItem[] = [];
    for (let i = 0; i < size; i++) {
      const noun = NOUNS[(i + seed) % NOUNS.length]!;
      const colour = COLOURS[(i * 7 + seed) % COLOURS.length]!;
      const withImage = i % 4 === 0;
      q.push(
        encodeInput(
          tokenizer,
          { text: `${withImage ? PH : ''}Find the description of a ${colour} ${noun} number ${i}.` },
          withImage ? [image] : [],
        ),
      );
      p.push(encodeInput(tokenizer, { text: `A ${colour} ${noun}, item ${i}, seen from the front.` }, []));
      for (let k = 0; k < 2; k++) {
        const other = COLOURS[(i * 7 + seed + k + 1) % COLOURS.length]!;
        n.push(encodeInput(tokenizer, { text: `A ${other} ${noun}, item ${i}, seen from the side ${k}.` }, []));
      }
    }
    const tensors = new Map<string, torch.Tensor>();
    for (const [prefix, items] of [
      ['q', q],
      ['p', p],
      ['n', n],
    ] as const) {
      const b = buildBatch(items, { ...ids, mergeSize: 2, maxLength: 1280 });
      tensors.set(`${prefix}.input_ids`, torch.tensor(b.inputIds, { shape: [b.batchSize, b.seqLen] }));
      tensors.set(`${prefix}.attention_mask`, torch.tensor(b.attentionMask, { shape: [b.batchSize, b.seqLen] }));
      if (b.imageGridThw.length > 0) {
        tensors.set(
          `${prefix}.pixel_values`,
          torch.tensor(b.pixelValues, { shape: [b.pixelValues.length / b.patchDim, b.patchDim] }),
        );
        tensors.set(`${prefix}.image_grid_thw`, torch.tensor(b.imageGridThw, { dtype: 'int64' }));
      }
    }
    torch.saveSafetensors(path.join(dir, `cl-${size}.safetensors`), tensors, { batch: String(size) });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`cl-prepare failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
