// Stage-1 samples: the batching cost of a document (spec §2.2) and the model-ready form of a document (spec §2.3).
//
// Cost (MoCa `src/dataloader.get_sample_cost` + `Dataset`): cost = min(maxLength, text_tokens + 4·image_tokens +
// 2·n_images), where text_tokens is the sum of the token counts of the text pieces between image placeholders
// (the reference splits the text on the placeholder string and tokenizes each piece separately — which can differ
// by a token or two from tokenizing the text with the placeholders cut out, at the joins), and image_tokens is
// Σ ceil(w/28)·ceil(h/28) over the images' RAW sizes (before any resizing). An image counts 4 "equivalent tokens"
// per merged token because the vision tower makes it that much slower than text.
//
// Preparation (MoCa `MLMMAECollator`): decode each image (no EXIF rotation: the reference opens the raw bytes with
// PIL and never calls exif_transpose), force every side ≥ 28 px with PIL's default bicubic resize as
// `preprocess_image` does, run the Qwen2-VL image processor, and tokenize the full text (encodeInput). Truncation
// to maxLength (dropping a cut image whole) is left to buildBatch. Known difference: the reference upsizes before
// RGB conversion, so for palette images (PIL resizes those with NEAREST) and images with alpha (resized
// premultiplied) smaller than 28 px the upsized pixels differ slightly; RGB and greyscale images match PIL exactly.
import { readFile } from 'node:fs/promises';

import sharp from 'sharp';

import {
  decodeImage,
  parseDataUri,
  rawImageTokenCost,
  resizeBicubic,
  type ImageSource,
  type Qwen2VLImageProcessor,
  type RgbImage,
} from '../processing/image/index.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { encodeInput, type ProcessedImage, type SequenceItem } from '../processing/sequence.js';
import type { Tokenizer } from '../processing/tokenizer.js';
import { DataError, type RowLocation } from './errors.js';
import type { Document } from './document.js';

/** One merged image token costs this many text tokens (MoCa `IMAGE_EQUIV_TOKENS`). */
export const IMAGE_EQUIV_TOKENS = 4;
/** Extra cost per image (its `<|vision_start|>` and `<|vision_end|>`). */
export const IMAGE_OVERHEAD_TOKENS = 2;
/** Side of a merged token in pixels; images are forced to at least this on each side (MoCa `PATCH_SIZE`). */
export const MIN_IMAGE_SIDE = 28;
/** MoCa's maximum sequence length (cost clip and truncation). */
export const DEFAULT_MAX_LENGTH = 1280;

/** What cost measurement needs from a tokenizer. */
export interface TextTokenizer {
  encode(text: string): readonly number[];
}

/** The parts of a sample's cost. */
export interface SampleCost {
  /** Σ tokens of the text pieces between image placeholders. */
  textTokens: number;
  /** Σ ceil(w/28)·ceil(h/28) of the raw image sizes. */
  imageTokens: number;
  nImages: number;
  /** min(maxLength, textTokens + 4·imageTokens + 2·nImages). */
  cost: number;
}

/** A document with its measured cost (what the batcher buffers; light: no pixels). */
export interface MeasuredDocument extends SampleCost {
  doc: Document;
  /** Raw [width, height] of each image. */
  imageSizes: [number, number][];
}

/** A document ready for the sequence builder. */
export interface PreparedSample extends SampleCost {
  id: string;
  doc: Document;
  /** The full text's token ids (one `<|image_pad|>` per image; not truncated) and the processed images. */
  item: SequenceItem;
  /** Raw [width, height] of each image (before the ≥ 28 px upsizing and smart-resize). */
  imageSizes: [number, number][];
  /** Size each image was given to the processor (after the ≥ 28 px upsizing). */
  inputSizes: [number, number][];
}

/** Tokens of the text pieces between image placeholders, each tokenized on its own (MoCa's cost model). */
export function textTokenCount(text: string, tokenizer: TextTokenizer): number {
  let n = 0;
  for (const piece of text.split(QWEN_IMAGE_PLACEHOLDER)) if (piece.length > 0) n += tokenizer.encode(piece).length;
  return n;
}

/** cost = min(maxLength, textTokens + 4·imageTokens + 2·nImages). */
export function sampleCost(
  parts: { textTokens: number; imageTokens: number; nImages: number },
  maxLength = DEFAULT_MAX_LENGTH,
): number {
  const raw = parts.textTokens + IMAGE_EQUIV_TOKENS * parts.imageTokens + IMAGE_OVERHEAD_TOKENS * parts.nImages;
  return Math.min(maxLength, raw);
}

function costOf(textTokens: number, imageSizes: [number, number][], maxLength: number): SampleCost {
  const imageTokens = imageSizes.reduce((s, [w, h]) => s + rawImageTokenCost(w, h, MIN_IMAGE_SIDE), 0);
  const parts = { textTokens, imageTokens, nImages: imageSizes.length };
  return { ...parts, cost: sampleCost(parts, maxLength) };
}

