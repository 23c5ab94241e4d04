// Image decoding (file path, data: URI or bytes → 8-bit RGB) on sharp/libvips, matching what transformers' slow
// Qwen2-VL pipeline feeds its resizer:
//   - EXIF orientation applied by default, like `transformers.image_utils.load_image` (`ImageOps.exif_transpose`);
//   - alpha composited onto opaque white with Pillow's integer `alpha_composite` arithmetic, like
//     `transformers.image_transforms.convert_to_rgb` (the processor's `do_convert_rgb` step). Note that plain PIL
//     `image.convert("RGB")` (which `load_image` also calls) would instead DROP the alpha channel and expose
//     whatever colour the transparent pixels happen to store; we deliberately follow convert_to_rgb;
//   - embedded ICC profiles ignored, because PIL ignores them (sharp would otherwise convert to sRGB);
//   - only the first frame of animated GIF/WebP, like `Image.open`.

import { readFile } from 'node:fs/promises';

import sharp from 'sharp';

import type { RgbImage } from './types.js';

export type { RgbImage } from './types.js';

/** Where an image comes from: encoded bytes, a file path, or a `data:` URI string. */
export type ImageSource = Buffer | Uint8Array | string;

export interface DecodeImageOptions {
  /** Rotate/flip according to the EXIF Orientation tag (default true). */
  applyExifOrientation?: boolean;
  /**
   * Decompression-bomb guard: refuse, from the header alone and before decoding any pixel, images whose
   * width·height exceeds this. Default: sharp's own limit (16383² ≈ 268 M pixels).
   */
  maxPixels?: number;
}

/** Decoding failed; `source` names where the bytes came from (file path, "data URI" or "buffer"). */
export class ImageDecodeError extends Error {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageDecodeError';
    this.source = source;
  }
}

/** Formats decoded here: those Pillow 9.4 reads (so the reference pipeline could read them too) and libvips too. */
const SUPPORTED_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff']);
const SUPPORTED_LIST = 'JPEG, PNG, WebP, GIF, TIFF';

/** sharp's default limitInputPixels. */
const SHARP_DEFAULT_PIXEL_LIMIT = 0x3fff * 0x3fff;

interface ResolvedSource {
  bytes: Buffer;
  /** Short origin stored in ImageDecodeError.source: the file path, "data URI" or "buffer". */
  name: string;
  /** Origin as phrased in messages: `file "…"`, "data URI" or "buffer". */
  label: string;
}

/** Percent-decodes a non-base64 data URI payload to bytes (RFC 2397 allows raw octets as %XX). */
function percentDecode(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25 /* % */ && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (ch < 0x80) {
      out.push(ch);
    } else {
      out.push(...Buffer.from(text[i]!, 'utf8'));
    }
  }
  return Buffer.from(out);
}

/** Parses `data:[<mediatype>][;base64],<data>` into bytes. */
export function parseDataUri(uri: string): Buffer {
  const label = 'data URI';
  const comma = uri.indexOf(',');
  if (!uri.startsWith('data:') || comma < 0) {
    throw new ImageDecodeError(
      label,
      'Cannot decode image from data URI: malformed (expected "data:[type][;base64],…")',
    );
  }
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  const isBase64 = /(^|;)base64$/i.test(meta);
  let bytes: Buffer;
  if (isBase64) {
    const clean = payload.replace(/\s+/g, '');
    // Buffer.from(…, 'base64') silently skips invalid characters; reject them so garbage is reported as such.
    if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(clean)) {
      throw new ImageDecodeError(label, 'Cannot decode image from data URI: payload is not valid base64');
    }
    bytes = Buffer.from(clean, 'base64');
  } else {
    bytes = percentDecode(payload);
  }
  if (bytes.length === 0) {
    throw new ImageDecodeError(label, 'Cannot decode image from data URI: it carries no data');
  }
  return bytes;
}

async function resolveSource(source: ImageSource): Promise<ResolvedSource> {
  if (typeof source === 'string') {
    if (source.startsWith('data:')) {
      return { bytes: parseDataUri(source), name: 'data URI', label: 'data URI' };
    }
    const label = `file "${source}"`;
    try {
      return { bytes: await readFile(source), name: source, label };
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new ImageDecodeError(source, `Cannot read image ${label}: ${reason}`, { cause: err });
    }
  }
  if (source instanceof Uint8Array) {
    // Buffer is a Uint8Array too; wrap without copying.
    const bytes = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    if (bytes.length === 0) throw new ImageDecodeError('buffer', 'Cannot decode image from buffer: it is empty');
    return { bytes, name: 'buffer', label: 'buffer' };
  }
  throw new TypeError('decodeImage: source must be a Buffer/Uint8Array, a file path or a data: URI string');
}

/**
 * True for a PNG whose IHDR colour type is 2 (truecolour without alpha). Such a PNG can still carry a tRNS colour
 * key, which libvips turns into an alpha channel, but PIL opens it as mode "RGB" and transformers' convert_to_rgb
 * returns RGB images untouched — so the key must be ignored, not composited.
 */
function isTruecolourPngWithoutAlpha(bytes: Buffer): boolean {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 26 || signature.some((b, i) => bytes[i] !== b)) return false;
  return bytes.toString('latin1', 12, 16) === 'IHDR' && bytes[25] === 2;
}

