// Sequence builder: placeholder expansion, right padding, truncation that keeps images whole, tensors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import { parseInputRow, QWEN_IMAGE_PLACEHOLDER as IMG } from '../../src/processing/inputs.js';
import {
  type Batch,
  batchToTensors,
  buildBatch,
  encodeInput,
  expandImageTokens,
  imageTokenIds,
  type ProcessedImage,
  type SequenceItem,
} from '../../src/processing/sequence.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import * as torch from '../../src/torch/index.js';

// Small fake ids: pad 0, <|vision_start|> 7, <|vision_end|> 8, <|image_pad|> 9; text tokens 1…6.
const IDS = { padTokenId: 0, visionStartTokenId: 7, visionEndTokenId: 8, imageTokenId: 9 };
const PATCH = 6; // values per pixel row (1176 for the real model; small here)

/** An image whose pixel rows are all `tag` (so the rows can be traced in the batch). */
function image(h: number, w: number, tag: number, patchDim = PATCH): ProcessedImage {
  return { gridThw: [1, h, w], pixelValues: new Float32Array(h * w * patchDim).fill(tag) };
}

const row = (b: Batch, r: number, field: 'inputIds' | 'attentionMask' = 'inputIds'): number[] =>
  Array.from(b[field].subarray(r * b.seqLen, (r + 1) * b.seqLen), Number);

/** Tags of the pixel rows in order, run-length encoded: [[tag, rows], …]. */
function pixelRuns(b: Batch): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < b.pixelValues.length; i += b.patchDim) {
    const tag = b.pixelValues[i]!;
    const last = runs.at(-1);
    if (last && last[0] === tag) last[1]++;
    else runs.push([tag, 1]);
  }
  return runs;
}

/** Checks the invariants every batch must hold: pads where mask is 0, image tokens = kept pixel rows / 4. */
function checkConsistent(b: Batch, items: readonly SequenceItem[]): void {
  let imageTokens = 0;
  for (let r = 0; r < b.batchSize; r++) {
    const ids = row(b, r);
    const mask = row(b, r, 'attentionMask');
    assert.equal(
      mask.reduce((s, m) => s + m, 0),
      b.lengths[r],
    );
    mask.forEach((m, i) => {
      if (i < b.lengths[r]!) assert.equal(m, 1);
      else {
        assert.equal(m, 0);
        assert.equal(ids[i], IDS.padTokenId);
      }
    });
    const real = ids.slice(0, b.lengths[r]);
    imageTokens += real.filter((x) => x === IDS.imageTokenId).length;
    assert.equal(real.filter((x) => x === IDS.visionStartTokenId).length, b.keptImages[r]!.length);
    assert.equal(real.filter((x) => x === IDS.visionEndTokenId).length, b.keptImages[r]!.length);
    for (const k of b.keptImages[r]!) assert.ok(k < items[r]!.images.length);
  }
  const rows = b.imageGridThw.reduce((s, [t, h, w]) => s + t * h * w, 0);
  assert.equal(b.pixelValues.length, rows * b.patchDim);
  assert.equal(imageTokens, rows / 4);
}