function location(doc: Document): RowLocation {
  return {
    source: doc.source,
    row: doc.row,
    id: doc.id,
    file: doc.file,
    ...(doc.cursor.line > 0 ? { line: doc.cursor.line } : {}),
  };
}

function imageFailure(doc: Document, i: number, e: unknown): DataError {
  const msg = e instanceof Error ? e.message : String(e);
  return new DataError('bad_image', `image ${i}: ${msg}`, location(doc), { cause: e });
}

export interface DecodeDocumentImageOptions {
  /** Decompression-bomb guard in pixels (default: sharp's limit). */
  maxPixels?: number;
}

/** Decodes image `i` of `doc` as the reference does (no EXIF rotation); DataError naming the row on failure. */
export async function decodeDocumentImage(
  doc: Document,
  i: number,
  options: DecodeDocumentImageOptions = {},
): Promise<RgbImage> {
  try {
    return await decodeImage(doc.images[i] as ImageSource, {
      applyExifOrientation: false,
      ...(options.maxPixels !== undefined ? { maxPixels: options.maxPixels } : {}),
    });
  } catch (e) {
    throw imageFailure(doc, i, e);
  }
}

/** Raw size from the image header only (no pixel decoding). */
async function headerSize(doc: Document, i: number): Promise<[number, number]> {
  const src = doc.images[i]!;
  try {
    let bytes: Uint8Array;
    if (typeof src !== 'string') bytes = src;
    else if (/^data:/i.test(src)) bytes = parseDataUri(src);
    else bytes = await readFile(src);
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    const w = meta.width ?? 0;
    const h = meta.pageHeight ?? meta.height ?? 0;
    if (!(w >= 1 && h >= 1)) throw new Error(`image is ${w}×${h}`);
    return [w, h];
  } catch (e) {
    throw imageFailure(doc, i, e);
  }
}

export interface MeasureOptions extends DecodeDocumentImageOptions {
  /** Cost clip (default 1280). */
  maxLength?: number;
  /**
   * How images are checked: 'decode' (default) decodes every image fully, so corrupt or truncated images are caught
   * here and never reach a batch; 'header' reads only the size from the header (faster, but a corrupt body is only
   * found when the sample is prepared).
   */
  imageCheck?: 'decode' | 'header';
}

/** Measures a document's cost; throws DataError('bad_image') naming the row when an image cannot be read. */
export async function measureDocument(
  doc: Document,
  tokenizer: TextTokenizer,
  options: MeasureOptions = {},
): Promise<MeasuredDocument> {
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  const imageSizes = await Promise.all(
    doc.images.map(async (_, i): Promise<[number, number]> => {
      if (options.imageCheck === 'header') return headerSize(doc, i);
      const img = await decodeDocumentImage(doc, i, options);
      return [img.width, img.height];
    }),
  );
  return { doc, imageSizes, ...costOf(textTokenCount(doc.text, tokenizer), imageSizes, maxLength) };
}

/** MoCa's `preprocess_image`: each side forced to ≥ `minSide` by PIL-exact bicubic resizing (no-op otherwise). */
export function ensureMinSide(img: RgbImage, minSide = MIN_IMAGE_SIDE): RgbImage {
  if (img.width >= minSide && img.height >= minSide) return img;
  return resizeBicubic(img, Math.max(minSide, img.width), Math.max(minSide, img.height));
}

export interface PrepareOptions extends DecodeDocumentImageOptions {
  /** Cost clip (default 1280). Truncation itself happens in buildBatch. */
  maxLength?: number;
  /** Minimum image side before the processor (default 28). */
  minSide?: number;
}

/**
 * Decodes and processes a document's images and tokenizes its text. Throws DataError naming the row:
 * 'bad_image' when an image cannot be decoded, 'placeholder_mismatch' when the tokenized text does not hold one
 * `<|image_pad|>` per image.
 */
export async function prepareSample(
  doc: Document,
  tokenizer: Tokenizer,
  imageProcessor: Qwen2VLImageProcessor,
  options: PrepareOptions = {},
): Promise<PreparedSample> {
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  const decoded = await Promise.all(doc.images.map((_, i) => decodeDocumentImage(doc, i, options)));
  const imageSizes = decoded.map((img): [number, number] => [img.width, img.height]);
  const images: ProcessedImage[] = [];
  const inputSizes: [number, number][] = [];
  decoded.forEach((img, i) => {
    const up = ensureMinSide(img, options.minSide ?? MIN_IMAGE_SIDE);
    inputSizes.push([up.width, up.height]);
    try {
      const p = imageProcessor.process(up);
      images.push({ gridThw: p.gridThw, pixelValues: p.pixelValues });
    } catch (e) {
      throw imageFailure(doc, i, e);
    }
  });
  let item: SequenceItem;
  try {
    item = encodeInput(tokenizer, { id: doc.id, text: doc.text }, images);
  } catch (e) {
    throw new DataError('placeholder_mismatch', (e as Error).message, location(doc), { cause: e });
  }
  return {
    id: doc.id,
    doc,
    item,
    imageSizes,
    inputSizes,
    ...costOf(textTokenCount(doc.text, tokenizer), imageSizes, maxLength),
  };
}
