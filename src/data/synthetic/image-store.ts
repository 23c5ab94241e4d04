// Writes the world's images as PNG files (sharp, from our own raw RGB rasters) and records each image's ground
// truth and pixel hash. Encoding runs a few images at a time on libuv's thread pool; the recorded truth is inserted
// in call order, so the manifest does not depend on which encode finishes first.
//
// Byte-identity: the pixels are computed with integer / exactly-rounded arithmetic only (raster.ts), so they are the
// same on every machine; the PNG bytes are those of the pinned sharp build (libvips + libspng + zlib-ng, whose deflate
// output does not depend on the CPU's SIMD level). The manifest records the pixel hashes, so worlds can be compared
// across machines independently of the encoder.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

import sharp from 'sharp';

import type { ImageTruth } from './manifest.js';
import type { Canvas } from './raster.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What the caller knows about an image; the store adds its size and pixel hash. */
export type ImageInfo = DistributiveOmit<ImageTruth, 'width' | 'height' | 'pixels'>;

export function pixelHash(canvas: Canvas): string {
  const h = createHash('sha256');
  h.update(`${canvas.width}x${canvas.height}\n`);
  h.update(canvas.data);
  return h.digest('hex').slice(0, 16);
}

/** PNG bytes of a canvas. Fixed settings: no palette quantisation, no adaptive filtering, no metadata. */
export async function encodePng(canvas: Canvas): Promise<Buffer> {
  return sharp(canvas.data, { raw: { width: canvas.width, height: canvas.height, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

export class ImageStore {
  /** Ground truth by path relative to the world root, in the order the images were added. */
  readonly truth: Record<string, ImageTruth> = {};
  private readonly pending = new Set<Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private failure: Error | undefined;

  constructor(
    /** The world root. */
    readonly root: string,
    private readonly concurrency = 8,
  ) {}

  /** Number of images added. */
  get size(): number {
    return Object.keys(this.truth).length;
  }

  /** Adds an image at `rel` (POSIX path relative to the world root). Resolves once it may be called again. */
  async put(rel: string, canvas: Canvas, info: ImageInfo): Promise<void> {
    if (this.failure) throw this.failure;
    if (rel in this.truth) throw new Error(`ImageStore: image ${rel} written twice`);
    this.truth[rel] = { ...info, width: canvas.width, height: canvas.height, pixels: pixelHash(canvas) } as ImageTruth;
    const file = path.join(this.root, ...rel.split('/'));
    const dir = path.dirname(file);
    if (!this.madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const job = encodePng(canvas)
      .then((png) => writeFile(file, png))
      .catch((e: unknown) => {
        this.failure ??= new Error(`writing ${file}: ${(e as Error).message}`, { cause: e });
      })
      .finally(() => this.pending.delete(job));
    this.pending.add(job);
    while (this.pending.size >= this.concurrency) await Promise.race(this.pending);
  }

  /** Waits for every image to be written; throws the first write error. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
  }
}