describe('expansion and padding', () => {
  test('one image expands to h·w/4 pads', () => {
    const items = [{ inputIds: [1, 7, 9, 8, 2], images: [image(4, 6, 1)] }];
    const b = buildBatch(items, IDS);
    assert.equal(b.seqLen, 10);
    assert.deepEqual(row(b, 0), [1, 7, 9, 9, 9, 9, 9, 9, 8, 2]);
    assert.deepEqual(row(b, 0, 'attentionMask'), Array(10).fill(1));
    assert.deepEqual(b.imageGridThw, [[1, 4, 6]]);
    assert.equal(b.patchDim, PATCH);
    assert.deepEqual(b.truncated, [false]);
    checkConsistent(b, items);
  });

  test('right padding; pixel rows in batch-row then text order', () => {
    const items = [
      { inputIds: [1], images: [] },
      { inputIds: [7, 9, 8, 3, 7, 9, 8], images: [image(2, 2, 10), image(2, 4, 11)] },
      { inputIds: [2, 7, 9, 8], images: [image(4, 2, 12)] },
    ];
    const b = buildBatch(items, IDS);
    assert.equal(b.batchSize, 3);
    assert.equal(b.seqLen, 8); // row 1: (1 + 1 + 1) + 1 + (1 + 2 + 1)
    assert.deepEqual(row(b, 0), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(row(b, 0, 'attentionMask'), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(row(b, 1), [7, 9, 8, 3, 7, 9, 9, 8]);
    assert.deepEqual(row(b, 2), [2, 7, 9, 9, 8, 0, 0, 0]);
    assert.deepEqual(b.lengths, [1, 8, 5]);
    assert.deepEqual(b.keptImages, [[], [0, 1], [0]]);
    assert.deepEqual(b.imageGridThw, [
      [1, 2, 2],
      [1, 2, 4],
      [1, 4, 2],
    ]);
    assert.deepEqual(pixelRuns(b), [
      [10, 4],
      [11, 8],
      [12, 8],
    ]);
    checkConsistent(b, items);
  });

  test('padToMultipleOf rounds up, capped by maxLength', () => {
    const items = [{ inputIds: [1, 2, 3, 4, 5], images: [] }];
    assert.equal(buildBatch(items, { ...IDS, padToMultipleOf: 4 }).seqLen, 8);
    assert.equal(buildBatch(items, { ...IDS, padToMultipleOf: 5 }).seqLen, 5);
    assert.equal(buildBatch(items, { ...IDS, padToMultipleOf: 32 }).seqLen, 32);
    assert.equal(buildBatch(items, { ...IDS, padToMultipleOf: 32, maxLength: 6 }).seqLen, 6);
    const b = buildBatch(items, { ...IDS, padToMultipleOf: 4 });
    assert.deepEqual(row(b, 0), [1, 2, 3, 4, 5, 0, 0, 0]);
    assert.deepEqual(row(b, 0, 'attentionMask'), [1, 1, 1, 1, 1, 0, 0, 0]);
  });

  test('mergeSize and temporal frames', () => {
    const img: ProcessedImage = { gridThw: [2, 3, 3], pixelValues: new Float32Array(18 * PATCH) };
    const b = buildBatch([{ inputIds: [7, 9, 8], images: [img] }], { ...IDS, mergeSize: 3 });
    assert.deepEqual(row(b, 0), [7, 9, 9, 8]);
  });

  test('expandImageTokens', () => {
    assert.deepEqual(
      expandImageTokens({ inputIds: [5, 7, 9, 8, 7, 9, 8], images: [image(2, 2, 0), image(4, 4, 0)] }, IDS),
      [5, 7, 9, 8, 7, 9, 9, 9, 9, 8],
    );
  });
});

describe('truncation keeps images whole', () => {
  // [1 2 <vs> pad×4 <ve> 3]: vs at 2, ve at 7, length 9.
  const cutRow = (): SequenceItem => ({ inputIds: [1, 2, 7, 9, 8, 3], images: [image(4, 4, 20)] });

  test('text-only row: cut at maxLength', () => {
    const items = [{ inputIds: [1, 2, 3, 4, 5, 6], images: [] }];
    const b = buildBatch(items, { ...IDS, maxLength: 4 });
    assert.equal(b.seqLen, 4);
    assert.deepEqual(row(b, 0), [1, 2, 3, 4]);
    assert.deepEqual(b.truncated, [true]);
  });

  test('a cut inside an image drops it whole: ids, mask, pixel rows and grid', () => {
    const items = [cutRow(), { inputIds: [7, 9, 8], images: [image(2, 2, 21)] }];
    const b = buildBatch(items, { ...IDS, maxLength: 6 });
    assert.equal(b.seqLen, 6);
    assert.deepEqual(row(b, 0), [1, 2, 0, 0, 0, 0]);
    assert.deepEqual(row(b, 0, 'attentionMask'), [1, 1, 0, 0, 0, 0]);
    assert.deepEqual(row(b, 1), [7, 9, 8, 0, 0, 0]);
    assert.deepEqual(b.keptImages, [[], [0]]);
    assert.deepEqual(b.imageGridThw, [[1, 2, 2]]);
    assert.deepEqual(pixelRuns(b), [[21, 4]]);
    assert.deepEqual(b.truncated, [true, false]);
    checkConsistent(b, items);
  });

  test('cut right before <|vision_end|> still drops; right after it keeps', () => {
    const dropped = buildBatch([cutRow()], { ...IDS, maxLength: 7 });
    assert.deepEqual(row(dropped, 0), [1, 2, 0, 0, 0, 0, 0]);
    assert.deepEqual(dropped.keptImages, [[]]);
    assert.equal(dropped.pixelValues.length, 0);

    const kept = buildBatch([cutRow()], { ...IDS, maxLength: 8 });
    assert.deepEqual(row(kept, 0), [1, 2, 7, 9, 9, 9, 9, 8]);
    assert.deepEqual(row(kept, 0, 'attentionMask'), Array(8).fill(1));
    assert.deepEqual(kept.keptImages, [[0]]);
    assert.deepEqual(kept.truncated, [true]);
    assert.deepEqual(pixelRuns(kept), [[20, 16]]);
  });

  test('a cut at <|vision_start|> itself drops the image', () => {
    const b = buildBatch([cutRow()], { ...IDS, maxLength: 3 });
    assert.deepEqual(row(b, 0), [1, 2, 0]);
    assert.deepEqual(b.keptImages, [[]]);
  });

  test('images wholly after the cut are dropped too', () => {
    // vs 1, pad 2, ve 3, text 4 | vs 5, pads 6..9, ve 10 | 4 | vs 12, pad 13, ve 14
    const items = [
      {
        inputIds: [1, 7, 9, 8, 4, 7, 9, 8, 4, 7, 9, 8],
        images: [image(2, 2, 30), image(4, 4, 31), image(2, 2, 32)],
      },
      { inputIds: [1, 7, 9, 8], images: [image(2, 2, 33)] },
    ];
    const b = buildBatch(items, { ...IDS, maxLength: 9 });
    assert.deepEqual(row(b, 0), [1, 7, 9, 8, 4, 0, 0, 0, 0]);
    assert.deepEqual(row(b, 0, 'attentionMask'), [1, 1, 1, 1, 1, 0, 0, 0, 0]);
    assert.deepEqual(b.keptImages, [[0], [0]]);
    assert.deepEqual(b.imageGridThw, [
      [1, 2, 2],
      [1, 2, 2],
    ]);
    assert.deepEqual(pixelRuns(b), [
      [30, 4],
      [33, 4],
    ]);
    checkConsistent(b, items);

    // Cut after the second image: only the third (wholly past the cut) goes.
    const c = buildBatch(items, { ...IDS, maxLength: 12 });
    assert.deepEqual(row(c, 0), [1, 7, 9, 8, 4, 7, 9, 9, 9, 9, 8, 4]);
    assert.deepEqual(c.keptImages, [[0, 1], [0]]);
    assert.deepEqual(pixelRuns(c), [
      [30, 4],
      [31, 16],
      [33, 4],
    ]);
    checkConsistent(c, items);
  });

  test('MoCa defaults: maxLength 1280 with padToMultipleOf 32', () => {
    const big = image(60, 60, 40); // 900 tokens
    const items = [
      { inputIds: [1, 7, 9, 8, 7, 9, 8], images: [big, image(28, 28, 41)] }, // 1 + 902 + 198 = 1101
      { inputIds: [1, 2, 7, 9, 8, 7, 9, 8], images: [big, image(40, 40, 42)] }, // 2 + 902 + 402 > 1280
    ];
    const b = buildBatch(items, { ...IDS, padToMultipleOf: 32 });
    assert.equal(b.seqLen, 1280);
    assert.deepEqual(b.keptImages, [[0, 1], [0]]);
    assert.deepEqual(b.lengths, [1101, 904]);
    assert.deepEqual(b.truncated, [false, true]);
    checkConsistent(b, items);
    // Within the limit the length is rounded up to 32.
    assert.equal(buildBatch(items.slice(0, 1), { ...IDS, padToMultipleOf: 32 }).seqLen, 1120);
    assert.equal(buildBatch(items, { ...IDS, maxLength: Infinity }).seqLen, 1306);
  });
});

describe('errors', () => {
  test('placeholder count differs from image count (names the row)', () => {
    const ok = { inputIds: [1], images: [] };
    assert.throws(
      () => buildBatch([ok, { inputIds: [7, 9, 8], images: [] }], IDS),
      /row 1: 1 <\|image_pad\|> placeholder\(s\) but 0 image\(s\)/,
    );
    assert.throws(
      () => buildBatch([{ inputIds: [7, 9, 8], images: [image(2, 2, 0), image(2, 2, 0)] }], IDS),
      /row 0: 1 <\|image_pad\|> placeholder\(s\) but 2 image\(s\)/,
    );
  });

  test('malformed placeholders and images', () => {
    assert.throws(() => buildBatch([{ inputIds: [9, 8], images: [image(2, 2, 0)] }], IDS), /row 0: .*not written as/);
    assert.throws(
      () => buildBatch([{ inputIds: [7, 9, 9, 8], images: [image(2, 2, 0), image(2, 2, 0)] }], IDS),
      /not written as/,
    );
    assert.throws(() => buildBatch([{ inputIds: [7, 9, 8], images: [image(3, 2, 0)] }], IDS), /merge size/);
    const short: ProcessedImage = { gridThw: [1, 2, 2], pixelValues: new Float32Array(7) };
    assert.throws(() => buildBatch([{ inputIds: [7, 9, 8], images: [short] }], IDS), /row 0: image 0: pixelValues/);
    assert.throws(
      () => buildBatch([{ inputIds: [7, 9, 8, 7, 9, 8], images: [image(2, 2, 0, 6), image(2, 2, 0, 12)] }], IDS),
      /row 0: image 1: 12 values per pixel row, expected 6/,
    );
    assert.throws(() => buildBatch([], { ...IDS, maxLength: 0 }), RangeError);
  });
});

describe('with a tokenizer and tensors', () => {
  const fixtures = fileURLToPath(new URL('../../../test/fixtures/tokenizer/', import.meta.url));
  const tok = Tokenizer.fromDir(join(fixtures, 'tiny'));
  const ids = imageTokenIds(tok);

  test('imageTokenIds', () => {
    assert.deepEqual(ids, { padTokenId: 266, imageTokenId: 278, visionStartTokenId: 275, visionEndTokenId: 276 });
  });

  test('raw and typed rows give the same batch', () => {
    const img = image(4, 4, 5, 1176);
    const raw = parseInputRow({ id: 'a', text: `${IMG}\nhello world`, images: ['x.png'] });
    const typed = parseInputRow({
      id: 'a',
      content: [
        { type: 'image', image: 'x.png' },
        { type: 'text', text: '\nhello world' },
      ],
    });
    const build = (input: { id: string; text: string }) =>
      buildBatch([encodeInput(tok, input, [img]), encodeInput(tok, { text: 'hello' }, [])], {
        ...ids,
        padToMultipleOf: 4,
      });
    const a = build(raw);
    const b = build(typed);
    assert.deepEqual(a, b);
    assert.deepEqual(row(a, 0), [275, 278, 278, 278, 278, 276, 198, 259, 264, 266, 266, 266]);
    assert.deepEqual(row(a, 1), [259, ...Array(11).fill(266)]);

    torch.scope(() => {
      const t = batchToTensors(a);
      assert.deepEqual(t.inputIds.shape, [2, 12]);
      assert.equal(t.inputIds.dtype, 'int64');
      assert.equal(t.attentionMask.dtype, 'int64');
      assert.deepEqual(t.attentionMask.tolist(), [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      ]);
      assert.deepEqual((t.inputIds.tolist() as number[][])[0], row(a, 0));
      assert.deepEqual(t.pixelValues!.shape, [16, 1176]);
      assert.equal(t.pixelValues!.dtype, 'float32');
      assert.deepEqual(t.imageGridThw!.tolist(), [[1, 4, 4]]);
      assert.equal(t.imageGridThw!.dtype, 'int64');
    });
  });

  test('text-only batch: no image tensors', () => {
    const b = buildBatch([encodeInput(tok, { text: 'hello' }, [])], ids);
    torch.scope(() => {
      const t = batchToTensors(b);
      assert.equal(t.pixelValues, null);
      assert.equal(t.imageGridThw, null);
      assert.deepEqual(t.inputIds.tolist(), [[259]]);
    });
  });

  test('encodeInput checks the image count', () => {
    assert.throws(
      () => encodeInput(tok, { id: 'q3', text: `${IMG}${IMG}` }, [image(2, 2, 0)]),
      /input 'q3': .*2 .* but 1/,
    );
  });
});
