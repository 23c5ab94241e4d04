// A minimal RGB raster for the generated world: filled rectangles, lightly textured backgrounds and anti-aliased
// shapes. All arithmetic is integer (or exactly rounded IEEE-754 +, −, ×, ÷), so the same scene gives the same
// pixels on every machine; PNG encoding is done elsewhere (image-writer.ts).
import { insideShape } from './shapes.js';
import type { Rgb, ShapeName, TextureName } from './vocabulary.js';

export class Canvas {
  /** Row-major RGB bytes. */
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    fill: Rgb = [0, 0, 0],
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new RangeError(`Canvas: bad size ${width}×${height}`);
    }
    this.data = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, fill);
  }

  /** The colour at (x, y). */
  get(x: number, y: number): Rgb {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) {
      throw new RangeError(`Canvas.get: (${x}, ${y}) outside ${this.width}×${this.height}`);
    }
    const i = (y * this.width + x) * 3;
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
  }

  /** Fills the rectangle (clipped to the canvas). */
  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, x);
    const y0 = Math.max(0, y);
    const x1 = Math.min(this.width, x + w);
    const y1 = Math.min(this.height, y + h);
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        const i = (yy * this.width + xx) * 3;
        this.data[i] = c[0];
        this.data[i + 1] = c[1];
        this.data[i + 2] = c[2];
      }
    }
  }

  /** A copy of the rectangle [x, x+w) × [y, y+h) (must lie inside the canvas). */
  crop(x: number, y: number, w: number, h: number): Canvas {
    if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > this.width || y + h > this.height) {
      throw new RangeError(`Canvas.crop: (${x}, ${y}, ${w}×${h}) outside ${this.width}×${this.height}`);
    }
    const out = new Canvas(w, h);
    for (let yy = 0; yy < h; yy++) {
      const from = ((y + yy) * this.width + x) * 3;
      out.data.set(this.data.subarray(from, from + w * 3), yy * w * 3);
    }
    return out;
  }
}

/** A deterministic hash of (x, y, seed) to 32 bits (integer arithmetic only). */
function hash3(x: number, y: number, seed: number): number {
  let h = Math.imul(x, 0x27d4eb2d) ^ Math.imul(y, 0x165667b1) ^ Math.imul(seed | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const clampByte = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** The brightness offset of a texture at (x, y); |offset| ≤ 8, so textures stay light. */
export function textureOffset(texture: TextureName, x: number, y: number, seed: number): number {
  switch (texture) {
    case 'plain':
      return 0;
    case 'noise':
      return (hash3(x, y, seed) % 11) - 5;
    case 'stripes': {
      // Diagonal bands 6 px wide, direction chosen by the seed.
      const d = (seed & 1) === 0 ? x + y : x - y + 4096;
      return Math.floor(d / 6) % 2 === 0 ? 0 : -8;
    }
    case 'checker':
      return (Math.floor(x / 14) + Math.floor(y / 14)) % 2 === 0 ? 0 : -7;
  }
}

/** Paints the whole canvas with `base` modulated by `texture`. */
export function paintBackground(canvas: Canvas, base: Rgb, texture: TextureName, seed: number): void {
  const d = canvas.data;
  for (let y = 0, i = 0; y < canvas.height; y++) {
    for (let x = 0; x < canvas.width; x++, i += 3) {
      const o = textureOffset(texture, x, y, seed);
      d[i] = clampByte(base[0] + o);
      d[i + 1] = clampByte(base[1] + o);
      d[i + 2] = clampByte(base[2] + o);
    }
  }
}

/** Sub-pixel samples per axis for anti-aliasing (SS² samples per pixel). */
const SS = 4;

/**
 * Draws a filled shape centred at (cx, cy) with radius r (pixels; the pixel (x, y) covers [x, x+1) × [y, y+1)),
 * anti-aliased by 4×4 supersampling: each pixel is blended with the colour by the covered fraction of its samples,
 * in integer arithmetic.
 */
export function drawShape(canvas: Canvas, shape: ShapeName, cx: number, cy: number, r: number, colour: Rgb): void {
  const x0 = Math.max(0, Math.floor(cx - r) - 1);
  const x1 = Math.min(canvas.width - 1, Math.ceil(cx + r) + 1);
  const y0 = Math.max(0, Math.floor(cy - r) - 1);
  const y1 = Math.min(canvas.height - 1, Math.ceil(cy + r) + 1);
  const n = SS * SS;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let covered = 0;
      for (let sy = 0; sy < SS; sy++) {
        const py = (y + (sy + 0.5) / SS - cy) / r;
        for (let sx = 0; sx < SS; sx++) {
          const px = (x + (sx + 0.5) / SS - cx) / r;
          if (insideShape(shape, px, py)) covered++;
        }
      }
      if (covered === 0) continue;
      const i = (y * canvas.width + x) * 3;
      const d = canvas.data;
      for (let k = 0; k < 3; k++) d[i + k] = Math.floor((d[i + k]! * (n - covered) + colour[k]! * covered + n / 2) / n);
    }
  }
}

/** A 1-pixel horizontal line. */
export function hline(canvas: Canvas, x0: number, x1: number, y: number, c: Rgb): void {
  canvas.fillRect(x0, y, x1 - x0 + 1, 1, c);
}

/** A 1-pixel vertical line. */
export function vline(canvas: Canvas, x: number, y0: number, y1: number, c: Rgb): void {
  canvas.fillRect(x, y0, 1, y1 - y0 + 1, c);
}
