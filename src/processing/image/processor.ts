// Qwen2-VL image processor: RGB image → flattened patch rows (`pixel_values`) + `image_grid_thw`, reproducing
// transformers 4.50's slow `Qwen2VLImageProcessor._preprocess` for one still image:
//   smart_resize → PIL bicubic resize → rescale → normalize → repeat to temporal_patch_size frames
//   → patchify in merge-window order.

import {
  QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS,
  copyTriple,
  loadImageProcessorConfig,
  validateImageProcessorConfig,
  type ImageProcessorConfig,
} from './config.js';
import { resizeBicubic, smartResize } from './resize.js';
import { assertRgbImage, type RgbImage } from './types.js';

export interface ProcessedImage {
  /**
   * rows × (3 · temporalPatchSize · patchSize²) float32 values (1176 per row for Qwen2.5-VL), row-major. Within a
   * row: channel, then frame, then patch y, then patch x. Rows in merge-window order: merged tokens row-major, and
   * inside each the mergeSize × mergeSize patches row-major.
   */
  pixelValues: Float32Array;
  /** (grid_t, grid_h, grid_w) = (1, H/patch, W/patch) for a still image. */
  gridThw: [number, number, number];
  /** LLM placeholder tokens this image expands to: grid_h · grid_w / mergeSize². */
  numImageTokens: number;
}

/** Several images' outputs concatenated, as transformers returns them for a batch. */
export interface ProcessedImages {
  pixelValues: Float32Array;
  gridThw: [number, number, number][];
  numImageTokens: number[];
}

/**
 * Stage-1 (continual pre-training) batching cost of an image in merged tokens, from its RAW size before
 * smart-resize: ceil(w / 28) · ceil(h / 28) (MoCa's `src/dataloader.Dataset`).
 */
export function rawImageTokenCost(width: number, height: number, factor = 28): number {
  if (!(width >= 1 && height >= 1)) throw new RangeError(`rawImageTokenCost: bad size ${width}×${height}`);
  return Math.ceil(width / factor) * Math.ceil(height / factor);
}

/**
 * The value each 8-bit sample becomes, per channel: a 3×256 table. Building it with numpy's exact arithmetic is
 * both faster than per-pixel work and bit-identical, because the transform is elementwise:
 *   - rescale (transformers.image_transforms.rescale): `(uint8.astype(float64) * rescale_factor).astype(float32)`;
 *   - normalize: in float32 (mean and std are cast to the image's float32 dtype): `(x - mean) / std`, each
 *     operation rounded to float32 (`Math.fround` of the double result is the correctly rounded float32 result
 *     for a single +, -, ×, ÷ of float32 operands).
 */
function buildValueTable(cfg: Readonly<ImageProcessorConfig>): Float32Array {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.imageMean[c]!);
    const std = Math.fround(cfg.imageStd[c]!);
    for (let v = 0; v < 256; v++) {
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      table[c * 256 + v] = x;
    }
  }
  return table;
}

export class Qwen2VLImageProcessor {
  readonly config: Readonly<ImageProcessorConfig>;
  private readonly table: Float32Array;

  constructor(config: Readonly<ImageProcessorConfig> = QWEN2_5_VL_IMAGE_PROCESSOR_DEFAULTS) {
    validateImageProcessorConfig(config);
    this.config = Object.freeze({
      ...config,
      imageMean: copyTriple(config.imageMean),
      imageStd: copyTriple(config.imageStd),
    });
    this.table = buildValueTable(this.config);
  }

  /**
   * The processor of a model directory (its preprocessor_config.json), with the pixel limits replaced where given
   * (`--min-pixels` / `--max-pixels`; what `AutoProcessor.from_pretrained(dir, min_pixels=…, max_pixels=…)` does).
   */
  static async fromDir(
    dir: string,
    pixels: { minPixels?: number | undefined; maxPixels?: number | undefined } = {},
  ): Promise<Qwen2VLImageProcessor> {
    const config = await loadImageProcessorConfig(dir);
    return new Qwen2VLImageProcessor({
      ...config,
      ...(pixels.minPixels === undefined ? {} : { minPixels: pixels.minPixels }),
      ...(pixels.maxPixels === undefined ? {} : { maxPixels: pixels.maxPixels }),
    });
  }

  /** Side lengths are multiples of this: patchSize · mergeSize (28). */
  get factor(): number {
    return this.config.patchSize * this.config.mergeSize;
  }

