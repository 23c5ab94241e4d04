// The Embedder: text / images / interleaved input → L2-normalised MoCa embeddings.
import path from 'node:path';

import {
  type AttentionMode,
  type InferenceDtype,
  INFERENCE_DTYPES,
  loadConfig,
  loadQwen25VL,
  type Pooling,
  prepareInferencePrecision,
  type Qwen25VLModel,
} from '../models/index.js';
import { decodeImage, Qwen2VLImageProcessor, type RgbImage } from '../processing/image/index.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { batchToTensors, buildBatch, encodeInput, imageTokenIds, type SequenceItem } from '../processing/sequence.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { noGrad, scope, setNumThreads } from '../torch/index.js';

/** An image: a file path, a `data:` URI, encoded bytes, or decoded RGB pixels. */
export type ImageInput = string | Buffer | Uint8Array | RgbImage;

export type ContentPart = { type: 'text'; text: string } | { type: 'image'; image: ImageInput };

/**
 * One input: plain text; MoCa's raw form (text with one `<|vision_start|><|image_pad|><|vision_end|>` per image,
 * images in text order); or the typed form (parts joined with nothing in between, an image part becoming the
 * placeholder). The raw and typed forms of the same content give identical embeddings.
 */
export type EmbedInput =
  string | { text: string; images?: readonly ImageInput[] } | { content: readonly ContentPart[] };

export interface EmbedderOptions {
  /**
   * Inference precision: 'float32' (default); 'bfloat16' (linear weights packed in bf16, float32 accumulation
   * and activations); 'int8' (linear weights int8 with per-output-channel scales, activations quantised per
   * token on the fly). Norms, attention, pooling run in float32 for all three.
   */
  dtype?: InferenceDtype;
  device?: string;
  /** `bidirectional` (MoCa, default) or `causal` (base VLM). */
  attention?: AttentionMode;
  /** `mean` (MoCa, default) or `last`. */
  pooling?: Pooling;
  /** L2-normalise (default true). */
  normalize?: boolean;
  /** Token limit per input; a cut image is dropped whole (default 1280, as MoCa). */
  maxLength?: number;
  /** Override the image processor's pixel limits (MoCa trains and evaluates with 256·28² … 1024·28²). */
  minPixels?: number;
  maxPixels?: number;
  /** Refuse images larger than this many pixels before decoding (decompression bombs). */
  maxDecodePixels?: number;
  /** Intra-op threads for libtorch. */
  threads?: number;
}

export interface EmbedCallOptions {
  /** Inputs per forward pass (default 8). Inputs are sorted by length internally; results keep input order. */
  batchSize?: number;
  /**
   * Tokens (text + image tokens) per forward pass: a batch closes before it would exceed this (an input longer
   * than the budget runs alone). Bounds activation memory for image-heavy or long inputs. Default: no limit.
   */
  maxBatchTokens?: number;
  /** Called after each batch with the number of inputs done. */
  onProgress?: (done: number, total: number) => void;
}

export type EmbedOutcome = { ok: true; embedding: Float32Array } | { ok: false; error: string };

export class EmbedError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(`input ${index}: ${message}`);
  }
}

interface Prepared {
  index: number;
  item: SequenceItem;
  cost: number;
}

export class Embedder {
  private constructor(
    readonly model: Qwen25VLModel,
    readonly tokenizer: Tokenizer,
    readonly imageProcessor: Qwen2VLImageProcessor,
    private readonly options: EmbedderOptions,
  ) {}

