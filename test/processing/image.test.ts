// Qwen2-VL image processing against Pillow 9.4 / transformers 4.50 reference outputs (tools/gen_image_fixtures.py):
// bicubic resize byte-for-byte, smart_resize, full pixel_values, merge-window row order, config I/O.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  MOCA_PIXEL_LIMITS,
  QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  Qwen2VLImageProcessor,
  loadImageProcessorConfig,
  parseImageProcessorConfig,
  pythonRound,
  rawImageTokenCost,
  resizeBicubic,
  saveImageProcessorConfig,
  smartResize,
  type ImageProcessorConfig,
  type RgbImage,
} from '../../src/processing/image/index.js';
import { manifest, maxAbsDiff, readF32, readRgb } from './image-fixtures.js';

function smallConfig(minPixels: number, maxPixels: number): ImageProcessorConfig {
  return { ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS, minPixels, maxPixels };
}

describe('resizeBicubic vs PIL 9.4 Image.resize(BICUBIC)', () => {
  const cases = manifest().resize;
  let worst = 0;
  for (const c of cases) {
    test(`${c.input} ${c.inWidth}×${c.inHeight} → ${c.width}×${c.height}`, () => {
      const src = readRgb(c.input, c.inWidth, c.inHeight);
      const expected = readRgb(c.expected, c.width, c.height);
      const out = resizeBicubic(src, c.width, c.height);
      assert.equal(out.width, c.width);
      assert.equal(out.height, c.height);
      const { max, at } = maxAbsDiff(out.data, expected.data);
      worst = Math.max(worst, max);
      assert.equal(max, 0, `max |Δ| = ${max} at byte ${at} (pixel ${Math.floor(at / 3)}, channel ${at % 3})`);
    });
  }
  test(`all ${cases.length} cases: max |Δ| vs PIL is 0`, () => {
    assert.equal(worst, 0);
  });

  test('does not alias its input on identity size', () => {
    const img: RgbImage = { width: 2, height: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
    const out = resizeBicubic(img, 2, 1);
    assert.deepEqual(out.data, img.data);
    assert.notEqual(out.data, img.data);
  });

  test('rejects bad sizes and malformed images', () => {
    const img: RgbImage = { width: 2, height: 2, data: new Uint8Array(12) };
    assert.throws(() => resizeBicubic(img, 0, 3), /positive integers/);
    assert.throws(() => resizeBicubic(img, 2.5, 3), /positive integers/);
    assert.throws(() => resizeBicubic({ width: 2, height: 2, data: new Uint8Array(11) }, 3, 3), /11 bytes/);
  });
});

describe('smartResize (transformers 4.50)', () => {
  test('pythonRound rounds half to even', () => {
    assert.deepEqual(
      [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999999, 2.5000001].map(pythonRound),
      [0, 2, 2, 4, 0, -2, 2, 3],
    );
  });

  test('half-even rounding decides the side (70/28 = 2.5 → 2, 98/28 = 3.5 → 4)', () => {
    assert.deepEqual(smartResize(70, 98, { minPixels: 0, maxPixels: 1e9 }), [56, 112]);
  });

  const cases = manifest().smartResize;
  test(`${cases.length} reference cases (results and error messages)`, () => {
    let errors = 0;
    for (const c of cases) {
      const opts = { factor: c.factor, minPixels: c.minPixels, maxPixels: c.maxPixels };
      const what = `smart_resize(${c.height}, ${c.width}, ${c.factor}, ${c.minPixels}, ${c.maxPixels})`;
      if (c.error !== undefined) {
        errors++;
        assert.throws(
          () => smartResize(c.height, c.width, opts),
          (err: Error) => err instanceof RangeError && err.message.includes(c.error!),
          what,
        );
      } else {
        assert.deepEqual(smartResize(c.height, c.width, opts), c.result, what);
      }
    }
    assert.ok(errors >= 10, 'fixture covers both error kinds');
  });

  test('errors name the cause', () => {
    assert.throws(() => smartResize(20, 100), /height:20 or width:100 must be larger than factor:28/);
    assert.throws(() => smartResize(28, 5629), /aspect ratio must be smaller than 200, got 201\.0357/);
    assert.throws(() => smartResize(0, 100), /height must be a positive integer/);
  });
});

describe('Qwen2VLImageProcessor vs transformers pixel_values', () => {
  for (const c of manifest().processor) {
    const label = `${c.input} min=${c.minPixels} max=${c.maxPixels}`;
    test(label, () => {
      const [, w, h] = /_(\d+)x(\d+)\.rgb$/.exec(c.input)!.map(Number) as [number, number, number];
      const img = readRgb(c.input, w, h);
      const proc = new Qwen2VLImageProcessor(smallConfig(c.minPixels, c.maxPixels));
      const out = proc.process(img);
      assert.deepEqual(out.gridThw, c.gridThw);
      const rows = c.gridThw[1] * c.gridThw[2];
      assert.equal(out.pixelValues.length, rows * 1176);
      assert.equal(out.numImageTokens, rows / 4);
      if (c.pixelValues !== undefined) {
        const { max, at } = maxAbsDiff(out.pixelValues, readF32(c.pixelValues));
        assert.ok(max <= 1e-6, `max |Δ| = ${max} at row ${Math.floor(at / 1176)}, column ${at % 1176}`);
        assert.equal(max, 0, 'bit-identical to numpy float32');
      } else {
        const sample = readF32(c.sampleRowValues!);
        const picked = new Float32Array(sample.length);
        c.sampleRows!.forEach((r, i) => picked.set(out.pixelValues.subarray(r * 1176, (r + 1) * 1176), i * 1176));
        const { max } = maxAbsDiff(picked, sample);
        assert.equal(max, 0, `sampled rows: max |Δ| = ${max}`);
        let sum = 0;
        for (const v of out.pixelValues) sum += v;
        assert.ok(Math.abs(sum - c.sum!) < 1e-6 * Math.max(1, Math.abs(c.sum!)), `sum ${sum} vs ${c.sum}`);
        const digest = createHash('sha256')
          .update(new Uint8Array(out.pixelValues.buffer, out.pixelValues.byteOffset, out.pixelValues.byteLength))
          .digest('hex');
        assert.equal(digest, c.sha256, 'float32 bytes identical to transformers');
      }
    });
  }

  test('CLIP normalisation of black matches MoCa add_black_image constants', () => {
    const proc = new Qwen2VLImageProcessor({ ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS, minPixels: 56 * 56 });
    const out = proc.process({ width: 56, height: 56, data: new Uint8Array(56 * 56 * 3) });
    assert.deepEqual(out.gridThw, [1, 4, 4]);
    assert.ok(Math.abs(out.pixelValues[0]! - -1.7923) < 1e-4);
    assert.ok(Math.abs(out.pixelValues[392]! - -1.7521) < 1e-4);
    assert.ok(Math.abs(out.pixelValues[784]! - -1.4802) < 1e-4);
  });
});

/** Generic row-major permute of a flat array: out = in.reshape(shape).permute(perm) — an independent oracle. */
function permute(data: ArrayLike<number>, shape: number[], perm: number[]): number[] {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const outShape = perm.map((p) => shape[p]!);
  const total = shape.reduce((a, b) => a * b, 1);
  const out = new Array<number>(total);
  const idx = new Array<number>(outShape.length).fill(0);
  for (let o = 0; o < total; o++) {
    let src = 0;
    for (let d = 0; d < idx.length; d++) src += idx[d]! * strides[perm[d]!]!;
    out[o] = data[src]!;
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

describe('merge-window row order', () => {
  // 84×56 image (grid 4×6 patches, 2×3 merged tokens); with rescale/normalize off the values are the bytes.
  const W = 84;
  const H = 56;
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      data[(y * W + x) * 3] = x; // R encodes x
      data[(y * W + x) * 3 + 1] = y; // G encodes y
      data[(y * W + x) * 3 + 2] = (x * 7 + y * 13) % 256;
    }
  }
  const img: RgbImage = { width: W, height: H, data };
  const proc = new Qwen2VLImageProcessor({
    ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
    doResize: false,
    doRescale: false,
    doNormalize: false,
  });
  const out = proc.process(img);

  test('every 4 consecutive rows are the 2×2 patches of one merged token, tokens row-major', () => {
    assert.deepEqual(out.gridThw, [1, 4, 6]);
    assert.equal(out.numImageTokens, 6);
    const row = (r: number) => out.pixelValues.subarray(r * 1176, (r + 1) * 1176);
    for (let token = 0; token < 6; token++) {
      const [ty, tx] = [Math.floor(token / 3), token % 3];
      for (let k = 0; k < 4; k++) {
        const r = row(token * 4 + k);
        const [py, px] = [ty * 2 + (k >> 1), tx * 2 + (k & 1)];
        // Column (c, t, y, x): R at column 0 of frame 0 is the patch's left x, G is its top y.
        assert.equal(r[0], px * 14, `row ${token * 4 + k} x`);
        assert.equal(r[392], py * 14, `row ${token * 4 + k} y`);
        assert.equal(r[196], r[0], 'frame 1 repeats frame 0');
        assert.equal(r[13], px * 14 + 13, 'x varies fastest');
        assert.equal(r[392 + 14], py * 14 + 1, 'then y');
      }
    }
  });

  test('equals transformers reshape(1,2,C,gh/2,2,14,gw/2,2,14).permute(0,3,6,4,7,2,1,5,8)', () => {
    // Build transformers' (T=2, C, H, W) tensor from the HWC bytes, then apply its reshape/permute literally.
    const chw: number[] = [];
    for (let t = 0; t < 2; t++) {
      for (let c = 0; c < 3; c++) for (let i = 0; i < W * H; i++) chw.push(data[i * 3 + c]!);
    }
    const expected = permute(chw, [1, 2, 3, H / 28, 2, 14, W / 28, 2, 14], [0, 3, 6, 4, 7, 2, 1, 5, 8]);
    assert.deepEqual(Array.from(out.pixelValues), expected);
  });

  test('doResize off requires sides that are multiples of 28', () => {
    assert.throws(() => proc.process({ width: 30, height: 28, data: new Uint8Array(30 * 28 * 3) }), /multiples of/);
  });
});

describe('processor helpers', () => {
  test('rawImageTokenCost = ceil(w/28)·ceil(h/28)', () => {
    assert.equal(rawImageTokenCost(28, 28), 1);
    assert.equal(rawImageTokenCost(29, 28), 2);
    assert.equal(rawImageTokenCost(800, 599), 29 * 22);
  });

  test('numImageTokensFor and processAll agree with process', () => {
    const proc = new Qwen2VLImageProcessor(smallConfig(4 * 784, 12 * 784));
    const a: RgbImage = { width: 37, height: 53, data: new Uint8Array(37 * 53 * 3).fill(9) };
    const b: RgbImage = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(200) };
    const all = proc.processAll([a, b]);
    const pa = proc.process(a);
    const pb = proc.process(b);
    assert.deepEqual(all.gridThw, [pa.gridThw, pb.gridThw]);
    assert.deepEqual(all.numImageTokens, [proc.numImageTokensFor(37, 53), proc.numImageTokensFor(64, 64)]);
    assert.deepEqual(all.pixelValues.subarray(pa.pixelValues.length), pb.pixelValues);
  });

  test('MoCa limits give 256…1024 tokens', () => {
    const proc = new Qwen2VLImageProcessor({ ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS, ...MOCA_PIXEL_LIMITS });
    for (const [w, h] of [
      [28, 28],
      [800, 599],
      [4000, 3000],
      [28, 5600],
    ] as const) {
      const n = proc.numImageTokensFor(w, h);
      assert.ok(n >= 256 && n <= 1024, `${w}×${h} → ${n}`);
    }
  });

  test('a side that smart_resize floors to 0 is a clear error', () => {
    const proc = new Qwen2VLImageProcessor(smallConfig(784, 3136));
    assert.throws(() => proc.numImageTokensFor(5600, 28), /maxPixels \(3136\) is too small/);
  });
});