  /** Floats per output row: 3 · temporalPatchSize · patchSize². */
  get rowLength(): number {
    const { temporalPatchSize, patchSize } = this.config;
    return 3 * temporalPatchSize * patchSize * patchSize;
  }

  /** Size the image is resized to (smart_resize with this config's limits), or its own size when doResize is off. */
  targetSize(width: number, height: number): { width: number; height: number } {
    if (!this.config.doResize) return { width, height };
    const [h, w] = smartResize(height, width, {
      factor: this.factor,
      minPixels: this.config.minPixels,
      maxPixels: this.config.maxPixels,
    });
    if (h < 1 || w < 1) {
      // transformers 4.50 computes this too and then fails inside PIL; say why instead.
      throw new RangeError(
        `Qwen2VLImageProcessor: smart_resize maps ${width}×${height} to ${w}×${h}; maxPixels ` +
          `(${this.config.maxPixels}) is too small for this aspect ratio`,
      );
    }
    return { width: w, height: h };
  }

  /** Merged LLM tokens the image will take, from its size alone (no pixel work). */
  numImageTokensFor(width: number, height: number): number {
    const t = this.targetSize(width, height);
    return (t.width / this.factor) * (t.height / this.factor);
  }

  process(img: RgbImage): ProcessedImage {
    assertRgbImage(img, 'Qwen2VLImageProcessor input');
    const { patchSize: p, mergeSize: m, temporalPatchSize: frames } = this.config;
    const target = this.targetSize(img.width, img.height);
    const factor = this.factor;
    if (target.width % factor !== 0 || target.height % factor !== 0) {
      throw new RangeError(
        `Qwen2VLImageProcessor: with doResize off the image (${img.width}×${img.height}) must have sides that are ` +
          `multiples of patchSize·mergeSize = ${factor}`,
      );
    }
    const resized =
      target.width === img.width && target.height === img.height
        ? img
        : resizeBicubic(img, target.width, target.height);

    const W = resized.width;
    const gridH = resized.height / p;
    const gridW = W / p;
    const rowLen = this.rowLength;
    const framePlane = p * p; // values per (channel, frame)
    const out = new Float32Array(gridH * gridW * rowLen);
    const src = resized.data;
    const table = this.table;

    // transformers: patches (T, C, H, W) → reshape(gt, T, C, gh/m, m, p, gw/m, m, p)
    //   → permute(0, 3, 6, 4, 7, 2, 1, 5, 8) → (gt·gh·gw, C·T·p·p).
    // Row order is (block row, block col, row in block, col in block); column order is (c, t, y, x).
    let row = 0;
    for (let bh = 0; bh < gridH / m; bh++) {
      for (let bw = 0; bw < gridW / m; bw++) {
        for (let mh = 0; mh < m; mh++) {
          for (let mw = 0; mw < m; mw++, row++) {
            const y0 = (bh * m + mh) * p;
            const x0 = (bw * m + mw) * p;
            const rowBase = row * rowLen;
            for (let c = 0; c < 3; c++) {
              const planeBase = rowBase + c * frames * framePlane;
              const lut = c * 256;
              for (let py = 0; py < p; py++) {
                let s = ((y0 + py) * W + x0) * 3 + c;
                let o = planeBase + py * p;
                for (let px = 0; px < p; px++, s += 3, o++) out[o] = table[lut + src[s]!]!;
              }
              // A still image is repeated to fill the temporal patch: copy frame 0 to the others.
              for (let t = 1; t < frames; t++) {
                out.copyWithin(planeBase + t * framePlane, planeBase, planeBase + framePlane);
              }
            }
          }
        }
      }
    }
    return {
      pixelValues: out,
      gridThw: [1, gridH, gridW],
      numImageTokens: (gridH * gridW) / (m * m),
    };
  }

  /** Processes images in order and concatenates their rows, like `processor(images=[…])`. */
  processAll(images: readonly RgbImage[]): ProcessedImages {
    const parts = images.map((img) => this.process(img));
    const total = parts.reduce((n, part) => n + part.pixelValues.length, 0);
    const pixelValues = new Float32Array(total);
    let offset = 0;
    for (const part of parts) {
      pixelValues.set(part.pixelValues, offset);
      offset += part.pixelValues.length;
    }
    return {
      pixelValues,
      gridThw: parts.map((part) => part.gridThw),
      numImageTokens: parts.map((part) => part.numImageTokens),
    };
  }
}