/**
 * Composites RGBA over opaque white exactly as Pillow's `Image.alpha_composite(white, rgba)` does (integer
 * arithmetic with 7 extra bits of precision and rounded divisions by 255), then drops alpha.
 */
function compositeOnWhite(rgba: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  const dst = 255; // background colour and alpha
  for (let i = 0; i < pixels; i++) {
    const s = i * 4;
    const o = i * 3;
    const a = rgba[s + 3]!;
    if (a === 0) {
      out[o] = out[o + 1] = out[o + 2] = dst;
      continue;
    }
    const blend = dst * (255 - a);
    const outA255 = a * 255 + blend;
    const coef1 = Math.floor((a * 255 * 255 * 128) / outA255);
    const coef2 = 255 * 128 - coef1;
    for (let c = 0; c < 3; c++) {
      const t = rgba[s + c]! * coef1 + dst * coef2 + (0x80 << 7);
      // SHIFTFORDIV255(t) = ((t >> 8) + t) >> 8, then drop the 7 precision bits.
      out[o + c] = (((t >>> 8) + t) >>> 8) >>> 7;
    }
  }
  return out;
}

function dropAlpha(rgba: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    out[i * 3] = rgba[i * 4]!;
    out[i * 3 + 1] = rgba[i * 4 + 1]!;
    out[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return out;
}

/** Rewrites sharp/libvips error text into a message that names the source. */
function decodeFailure(name: string, label: string, err: unknown): ImageDecodeError {
  const raw = err instanceof Error ? err.message : String(err);
  if (/unsupported image format/i.test(raw)) {
    return new ImageDecodeError(
      name,
      `Cannot decode image from ${label}: unrecognised or unsupported image format (supported: ${SUPPORTED_LIST})`,
      { cause: err },
    );
  }
  return new ImageDecodeError(name, `Cannot decode image from ${label}: corrupt or truncated data (${raw.trim()})`, {
    cause: err,
  });
}

/**
 * Decodes an image to 8-bit RGB. Supports JPEG, PNG (incl. grayscale, palette, alpha, tRNS), WebP, GIF (first
 * frame) and TIFF. Throws {@link ImageDecodeError} naming the source for unreadable, corrupt, unsupported,
 * empty (a side < 1) or over-limit images.
 */
export async function decodeImage(source: ImageSource, options: DecodeImageOptions = {}): Promise<RgbImage> {
  const { applyExifOrientation = true, maxPixels } = options;
  if (maxPixels !== undefined && !(Number.isFinite(maxPixels) && maxPixels >= 1)) {
    throw new RangeError(`decodeImage: maxPixels must be a positive number, got ${maxPixels}`);
  }
  const { bytes, name, label } = await resolveSource(source);

  // `failOn: 'error'` rejects truncated/corrupt pixel data but, like PIL, tolerates benign libjpeg warnings
  // (e.g. extraneous bytes before a marker). sharp's pixel limit is a second guard behind ours.
  const limit = maxPixels === undefined ? SHARP_DEFAULT_PIXEL_LIMIT : Math.floor(maxPixels);
  const sharpOptions: sharp.SharpOptions = {
    failOn: 'error',
    limitInputPixels: limit,
    ignoreIcc: true,
    autoOrient: applyExifOrientation,
    pages: 1,
    page: 0,
  };

  let meta: sharp.Metadata;
  try {
    // Header only; sharp's own limit is lifted here so that an oversized image gets our explicit message below.
    meta = await sharp(bytes, { ...sharpOptions, limitInputPixels: false }).metadata();
  } catch (err) {
    throw decodeFailure(name, label, err);
  }
  if (!SUPPORTED_FORMATS.has(meta.format)) {
    throw new ImageDecodeError(
      name,
      `Cannot decode image from ${label}: unsupported image format "${meta.format}" (supported: ${SUPPORTED_LIST})`,
    );
  }
  // For multi-frame inputs the first frame's height is pageHeight.
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width >= 1 && height >= 1)) {
    throw new ImageDecodeError(name, `Cannot decode image from ${label}: it is ${width}×${height}, a side is < 1`);
  }
  if (width * height > limit) {
    throw new ImageDecodeError(
      name,
      `Refusing to decode image from ${label}: ${width}×${height} = ${width * height} pixels exceeds the limit of ` +
        `${limit} (decompression-bomb guard)`,
    );
  }

  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await sharp(bytes, sharpOptions)
      .toColourspace('srgb') // grey → replicated RGB, 16-bit → 8-bit
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeFailure(name, label, err);
  }
  const { info, data } = raw;
  const pixels = info.width * info.height;
  if (info.width < 1 || info.height < 1) {
    throw new ImageDecodeError(name, `Cannot decode image from ${label}: it is ${info.width}×${info.height}`);
  }
  let rgb: Uint8Array;
  if (info.channels === 3) {
    rgb = new Uint8Array(data.buffer, data.byteOffset, pixels * 3);
  } else if (info.channels === 4) {
    const rgba = new Uint8Array(data.buffer, data.byteOffset, pixels * 4);
    rgb = isTruecolourPngWithoutAlpha(bytes) ? dropAlpha(rgba, pixels) : compositeOnWhite(rgba, pixels);
  } else {
    throw new ImageDecodeError(name, `Cannot decode image from ${label}: unexpected ${info.channels}-channel output`);
  }
  return { width: info.width, height: info.height, data: rgb };
}