describe('preprocessor_config.json', () => {
  const qwen25 = {
    min_pixels: 3136,
    max_pixels: 12845056,
    patch_size: 14,
    temporal_patch_size: 2,
    merge_size: 2,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'Qwen2VLImageProcessor',
    processor_class: 'Qwen2_5_VLProcessor',
  };

  test("Qwen2.5-VL's file parses to the defaults; MoCa overrides apply", () => {
    assert.deepEqual(parseImageProcessorConfig(qwen25), QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS);
    const moca = parseImageProcessorConfig(qwen25, { ...MOCA_PIXEL_LIMITS });
    assert.equal(moca.minPixels, 200704);
    assert.equal(moca.maxPixels, 802816);
  });

  test('size {shortest_edge, longest_edge} and older size {min_pixels, max_pixels}; top-level keys win', () => {
    const { min_pixels: _a, max_pixels: _b, ...rest } = qwen25;
    const newer = parseImageProcessorConfig({ ...rest, size: { shortest_edge: 1000, longest_edge: 5000 } });
    assert.deepEqual([newer.minPixels, newer.maxPixels], [1000, 5000]);
    const older = parseImageProcessorConfig({ ...rest, size: { min_pixels: 2000, max_pixels: 6000 } });
    assert.deepEqual([older.minPixels, older.maxPixels], [2000, 6000]);
    const both = parseImageProcessorConfig({ ...qwen25, size: { shortest_edge: 1, longest_edge: 2 } });
    assert.deepEqual([both.minPixels, both.maxPixels], [3136, 12845056]);
    // Missing keys fall back to transformers' class defaults (max_pixels 28·28·1280).
    assert.equal(parseImageProcessorConfig({}).maxPixels, 1003520);
  });

  test('rejects configs it cannot honour, naming the field', () => {
    assert.throws(() => parseImageProcessorConfig({ ...qwen25, resample: 2 }), /resample=2 is not supported/);
    assert.throws(() => parseImageProcessorConfig({ ...qwen25, patch_size: 0 }), /"patch_size"/);
    assert.throws(() => parseImageProcessorConfig({ ...qwen25, image_std: [1, 0, 1] }), /imageStd must not contain 0/);
    assert.throws(() => parseImageProcessorConfig({ ...qwen25, min_pixels: 10, max_pixels: 5 }), /must not exceed/);
    assert.throws(() => parseImageProcessorConfig({ ...qwen25, size: { shortest_edge: 5 } }), /both/);
    assert.throws(
      () => parseImageProcessorConfig({ ...qwen25, image_processor_type: 'CLIPImageProcessor' }),
      /not a Qwen2-VL image processor/,
    );
  });

  test('save → load round trip, with the keys transformers expects', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moca-imgcfg-'));
    try {
      const cfg = { ...QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS, ...MOCA_PIXEL_LIMITS };
      await saveImageProcessorConfig(dir, cfg);
      const json = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(json['image_processor_type'], 'Qwen2VLImageProcessor');
      assert.equal(json['processor_class'], 'Qwen2_5_VLProcessor');
      assert.equal(json['resample'], 3);
      assert.equal(json['min_pixels'], 200704);
      assert.deepEqual(json['size'], { longest_edge: 802816, shortest_edge: 200704 });
      assert.deepEqual(await loadImageProcessorConfig(dir), cfg);
      assert.equal((await loadImageProcessorConfig(dir, { maxPixels: 900000 })).maxPixels, 900000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('load errors name the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moca-imgcfg-'));
    try {
      await assert.rejects(
        loadImageProcessorConfig(dir),
        /Cannot read image processor config .*preprocessor_config\.json: ENOENT/,
      );
      await writeFile(join(dir, 'preprocessor_config.json'), '{ not json');
      await assert.rejects(loadImageProcessorConfig(dir), /preprocessor_config\.json: invalid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
