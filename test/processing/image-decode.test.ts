// decodeImage (sharp) against PIL's decode + EXIF transpose + transformers' convert_to_rgb, and its error paths.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';

import { ImageDecodeError, decodeImage, parseDataUri } from '../../src/processing/image/index.js';
import { fixturePath, manifest, maxAbsDiff, readRgb } from './image-fixtures.js';

/** JPEG decoders may legitimately differ by an IDCT rounding; measured: sharp (mozjpeg) == PIL (libjpeg-turbo). */
const JPEG_MAX_ABS_DIFF = 2;

function pngChunk(type: string, body: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([len, typed, crc]);
}

/** A PNG whose header claims width×height but whose IDAT holds only one row's worth of data. */
function truncatedPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const idat = deflateSync(new Uint8Array(1 + 3 * Math.min(width, 64)));
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))]);
}

/** Asserts `promise` rejects with an ImageDecodeError whose message matches all `patterns`. */
async function rejectsDecode(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ImageDecodeError, `expected ImageDecodeError, got ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('decodeImage vs PIL (exif_transpose + convert_to_rgb)', () => {
  let worstJpeg = 0;
  for (const c of manifest().decode) {
    const what = `${c.input} (PIL mode ${c.pilMode}${c.applyExifOrientation ? '' : ', EXIF orientation off'})`;
    test(what, async () => {
      const img = await decodeImage(fixturePath(c.input), { applyExifOrientation: c.applyExifOrientation });
      assert.deepEqual([img.width, img.height], [c.width, c.height]);
      const { max, at } = maxAbsDiff(img.data, readRgb(c.expected, c.width, c.height).data);
      if (c.lossy) {
        worstJpeg = Math.max(worstJpeg, max);
        assert.ok(max <= JPEG_MAX_ABS_DIFF, `JPEG max |Δ| = ${max} at byte ${at}`);
      } else {
        assert.equal(max, 0, `max |Δ| = ${max} at pixel ${Math.floor(at / 3)}, channel ${at % 3}`);
      }
    });
  }
  test('the EXIF fixture JPEG decodes identically to PIL', () => {
    assert.equal(worstJpeg, 0);
  });
});

describe('decodeImage behaviour', () => {
  test('alpha is composited onto white (a transparent pixel storing green becomes white)', async () => {
    const img = await decodeImage(fixturePath('inputs/rgba_64x64.png'));
    const at = (22 * 64 + 40) * 3; // centre of the fully transparent disc, whose stored RGB is (0, 255, 0)
    assert.deepEqual(Array.from(img.data.subarray(at, at + 3)), [255, 255, 255]);
    // An opaque-ish pixel keeps its colour: x = 63, y = 63 has alpha 255.
    const o = (63 * 64 + 63) * 3;
    assert.deepEqual(Array.from(img.data.subarray(o, o + 3)), [(63 * 4) % 256, 255 - 63 * 4, (63 * 63) % 256]);
  });

  test('EXIF orientation 6 rotates 90° clockwise; off keeps the stored layout', async () => {
    const path = fixturePath('inputs/exif6_40x24.jpg');
    const rotated = await decodeImage(path);
    const stored = await decodeImage(path, { applyExifOrientation: false });
    assert.deepEqual([rotated.width, rotated.height, stored.width, stored.height], [24, 40, 40, 24]);
    // Stored top-left quadrant is red, bottom-left blue; after a clockwise turn the top-left shows blue.
    const near = (px: Uint8Array, o: number, rgb: number[]) => rgb.every((v, i) => Math.abs(px[o + i]! - v) <= 8);
    assert.ok(near(stored.data, 0, [230, 30, 30]));
    assert.ok(near(rotated.data, 0, [40, 60, 220]));
  });

  test('animated GIF: first frame only', async () => {
    const img = await decodeImage(fixturePath('inputs/anim_23x17.gif'));
    assert.deepEqual([img.width, img.height], [23, 17]);
    assert.deepEqual(Array.from(img.data.subarray(0, 3)), [220, 40, 40]);
  });

  test('Buffer, offset Uint8Array view, base64 and percent-encoded data URIs agree with the path', async () => {
    const file = fixturePath('inputs/palette_trns_30x22.png');
    const bytes = readFileSync(file);
    const fromPath = await decodeImage(file);
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 5);
    const sources = [
      bytes,
      padded.subarray(5, 5 + bytes.length),
      `data:image/png;base64,${bytes.toString('base64')}`,
      `data:image/png,${Array.from(bytes, (b) => '%' + b.toString(16).padStart(2, '0')).join('')}`,
    ];
    for (const source of sources) assert.deepEqual(await decodeImage(source), fromPath);
  });

  test('parseDataUri handles whitespace in base64 and rejects garbage', () => {
    assert.deepEqual(Array.from(parseDataUri('data:;base64,AQI D\nBA==')), [1, 2, 3, 4]);
    assert.throws(() => parseDataUri('data:image/png;base64,@@@'), /not valid base64/);
    assert.throws(() => parseDataUri('data:image/png;base64'), /malformed/);
  });
});

describe('decodeImage errors name the source', () => {
  const png = readFileSync(fixturePath('inputs/scene_300x200.png'));
  const jpeg = readFileSync(fixturePath('inputs/exif6_40x24.jpg'));

  test('missing file', async () => {
    await rejectsDecode(decodeImage('/nonexistent/dir/cat.png'), /"\/nonexistent\/dir\/cat\.png"/, /ENOENT/);
  });

  test('not an image (buffer, file, data URI)', async () => {
    const junk = Buffer.from('this is not an image at all, just some text');
    await rejectsDecode(decodeImage(junk), /from buffer/, /unsupported image format/);
    await rejectsDecode(decodeImage(fixturePath('manifest.json')), /manifest\.json"/, /unsupported image format/);
    await rejectsDecode(decodeImage(`data:image/png;base64,${junk.toString('base64')}`), /from data URI/);
  });

  test('empty inputs', async () => {
    await rejectsDecode(decodeImage(new Uint8Array(0)), /buffer: it is empty/);
    await rejectsDecode(decodeImage('data:image/png;base64,'), /data URI: it carries no data/);
  });

  test('truncated PNG and JPEG', async () => {
    await rejectsDecode(decodeImage(png.subarray(0, png.length >> 1)), /from buffer: corrupt or truncated/);
    await rejectsDecode(decodeImage(jpeg.subarray(0, jpeg.length - 200)), /from buffer: corrupt or truncated/);
    const uri = `data:image/png;base64,${png.subarray(0, 400).toString('base64')}`;
    await rejectsDecode(decodeImage(uri), /from data URI: corrupt or truncated/);
  });

  test('unsupported but recognised format (SVG)', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    );
    await rejectsDecode(decodeImage(svg), /from buffer: unsupported image format "svg"/);
  });

  test('a side < 1', async () => {
    await rejectsDecode(decodeImage(truncatedPng(0, 10)), /from buffer/, /invalid image width|a side is < 1/);
  });

  test('maxPixels refuses from the header, before decoding', async () => {
    await rejectsDecode(decodeImage(png, { maxPixels: 59999 }), /300×200 = 60000 pixels exceeds the limit of 59999/);
    // A header claiming 100000×100000 with no pixel data: refused as a bomb, not reported as corrupt.
    await rejectsDecode(decodeImage(truncatedPng(100000, 100000), { maxPixels: 1e8 }), /decompression-bomb/);
    assert.equal((await decodeImage(png, { maxPixels: 60000 })).width, 300);
    await assert.rejects(decodeImage(png, { maxPixels: 0 }), RangeError);
  });
});
