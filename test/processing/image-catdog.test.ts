// A real photo end to end (../shared/data/images/cat-dog.jpg beside the repository, 800×599 JPEG), when present.
// The image is not part of the repository; the numbers below are PIL/transformers summaries printed by
// `/usr/bin/python3 tools/gen_image_fixtures.py --cat-dog`.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

import {
  MOCA_PIXEL_LIMITS,
  QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  Qwen2VLImageProcessor,
  decodeImage,
} from '../../src/processing/image/index.js';

// shared/ sits beside the repository (read-only project input); dist/test/processing → repo root is ../../..
const CAT_DOG =
  process.env['MOCA_CAT_DOG_JPG'] ??
  fileURLToPath(new URL('../../../../shared/data/images/cat-dog.jpg', import.meta.url));

const PIL = {
  width: 800,
  height: 599,
  decodedSha256: 'bb02574fd8880fbab6b0b5dda25bf3b4f3434762c3aeda78e8fac4c7fb6d9d37',
  channelMeans: [101.97292988313856, 95.65164858096828, 68.26142111853089],
  gridThw: [1, 42, 58],
  pixelValuesSha256: '62af8161a0e965328f3245d67fe74967519149b72b54b13d0fb1a3520cf0f835',
  pixelValuesSum: -1078812.7409747732,
};

/**
 * Measured: sharp's decode of this JPEG is byte-identical to PIL's (max |Δ| = 0). A different libjpeg build could
 * round an IDCT differently by a level or two, so the means get a small tolerance and the exact hashes are only
 * required when the decode itself matched.
 */
const MEAN_TOLERANCE = 0.05;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const skip = existsSync(CAT_DOG) ? false : `${CAT_DOG} not present (set MOCA_CAT_DOG_JPG to run this test)`;

test('cat-dog.jpg: sharp decode and processor output match PIL/transformers', { skip }, async (t) => {
  const img = await decodeImage(CAT_DOG);
  assert.deepEqual([img.width, img.height], [PIL.width, PIL.height]);
  const sums = [0, 0, 0];
  for (let i = 0; i < img.data.length; i++) sums[i % 3]! += img.data[i]!;
  const pixels = img.width * img.height;
  sums.forEach((s, c) => {
    assert.ok(Math.abs(s / pixels - PIL.channelMeans[c]!) <= MEAN_TOLERANCE, `channel ${c} mean ${s / pixels}`);
  });
  const decodeExact = sha256(img.data) === PIL.decodedSha256;

  const proc = new Qwen2VLImageProcessor({ ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS, ...MOCA_PIXEL_LIMITS });
  const out = proc.process(img);
  assert.deepEqual(out.gridThw, PIL.gridThw);
  assert.equal(out.numImageTokens, (42 * 58) / 4);
  let sum = 0;
  for (const v of out.pixelValues) sum += v;
  if (decodeExact) {
    assert.equal(
      sha256(new Uint8Array(out.pixelValues.buffer, out.pixelValues.byteOffset, out.pixelValues.byteLength)),
      PIL.pixelValuesSha256,
    );
    assert.ok(Math.abs(sum - PIL.pixelValuesSum) < 1e-3);
  } else {
    // ±2 levels on some pixels moves the normalised mean by far less than this.
    assert.ok(Math.abs(sum - PIL.pixelValuesSum) / out.pixelValues.length < 1e-3, `pixel_values sum ${sum}`);
  }
  t.diagnostic(decodeExact ? 'decode byte-identical to PIL' : 'decode differs from PIL within the mean tolerance');
});
