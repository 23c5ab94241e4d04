// Bicubic resampling that reproduces Pillow 9.4's `Image.resize((w, h), Image.BICUBIC)` on 8-bit RGB byte for
// byte, and Qwen2-VL's `smart_resize` target-size rule.
//
// Why hand-written: MoCa / Qwen2.5-VL checkpoints were trained on pixels produced by transformers' slow image
// processor, which resizes through PIL. No JavaScript library (sharp/libvips, canvas, jimp, …) reproduces PIL's
// output: they differ in filter support when downscaling, in coefficient rounding and in intermediate clipping, and
// any such difference shifts every vision token the model sees. So this follows the algorithm of Pillow's
// `libImaging/Resample.c` step by step (written from its description, not copied):
//   - separable filter, horizontal pass first, then vertical;
//   - bicubic kernel with a = -0.5 and support 2, the support widened by the scale factor when downscaling
//     (antialiasing), evaluated in double precision;
//   - per output pixel the window [xmin, xmin + count) and its weights normalised to sum 1, then converted to
//     fixed point with PRECISION_BITS = 32 - 8 - 2 = 22, rounding half away from zero;
//   - 32-bit integer accumulation starting from 1 << 21 (round to nearest), then `>> 22` and clipping to 0..255
//     after each pass (so the intermediate image is 8-bit too);
//   - the horizontal pass only computes the source rows the vertical pass will read.

import { assertRgbImage, type RgbImage } from './types.js';

/** Fixed-point fraction bits of the 8-bit resampler: 8 bits of result, 2 bits of headroom for overshoot. */
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Support (radius) of the bicubic kernel at scale 1. */
const BICUBIC_SUPPORT = 2.0;

/**
 * Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC). The operation order matches Pillow's so the
 * double results, and hence the fixed-point weights, are identical.
 */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/** Weights along one axis: output i reads input[start[i] .. start[i] + count[i]) with weights[i·ksize ..]. */
interface AxisCoefficients {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  /** Fixed-point weights (PRECISION_BITS fraction bits), `ksize` per output sample, zero-filled past `count`. */
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box (0, inSize) mapped onto outSize samples. */
function axisCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterScale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const invFilterScale = 1.0 / filterScale;

  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);

  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; the +0.5 makes it round for the non-negative values that survive.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    const n = xmax - xmin;

    let sum = 0.0;
    for (let x = 0; x < n; x++) {
      const v = bicubic((x + xmin - center + 0.5) * invFilterScale);
      w[x] = v;
      sum += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < n; x++) {
      const v = sum !== 0.0 ? w[x]! / sum : w[x]!;
      // Round half away from zero, then truncate, exactly like the C `(int)(±0.5 + v * (1 << PRECISION_BITS))`.
      weights[base + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[xx] = xmin;
    count[xx] = n;
  }
  return { ksize, start, count, weights };
}

/** Fixed-point accumulator → byte: arithmetic shift (as C's `>>` on int) and clip to 0..255. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over source rows [rowFirst, rowFirst + rows): returns an image of width outW and `rows` rows. */
function resampleHorizontal(src: RgbImage, outW: number, rowFirst: number, rows: number, c: AxisCoefficients) {
  const out = new Uint8Array(outW * rows * 3);
  const { ksize, start, count, weights } = c;
  const inData = src.data;
  const inStride = src.width * 3;
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + rowFirst) * inStride;
    const outBase = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const n = count[xx]!;
      const kBase = xx * ksize;
      let p = rowBase + start[xx]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const k = weights[kBase + x]!;
        // Products stay below 2^30 and the sums below 2^31 (|Σk| ≤ ~1.1·2^22), so `| 0` never changes a value:
        // it only keeps the accumulators in V8's small-integer representation, like the C `int`.
        r = (r + inData[p]! * k) | 0;
        g = (g + inData[p + 1]! * k) | 0;
        b = (b + inData[p + 2]! * k) | 0;
      }
      const o = outBase + xx * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

/**
 * Vertical pass: out row yy = Σ_y weight · in row (start[yy] - rowOffset + y). Accumulates whole rows at a time
 * (integer sums are exact, so the summation order does not matter) for cache-friendly access.
 */
