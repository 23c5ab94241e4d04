import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { Embedder, initModelDirectory } from '../../src/embed/index.js';
import { batchesOf } from '../../src/embed/embedder.js';
import * as m from '../../src/models/index.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import * as torch from '../../src/torch/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moca-embedder-'));
const modelDir = path.join(dir, 'tiny');
const PH = '<|vision_start|><|image_pad|><|vision_end|>';
let embedder: Embedder;
let png: Buffer;
let png2: Buffer;

async function solidPng(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

before(async () => {
  await initModelDirectory(modelDir, { preset: 'tiny', seed: 1, initializerRange: 0.2 });
  // Small pixel limits keep the images (and the test) small.
  embedder = await Embedder.load(modelDir, { minPixels: 28 * 28 * 4, maxPixels: 28 * 28 * 16 });
  png = await solidPng(90, 60, [200, 30, 40]);
  png2 = await solidPng(40, 70, [10, 120, 250]);
  writeFileSync(path.join(dir, 'a.png'), png);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function maxAbs(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('Embedder', () => {
  test('moca init writes a loadable Hugging Face directory with matching special-token ids', () => {
    const config = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, number>;
    const tok = Tokenizer.fromDir(modelDir);
    assert.equal(tok.tokenToId('<|image_pad|>'), config.image_token_id);
    assert.equal(tok.tokenToId('<|vision_start|>'), config.vision_start_token_id);
    assert.equal(embedder.dimension, 64);
  });

  test('raw form and typed form give identical embeddings', async () => {
    const [raw, typed] = await embedder.embed([
      { text: `${PH}\nRepresent the given image.\n`, images: [png] },
      {
        content: [
          { type: 'image', image: png },
          { type: 'text', text: '\nRepresent the given image.\n' },
        ],
      },
    ]);
    assert.equal(maxAbs(raw!, typed!), 0);
  });

  test('an image path, a data URI and the bytes are the same image', async () => {
    const uri = `data:image/png;base64,${png.toString('base64')}`;
    const [a, b, c] = await embedder.embed([
      { text: PH, images: [path.join(dir, 'a.png')] },
      { text: PH, images: [uri] },
      { text: PH, images: [png] },
    ]);
    assert.equal(maxAbs(a!, b!), 0);
    assert.equal(maxAbs(a!, c!), 0);
  });

  test('results keep input order whatever the batch size (internal length sorting), equal to one-by-one', async () => {
    const inputs = [
      'short',
      { text: `${PH} two images ${PH} in one row`, images: [png, png2] },
      'a considerably longer text input that has many more tokens than the others do',
      { text: `${PH}x`, images: [png2] },
      'mid length text',
    ];
    const batched = await embedder.embed(inputs, { batchSize: 3 });
    for (let i = 0; i < inputs.length; i++) {
      const [alone] = await embedder.embed([inputs[i]!], { batchSize: 1 });
      assert.ok(maxAbs(batched[i]!, alone!) < 1e-5, `input ${i} differs from its single embedding`);
    }
    for (const e of batched) assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5, 'L2-normalised');
  });

  test('the same embeddings as the model called directly on hand-built inputs', async () => {
    const [e] = await embedder.embed(['hello']);
    const tok = Tokenizer.fromDir(modelDir);
    const ids = tok.encode('hello');
    const direct = torch.noGrad(() =>
      embedder.model.embed({
        inputIds: torch.tensor([ids]),
        attentionMask: torch.ones([1, ids.length], { dtype: 'int64' }),
      }),
    );
    assert.ok(maxAbs(e!, direct.toTypedArray() as Float32Array) < 1e-6);
  });

  test('bad inputs fail alone with a reason; the others are embedded', async () => {
    const outcomes = await embedder.embedSettled([
      'fine',
      { text: 'no placeholder', images: [png] },
      { text: PH, images: [Buffer.from('not an image')] },
      { text: PH, images: [path.join(dir, 'missing.png')] },
      { text: PH, images: [png2] },
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.ok),
      [true, false, false, false, true],
    );
    assert.match((outcomes[1] as { error: string }).error, /0 <\|image_pad\|> placeholder\(s\) but 1 image/);
    assert.match((outcomes[2] as { error: string }).error, /image 0/);
    assert.match((outcomes[3] as { error: string }).error, /missing\.png/);
    await assert.rejects(embedder.embed(['ok', { text: 'x', images: [png] }]), /input 1:/);
  });

  test('similarity is the cosine of the embeddings', async () => {
    const [a, b] = await embedder.embed(['red image', 'blue image']);
    const expected = a!.reduce((s, x, i) => s + x * b![i]!, 0);
    assert.ok(Math.abs(embedder.similarity(a!, b!) - expected) < 1e-6);
    assert.ok(Math.abs(embedder.similarity(a!, a!) - 1) < 1e-6);
  });

  test('a truncated input drops a cut image whole instead of failing', async () => {
    const small = await Embedder.load(modelDir, { minPixels: 28 * 28 * 4, maxPixels: 28 * 28 * 16, maxLength: 8 });
    const [e] = await small.embed([{ text: `abc${PH}def`, images: [png] }]);
    const [textOnly] = await small.embed(['abc']);
    assert.ok(maxAbs(e!, textOnly!) < 1e-5, 'the image was dropped and the text before it kept');
  });

  test('a tokenizer whose ids disagree with config.json is refused', async () => {
    const other = path.join(dir, 'mismatch');
    await initModelDirectory(other, { preset: 'tiny' });
    const config = JSON.parse(readFileSync(path.join(other, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(other, 'config.json'), JSON.stringify({ ...config, image_token_id: 5 }));
    await assert.rejects(Embedder.load(other), /<\|image_pad\|> has id \d+ but config\.json expects 5/);
  });

  for (const [dtype, minCosine] of [
    ['bfloat16', 0.999],
    ['int8', 0.99],
  ] as const) {
    test(`${dtype} linear weights agree with float32 (cosine > ${minCosine})`, async () => {
      const low = await Embedder.load(modelDir, { dtype, minPixels: 28 * 28 * 4, maxPixels: 28 * 28 * 16 });
      // The token-embedding table keeps the load dtype: bf16 for bfloat16, the checkpoint's (float32) for int8.
      assert.equal(low.model.dtype, dtype === 'bfloat16' ? 'bfloat16' : 'float32');
      assert.ok(low.model.namedModules().some(([, mod]) => mod instanceof torch.PackedLinear));
      const inputs = ['some text', { text: `${PH} caption`, images: [png] }];
      const a = await embedder.embed(inputs);
      const b = await low.embed(inputs);
      a.forEach((x, i) => {
        const cos = Embedder.similarity(x, b[i]!);
        assert.ok(cos > minCosine && cos < 1 - 1e-7, `input ${i}: cosine ${cos}`);
      });
    });
  }

  test('an unknown dtype is refused with the accepted ones', async () => {
    await assert.rejects(
      () => Embedder.load(modelDir, { dtype: 'float16' as 'float32' }),
      /dtype must be one of float32, bfloat16, int8/,
    );
  });

  test('a token budget splits batches without changing the embeddings', async () => {
    const costs = [9, 7, 5, 5, 2, 1].map((cost, index) => ({ cost, index }));
    assert.deepEqual(
      batchesOf(costs, 3, 12).map((g) => g.map((x) => x.index)),
      [[0], [1, 2], [3, 4, 5]],
    );
    assert.deepEqual(
      batchesOf(costs, 2, 100).map((g) => g.length),
      [2, 2, 2],
    );
    const inputs = ['short', 'a considerably longer text input with many more tokens', 'mid length text'];
    const plain = await embedder.embed(inputs, { batchSize: 8 });
    const budget = await embedder.embed(inputs, { batchSize: 8, maxBatchTokens: 20 });
    plain.forEach((e, i) => assert.ok(maxAbs(e, budget[i]!) < 1e-5));
  });

  test('image token count of a processed image is grid_h·grid_w/4', () => {
    const processed = embedder.imageProcessor.process({ width: 90, height: 60, data: new Uint8Array(90 * 60 * 3) });
    assert.equal(processed.numImageTokens, (processed.gridThw[1] * processed.gridThw[2]) / 4);
    assert.equal(m.imageTokenCount(processed.gridThw, 2), processed.numImageTokens);
  });
});