  /** Loads a model directory in the Hugging Face layout (config.json, safetensors, tokenizer.json,
   * preprocessor_config.json). */
  static async load(dir: string, options: EmbedderOptions = {}): Promise<Embedder> {
    if (options.threads !== undefined) setNumThreads(options.threads);
    const tokenizer = Tokenizer.fromDir(dir);
    const imageProcessor = await Qwen2VLImageProcessor.fromDir(dir, options);
    const dtype = options.dtype ?? 'float32';
    if (!INFERENCE_DTYPES.includes(dtype)) {
      throw new RangeError(`Embedder: dtype must be one of ${INFERENCE_DTYPES.join(', ')}, got '${String(dtype)}'`);
    }
    const device = options.device ?? 'cpu';
    if (dtype !== 'float32' && device !== 'cpu') {
      throw new RangeError(`Embedder: dtype '${dtype}' runs on the CPU kernels only (device '${device}' given)`);
    }
    // Low precision loads the weights in their stored dtype when that is bfloat16 (no float32 copy of a large
    // checkpoint), then packs the linear layers.
    const loadDtype =
      dtype === 'bfloat16' || (dtype === 'int8' && loadConfig(dir).torchDtype === 'bfloat16') ? 'bfloat16' : 'float32';
    const { model } = loadQwen25VL(dir, {
      dtype: loadDtype,
      device,
      attention: options.attention ?? 'bidirectional',
    });
    model.eval();
    if (dtype !== 'float32') prepareInferencePrecision(model, dtype);
    checkTokenizerMatchesModel(tokenizer, model, dir);
    return new Embedder(model, tokenizer, imageProcessor, options);
  }

  /** Embedding size (the language model's hidden size). */
  get dimension(): number {
    return this.model.config.hiddenSize;
  }

  /** Embeds every input; throws an EmbedError naming the first input that cannot be embedded. */
  async embed(inputs: readonly EmbedInput[], options: EmbedCallOptions = {}): Promise<Float32Array[]> {
    const outcomes = await this.embedSettled(inputs, options);
    return outcomes.map((o, i) => {
      if (!o.ok) throw new EmbedError(i, o.error);
      return o.embedding;
    });
  }