function resampleVertical(
  inData: Uint8Array,
  width: number,
  rowOffset: number,
  outH: number,
  c: AxisCoefficients,
): Uint8Array {
  const stride = width * 3;
  const out = new Uint8Array(stride * outH);
  const acc = new Int32Array(stride);
  const { ksize, start, count, weights } = c;
  for (let yy = 0; yy < outH; yy++) {
    acc.fill(HALF);
    const n = count[yy]!;
    const kBase = yy * ksize;
    const first = start[yy]! - rowOffset;
    for (let y = 0; y < n; y++) {
      const k = weights[kBase + y]!;
      if (k === 0) continue;
      const rowBase = (first + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i]! + inData[rowBase + i]! * k) | 0;
    }
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) out[outBase + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * Resizes `img` to width × height with Pillow 9.4's BICUBIC filter (with antialiasing on downscale), reproducing
 * `PIL.Image.fromarray(rgb).resize((width, height), Image.BICUBIC)` exactly.
 */
export function resizeBicubic(img: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(img, 'resizeBicubic input');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resizeBicubic: target size must be positive integers, got ${width}×${height}`);
  }
  const needHorizontal = width !== img.width;
  const needVertical = height !== img.height;
  if (!needHorizontal && !needVertical) {
    return { width, height, data: img.data.slice() };
  }

  const vertical = axisCoefficients(img.height, height);
  if (!needHorizontal) {
    return { width, height, data: resampleVertical(img.data, width, 0, height, vertical) };
  }

  const horizontal = axisCoefficients(img.width, width);
  if (!needVertical) {
    return { width, height, data: resampleHorizontal(img, width, 0, height, horizontal) };
  }
  // Only the source rows some output row reads: [first used row, end of the last output row's window).
  const rowFirst = vertical.start[0]!;
  const rowEnd = vertical.start[height - 1]! + vertical.count[height - 1]!;
  const temp = resampleHorizontal(img, width, rowFirst, rowEnd - rowFirst, horizontal);
  return { width, height, data: resampleVertical(temp, width, rowFirst, height, vertical) };
}

/** Python 3's `round(x)` for a float: round half to even (banker's rounding). */
export function pythonRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact for doubles
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Python's repr of a float for error messages: integral values keep a trailing ".0". */
function pythonFloatRepr(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : String(x);
}

export interface SmartResizeOptions {
  /** Both output sides are multiples of this (patch_size · merge_size = 28 for Qwen2-VL). Default 28. */
  factor?: number;
  /** Lower bound on output height·width (transformers' default 56·56). */
  minPixels?: number;
  /** Upper bound on output height·width (transformers' default 28·28·1280). */
  maxPixels?: number;
}

/**
 * transformers 4.50 `qwen2_vl.image_processing_qwen2_vl.smart_resize(height, width, factor, min_pixels, max_pixels)`:
 * rounds both sides to multiples of `factor` (Python round = half to even), then if the area exceeds maxPixels
 * scales down keeping the aspect ratio (floor to the factor), or if it is below minPixels scales up (ceil).
 * Returns `[height, width]`.
 *
 * Raises what 4.50 raises: a side below `factor`, or an aspect ratio above 200. Like 4.50 (which has no
 * `max(factor, …)` guard in the scale-down branch) it can return 0 for a side when maxPixels is tiny relative to
 * an extreme aspect ratio; {@link Qwen2VLImageProcessor} rejects that case.
 */
export function smartResize(height: number, width: number, options: SmartResizeOptions = {}): [number, number] {
  const { factor = 28, minPixels = 56 * 56, maxPixels = 28 * 28 * 1280 } = options;
  for (const [name, v] of [
    ['height', height],
    ['width', width],
    ['factor', factor],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`smart_resize: ${name} must be a positive integer, got ${v}`);
    }
  }
  if (!(minPixels >= 0) || !(maxPixels >= 0)) {
    throw new RangeError(`smart_resize: minPixels/maxPixels must be non-negative, got ${minPixels}/${maxPixels}`);
  }
  if (height < factor || width < factor) {
    throw new RangeError(
      `smart_resize: height:${height} or width:${width} must be larger than factor:${factor} ` +
        `(Qwen2-VL needs each image side to be at least ${factor} px)`,
    );
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > 200) {
    throw new RangeError(
      `smart_resize: absolute aspect ratio must be smaller than 200, got ${pythonFloatRepr(ratio)} ` +
        `(height ${height}, width ${width})`,
    );
  }
  let hBar = pythonRound(height / factor) * factor;
  let wBar = pythonRound(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.floor(height / beta / factor) * factor;
    wBar = Math.floor(width / beta / factor) * factor;
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}
