// Sample cost (spec §2.2) on hand-computed cases, and sample preparation (spec §2.3): the ≥ 28 px upsizing against
// PIL, processed images and token ids.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  BadRowRecorder,
  DataError,
  DataSource,
  ensureMinSide,
  measureDocument,
  parseSourceSpec,
  prepareSample,
  sampleCost,
  START_CURSOR,
  textTokenCount,
  type Document,
} from '../../src/data/index.js';
import { Qwen2VLImageProcessor, resizeBicubic } from '../../src/processing/image/index.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import { FIXTURES, IMG, TINY_TOKENIZER, wordTokenizer } from './helpers.js';

async function docsOf(spec: string): Promise<Document[]> {
  const out: Document[] = [];
  for await (const x of new DataSource(parseSourceSpec(spec)).documents(START_CURSOR, 0, new BadRowRecorder())) {
    out.push(x.doc);
  }
  return out;
}

describe('cost = min(maxLength, text_tokens + 4·image_tokens + 2·n_images)', () => {
  test('text tokens are summed over the pieces between placeholders', () => {
    assert.equal(textTokenCount(`a b ${IMG} c d e ${IMG}`, wordTokenizer), 5);
    assert.equal(textTokenCount(`${IMG}${IMG}`, wordTokenizer), 0);
    assert.equal(textTokenCount('', wordTokenizer), 0);
  });

  test('formula and clip', () => {
    assert.equal(sampleCost({ textTokens: 5, imageTokens: 6, nImages: 2 }), 5 + 24 + 4);
    assert.equal(sampleCost({ textTokens: 5, imageTokens: 6, nImages: 2 }, 30), 30);
    assert.equal(sampleCost({ textTokens: 2000, imageTokens: 0, nImages: 0 }), 1280);
  });

  test('measured documents: raw image sizes, ceil(w/28)·ceil(h/28)', async () => {
    const jsonl = await docsOf(`j=${join(FIXTURES, 'docs.jsonl')}`);
    // "A red gradient ⟨img⟩ under a caption." — 3 + 3 words; red 40×30 → 2·2 = 4 merged tokens.
    let m = await measureDocument(jsonl[0]!, wordTokenizer);
    assert.deepEqual([m.textTokens, m.imageTokens, m.nImages, m.cost, m.imageSizes], [6, 4, 1, 6 + 16 + 2, [[40, 30]]]);
    // "Two images: ⟨img⟩ and then ⟨img⟩." — 2 + 2 + 1 words; blue 20×40 → 1·2, data: URI 9×5 → 1·1.
    m = await measureDocument(jsonl[2]!, wordTokenizer);
    assert.deepEqual([m.textTokens, m.imageTokens, m.nImages, m.cost], [5, 3, 2, 5 + 12 + 4]);
    assert.deepEqual(m.imageSizes, [
      [20, 40],
      [9, 5],
    ]);
    // Text-only rows cost their words.
    m = await measureDocument(jsonl[1]!, wordTokenizer);
    assert.deepEqual([m.cost, m.nImages], [7, 0]);

    const pq = await docsOf(`p=${join(FIXTURES, 'interleaved.parquet')}`);
    // "⟨img⟩ two ⟨img⟩ images" — 2 words; green 60×57 → 3·3 = 9, blue 20×40 → 2: 2 + 4·11 + 2·2 = 50.
    m = await measureDocument(pq[2]!, wordTokenizer);
    assert.deepEqual([m.textTokens, m.imageTokens, m.cost], [2, 11, 50]);
    m = await measureDocument(pq[2]!, wordTokenizer, { maxLength: 40 });
    assert.equal(m.cost, 40);
    // Header-only measuring gives the same sizes.
    const h = await measureDocument(pq[2]!, wordTokenizer, { imageCheck: 'header' });
    assert.deepEqual(h.imageSizes, [
      [60, 57],
      [20, 40],
    ]);
  });

  test('with the real tokenizer, pieces are tokenized separately', async () => {
    const tok = Tokenizer.fromDir(TINY_TOKENIZER);
    const text = `hello there${IMG}world, again ${IMG}!`;
    const pieces = ['hello there', 'world, again ', '!'];
    const expected = pieces.reduce((s, p) => s + tok.encode(p).length, 0);
    assert.equal(textTokenCount(text, tok), expected);
    assert.ok(expected > 0);
  });

  test('a corrupt or missing image is a bad_image DataError naming the row', async () => {
    const pq = await docsOf(`p=${join(FIXTURES, 'interleaved.parquet')}`);
    await assert.rejects(measureDocument(pq[4]!, wordTokenizer), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.equal(e.reason, 'bad_image');
      assert.match(e.message, /^source "p" row 4 \(id p:4, .*interleaved\.parquet\): image 0: Cannot decode image/);
      return true;
    });
    await assert.rejects(measureDocument(pq[4]!, wordTokenizer, { imageCheck: 'header' }), /image 0/);
  });
});

describe('prepareSample', () => {
  const tok = Tokenizer.fromDir(TINY_TOKENIZER);
  const processor = new Qwen2VLImageProcessor();
  const imagePad = tok.tokenToId('<|image_pad|>')!;

  test('images under 28 px are upsized like PIL (bicubic) before the processor', async () => {
    const jsonl = await docsOf(`j=${join(FIXTURES, 'docs.jsonl')}`);
    const s = await prepareSample(jsonl[2]!, tok, processor);
    assert.deepEqual(s.imageSizes, [
      [20, 40],
      [9, 5],
    ]);
    assert.deepEqual(s.inputSizes, [
      [28, 40],
      [28, 28],
    ]);
    const pil = new Uint8Array(readFileSync(join(FIXTURES, 'blue_20x40_to_28x40.rgb')));
    const expected = processor.process({ width: 28, height: 40, data: pil });
    assert.deepEqual(s.item.images[0]!.gridThw, expected.gridThw);
    assert.deepEqual(s.item.images[0]!.pixelValues, expected.pixelValues);
    // One <|image_pad|> per image in the (unexpanded, untruncated) ids, and the cost as measured.
    assert.equal(s.item.inputIds.filter((id) => id === imagePad).length, 2);
    assert.deepEqual(s.item.inputIds, tok.encode(jsonl[2]!.text));
    assert.equal(s.cost, s.textTokens + 4 * 3 + 2 * 2);
  });

  test('ensureMinSide leaves large images alone and matches resizeBicubic otherwise', () => {
    const big = { width: 30, height: 28, data: new Uint8Array(30 * 28 * 3).fill(7) };
    assert.equal(ensureMinSide(big), big);
    const small = { width: 3, height: 50, data: new Uint8Array(3 * 50 * 3).map((_, i) => i % 251) };
    assert.deepEqual(ensureMinSide(small), resizeBicubic(small, 28, 50));
  });

  test('text-only and Parquet documents; bad images throw DataError', async () => {
    const pq = await docsOf(`p=${join(FIXTURES, 'interleaved.parquet')}`);
    const textOnly = await prepareSample(pq[1]!, tok, processor);
    assert.deepEqual(textOnly.item.images, []);
    assert.deepEqual(textOnly.item.inputIds, tok.encode('Parquet text-only row.'));
    const two = await prepareSample(pq[2]!, tok, processor);
    assert.equal(two.item.images.length, 2);
    assert.deepEqual(two.inputSizes, [
      [60, 57],
      [28, 40],
    ]);
    await assert.rejects(prepareSample(pq[4]!, tok, processor), (e: unknown) => {
      assert.ok(e instanceof DataError && e.reason === 'bad_image');
      return true;
    });
  });
});