  /** Embeds every input that can be embedded; a bad input (unreadable image, placeholder count ≠ image count)
   * gets its own error and the others go on. */
  async embedSettled(inputs: readonly EmbedInput[], options: EmbedCallOptions = {}): Promise<EmbedOutcome[]> {
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be ≥ 1, got ${batchSize}`);
    const outcomes: EmbedOutcome[] = new Array(inputs.length);
    const prepared: Prepared[] = [];
    for (let i = 0; i < inputs.length; i++) {
      try {
        prepared.push({ index: i, ...(await this.prepare(inputs[i]!)) });
      } catch (e) {
        outcomes[i] = { ok: false, error: (e as Error).message };
      }
    }
    const maxTokens = options.maxBatchTokens ?? Infinity;
    if (!(maxTokens >= 1)) throw new RangeError(`maxBatchTokens must be ≥ 1, got ${options.maxBatchTokens}`);
    // Longest first: similar lengths share a batch (less padding), and memory peaks early.
    prepared.sort((a, b) => b.cost - a.cost || a.index - b.index);
    let done = inputs.length - prepared.length;
    for (const group of batchesOf(prepared, batchSize, maxTokens)) {
      try {
        const vectors = this.forward(group.map((p) => p.item));
        group.forEach((p, k) => (outcomes[p.index] = { ok: true, embedding: vectors[k]! }));
      } catch (e) {
        // Isolate the failing input(s): retry one by one.
        if (group.length === 1) {
          outcomes[group[0]!.index] = { ok: false, error: (e as Error).message };
        } else {
          for (const p of group) {
            try {
              outcomes[p.index] = { ok: true, embedding: this.forward([p.item])[0]! };
            } catch (inner) {
              outcomes[p.index] = { ok: false, error: (inner as Error).message };
            }
          }
        }
      }
      done += group.length;
      options.onProgress?.(done, inputs.length);
    }
    return outcomes;
  }

  /** Cosine similarity of two embeddings (their dot product when normalised). */
  static similarity(a: Float32Array, b: Float32Array): number {
    if (a.length !== b.length) throw new RangeError(`similarity: dimensions differ (${a.length} vs ${b.length})`);
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i]! * b[i]!;
      na += a[i]! * a[i]!;
      nb += b[i]! * b[i]!;
    }
    return dot / Math.sqrt(Math.max(na * nb, 1e-30));
  }

  similarity(a: Float32Array, b: Float32Array): number {
    return Embedder.similarity(a, b);
  }

  /** Text and decoded, processed images of one input, tokenized. */
  private async prepare(input: EmbedInput): Promise<{ item: SequenceItem; cost: number }> {
    const { text, images } = normaliseInput(input);
    const processed = [];
    for (const [k, image] of images.entries()) {
      let rgb: RgbImage;
      try {
        rgb = isRgbImage(image)
          ? image
          : await decodeImage(
              image,
              this.options.maxDecodePixels === undefined ? {} : { maxPixels: this.options.maxDecodePixels },
            );
      } catch (e) {
        throw new Error(`image ${k}: ${(e as Error).message}`);
      }
      processed.push(this.imageProcessor.process(rgb));
    }
    const item = encodeInput(this.tokenizer, { text }, processed);
    const cost = item.inputIds.length + processed.reduce((s, p) => s + p.numImageTokens - 1, 0);
    return { item, cost };
  }

  private forward(items: SequenceItem[]): Float32Array[] {
    const ids = imageTokenIds(this.tokenizer);
    const batch = buildBatch(items, {
      ...ids,
      mergeSize: this.model.config.vision.spatialMergeSize,
      maxLength: this.options.maxLength ?? 1280,
    });
    return noGrad(() =>
      scope(() => {
        const t = batchToTensors(batch, { device: this.model.device });
        const grids = batch.imageGridThw.map((g) => [g[0], g[1], g[2]] as const);
        const emb = this.model.embed(
          { inputIds: t.inputIds, attentionMask: t.attentionMask, pixelValues: t.pixelValues, imageGridThw: grids },
          { pooling: this.options.pooling ?? 'mean', normalize: this.options.normalize ?? true },
        );
        const flat = emb.toTypedArray() as Float32Array;
        const dim = emb.size(1);
        return items.map((_, i) => flat.slice(i * dim, (i + 1) * dim));
      }),
    );
  }
}

/** Consecutive groups of at most `size` items whose costs add up to at most `maxTokens` (one item at least). */
export function batchesOf<T extends { cost: number }>(items: readonly T[], size: number, maxTokens: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let tokens = 0;
  for (const item of items) {
    if (current.length > 0 && (current.length >= size || tokens + item.cost > maxTokens)) {
      out.push(current);
      current = [];
      tokens = 0;
    }
    current.push(item);
    tokens += item.cost;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function isRgbImage(x: ImageInput): x is RgbImage {
  return typeof x === 'object' && !(x instanceof Uint8Array) && 'width' in x && 'data' in x;
}

/** Text with placeholders and the images in text order, from any of the input forms. */
export function normaliseInput(input: EmbedInput): { text: string; images: ImageInput[] } {
  if (typeof input === 'string') return { text: input, images: [] };
  if ('content' in input) {
    let text = '';
    const images: ImageInput[] = [];
    input.content.forEach((part, i) => {
      if (part.type === 'text') text += part.text;
      else if (part.type === 'image') {
        text += QWEN_IMAGE_PLACEHOLDER;
        images.push(part.image);
      } else throw new Error(`content[${i}].type must be 'text' or 'image'`);
    });
    return { text, images };
  }
  return { text: input.text, images: [...(input.images ?? [])] };
}

function checkTokenizerMatchesModel(tokenizer: Tokenizer, model: Qwen25VLModel, dir: string): void {
  const c = model.config;
  const expect = (token: string, id: number) => {
    const got = tokenizer.tokenToId(token);
    if (got !== id) {
      throw new Error(
        `${path.join(dir, 'tokenizer.json')}: ${token} has id ${got ?? 'none'} but config.json expects ${id}`,
      );
    }
  };
  expect('<|image_pad|>', c.imageTokenId);
  expect('<|vision_start|>', c.visionStartTokenId);
  expect('<|vision_end|>', c.visionEndTokenId);
  if (tokenizer.idLimit > c.vocabSize) {
    throw new Error(
      `${dir}: the tokenizer uses ids up to ${tokenizer.idLimit - 1} but the model has only ${c.vocabSize} embedding rows`,
    );
  }
}
