// Small JPEG previews of indexed images, shown by the search page and printed by `moca search`.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import sharp from 'sharp';

import type { ImageInput } from '../embed/index.js';
import { parseDataUri } from '../processing/image/index.js';

/** Longest side of a thumbnail, in pixels. */
export const THUMBNAIL_SIZE = 192;

async function sharpOf(image: ImageInput, maxPixels: number): Promise<sharp.Sharp> {
  const options: sharp.SharpOptions = { limitInputPixels: maxPixels, failOn: 'error', pages: 1 };
  if (typeof image === 'string') {
    const bytes = image.startsWith('data:') ? parseDataUri(image) : await readFile(image);
    return sharp(bytes, options);
  }
  if (image instanceof Uint8Array) return sharp(image, options);
  return sharp(image.data, { ...options, raw: { width: image.width, height: image.height, channels: 3 } });
}

/**
 * Writes a JPEG thumbnail of `image` to `file` (atomically). Returns false, writing nothing, when the image cannot
 * be read: a missing preview must not fail an index build.
 */
export async function writeThumbnail(
  image: ImageInput,
  file: string,
  options: { size?: number; maxPixels?: number } = {},
): Promise<boolean> {
  const size = options.size ?? THUMBNAIL_SIZE;
  try {
    const pipeline = await sharpOf(image, options.maxPixels ?? 0x3fff * 0x3fff);
    const jpeg = await pipeline
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .resize(size, size, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 80 })
      .toBuffer();
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, jpeg);
    renameSync(`${file}.tmp`, file);
    return true;
  } catch {
    return false;
  }
}
