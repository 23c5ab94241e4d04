// Turns validated inputs into what the inference worker receives, on the main thread and before queueing, so that
// every refusal is immediate and names its field:
//   - images: data: URIs decoded to bytes (size-checked before and after decoding); local paths only with
//     --allow-files DIR and only inside DIR (symlinks resolved), read here so the worker never sees a path;
//     the header probed (format, size) and oversized images refused before any pixel is decoded;
//   - tokens: counted exactly as the model will see them (text tokens + each image's merged patches), for the
//     length limit (413, or truncation when enabled), for batch sizing and for `usage`.
import { realpathSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { parseDataUri, type Qwen2VLImageProcessor } from '../processing/image/index.js';
import type { Tokenizer } from '../processing/tokenizer.js';
import { HttpError, badField, tooLarge } from './errors.js';
import type { WireInput } from './protocol.js';
import type { ImageRefIn, RawInput } from './request.js';

export interface PrepareLimits {
  /** Tokens per input (the model's maxLength). */
  maxInputTokens: number;
  /** Truncate longer inputs (as `moca embed` does) instead of refusing them with 413. */
  truncate: boolean;
  maxImageBytes: number;
  maxImagePixels: number;
  /** Folder that image paths may point into; null: paths are refused. */
  allowFilesDir: string | null;
}

export interface PreparedInput {
  wire: WireInput;
  /** Tokens the input occupies (after image expansion and truncation). */
  tokens: number;
  /** Image bytes held. */
  bytes: number;
  kind: RawInput['kind'];
}

const SUPPORTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff']);
const SUPPORTED_LIST = 'JPEG, PNG, WebP, GIF, TIFF';
/**
 * Characters a text may have before it is tokenized at all. A token covers at least one character, but Qwen's
 * pre-tokenizer makes tokens longer than 64 characters only from long runs of one symbol; the bound keeps a
 * pathological megabyte of text from blocking the event loop in the tokenizer.
 */
const CHARS_PER_TOKEN_BOUND = 64;

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export class InputPreparer {
  private readonly allowDirReal: string | null;
  private readonly imagePadId: number | undefined;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly processor: Qwen2VLImageProcessor,
    readonly limits: PrepareLimits,
  ) {
    this.allowDirReal = limits.allowFilesDir === null ? null : realpathSync(limits.allowFilesDir);
    this.imagePadId = tokenizer.tokenToId('<|image_pad|>');
  }

  async prepare(input: RawInput): Promise<PreparedInput> {
    const images: Uint8Array[] = [];
    const imageTokens: number[] = [];
    let bytes = 0;
    for (const ref of input.images) {
      const data = await this.loadImage(ref);
      const { width, height } = await this.probe(data, ref.param);
      imageTokens.push(this.processor.numImageTokensFor(width, height));
      images.push(data);
      bytes += data.length;
    }
    let text = input.text;
    const max = this.limits.maxInputTokens;
    const charBound = max * CHARS_PER_TOKEN_BOUND;
    if (text.length > charBound) {
      if (!this.limits.truncate) {
        throw tooLarge(
          input.param,
          `${text.length} characters is far over the limit of ${max} tokens per input (or start the server with --truncate)`,
          'input_too_long',
        );
      }
      text = cutOutsidePlaceholder(text, charBound);
    }
    const ids = this.tokenizer.encode(text);
    const pads = this.imagePadId === undefined ? 0 : ids.filter((x) => x === this.imagePadId).length;
    if (pads !== images.length) {
      if (text !== input.text) {
        // Truncated before tokenizing: images past the cut are dropped, as truncation would drop them.
        images.splice(pads);
        imageTokens.splice(pads);
      } else {
        throw badField(
          input.param,
          `the text has ${pads} <|image_pad|> token(s) but ${images.length} image(s) were given`,
        );
      }
    }
    const tokens = ids.length + imageTokens.reduce((s, t) => s + t - 1, 0);
    if (tokens > max && !this.limits.truncate) {
      throw tooLarge(
        input.param,
        `${tokens} tokens exceed the limit of ${max} per input (send shorter input, or start the server with --truncate)`,
        'input_too_long',
      );
    }
    return { wire: { text, images }, tokens: Math.min(tokens, max), bytes, kind: input.kind };
  }

  private async loadImage(ref: ImageRefIn): Promise<Uint8Array> {
    const { source, param } = ref;
    const maxBytes = this.limits.maxImageBytes;
    if (/^data:/i.test(source)) {
      const comma = source.indexOf(',');
      // Base64 carries 3 bytes per 4 characters: refuse from the length alone before decoding anything.
      if (comma > 0 && Math.floor(((source.length - comma - 1) * 3) / 4) > maxBytes * 1.01 + 16) {
        throw tooLarge(param, `the image is larger than the limit of ${maxBytes} bytes`, 'image_too_large');
      }
      let data: Buffer;
      try {
        data = parseDataUri(source);
      } catch (e) {
        throw badField(param, (e as Error).message.replace(/^Cannot decode image from data URI: /, 'bad data: URI: '));
      }
      if (data.length > maxBytes) {
        throw tooLarge(param, `the image has ${data.length} bytes, over the limit of ${maxBytes}`, 'image_too_large');
      }
      return data;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !/^file:/i.test(source)) {
      throw badField(
        param,
        'remote image URLs are not fetched by this server; send the image as a data: URI',
        'unsupported_url',
      );
    }
    if (this.allowDirReal === null) {
      throw badField(
        param,
        'local file paths are not accepted by this server (it reads files only when started with --allow-files DIR); send a data: URI',
        'file_paths_disabled',
      );
    }
    let p: string;
    try {
      p = /^file:/i.test(source) ? fileURLToPath(source) : source;
    } catch (e) {
      throw badField(param, `bad file: URL (${(e as Error).message})`);
    }
    const lexical = path.resolve(this.allowDirReal, p);
    const refuse = (): HttpError =>
      new HttpError(403, `${param}: the path is outside the folder this server may read`, param, 'path_not_allowed');
    if (!isInside(lexical, this.allowDirReal)) throw refuse();
    let real: string;
    try {
      real = realpathSync(lexical);
    } catch {
      throw badField(param, `no such file: ${p}`, 'file_not_found');
    }
    if (!isInside(real, this.allowDirReal)) throw refuse();
    const st = await stat(real);
    if (!st.isFile()) throw badField(param, `not a file: ${p}`, 'file_not_found');
    if (st.size > maxBytes) {
      throw tooLarge(param, `the image file has ${st.size} bytes, over the limit of ${maxBytes}`, 'image_too_large');
    }
    return readFile(real);
  }

  /** Format and size from the header only; refuses non-images and decompression bombs before decoding. */
  private async probe(data: Uint8Array, param: string): Promise<{ width: number; height: number }> {
    let meta: sharp.Metadata;
    try {
      meta = await sharp(data, { limitInputPixels: false, failOn: 'error', pages: 1 }).metadata();
    } catch {
      throw badField(
        param,
        `not a readable image (unrecognised or corrupt data; supported: ${SUPPORTED_LIST})`,
        'invalid_image',
      );
    }
    if (!SUPPORTED_FORMATS.has(meta.format)) {
      throw badField(
        param,
        `unsupported image format "${meta.format}" (supported: ${SUPPORTED_LIST})`,
        'invalid_image',
      );
    }
    const width = meta.width ?? 0;
    const height = meta.pageHeight ?? meta.height ?? 0;
    if (!(width >= 1 && height >= 1)) throw badField(param, `the image is ${width}×${height}`, 'invalid_image');
    if (width * height > this.limits.maxImagePixels) {
      throw tooLarge(
        param,
        `the image is ${width}×${height} = ${width * height} pixels, over the limit of ${this.limits.maxImagePixels} ` +
          '(decompression-bomb guard)',
        'image_too_large',
      );
    }
    return { width, height };
  }
}

/** `text` cut to at most `at` characters, never inside an image placeholder. */
function cutOutsidePlaceholder(text: string, at: number): string {
  const start = text.lastIndexOf(QWEN_IMAGE_PLACEHOLDER, at);
  if (start >= 0 && start < at && start + QWEN_IMAGE_PLACEHOLDER.length > at) return text.slice(0, start);
  return text.slice(0, at);
}
