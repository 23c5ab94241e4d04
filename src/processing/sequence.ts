// Sequence builder (spec §1.4): expands each image placeholder to one `<|image_pad|>` per merged patch, pads on the
// right, and truncates to `maxLength` tokens so that an image is never partially kept — an image that no longer fits
// whole is dropped with everything after its `<|vision_start|>` (pad, mask 0), and its pixel rows and grid entry go
// too (MoCa `Truncation.truncate` / `replace_last_image`). Images wholly past the cut are dropped the same way.
import { type Tensor, tensor } from '../torch/index.js';
import type { Tokenizer } from './tokenizer.js';

/** One image as the Qwen2-VL image processor produces it. */
export interface ProcessedImage {
  /** (t, h, w) in patches (14 px); h and w are multiples of the merge size. */
  gridThw: readonly [number, number, number];
  /** t·h·w rows of `patchDim` values (1176 = 3·2·14·14 for Qwen2.5-VL), row-major, merge-window order. */
  pixelValues: Float32Array;
}

/** One row before batching: tokenized text with a single `<|image_pad|>` per image, and its images in text order. */
export interface SequenceItem {
  inputIds: readonly number[];
  images: readonly ProcessedImage[];
}

/** The token ids the builder needs (Qwen2.5: 151643, 151655, 151652, 151653). */
export interface ImageTokenIds {
  padTokenId: number;
  imageTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
}

export interface BuildBatchOptions extends ImageTokenIds {
  /** Spatial merge size of the vision tower; an image gives t·h·w / mergeSize² tokens. Default 2. */
  mergeSize?: number;
  /** Rows are cut to this many tokens (images kept whole or dropped). Default 1280 (MoCa); Infinity for none. */
  maxLength?: number;
  /** Round the padded length up to a multiple of this (MoCa: 32), never beyond `maxLength`. */
  padToMultipleOf?: number;
}

export interface Batch {
  /** (batchSize, seqLen) row-major; right padded with `padTokenId`. */
  inputIds: BigInt64Array;
  /** (batchSize, seqLen); 1 for real tokens, 0 for padding and for dropped tails. */
  attentionMask: BigInt64Array;
  batchSize: number;
  seqLen: number;
  /** Real (mask 1) tokens per row. */
  lengths: number[];
  /** Rows of the kept images, batch rows in order, images in text order; (Σ t·h·w, patchDim). */
  pixelValues: Float32Array;
  /** Values per pixel row (1176 for Qwen2.5-VL); 0 when the batch has no images. */
  patchDim: number;
  /** Grid of each kept image, same order as the pixel rows. */
  imageGridThw: [number, number, number][];
  /** Per row, indices (into that row's `images`) of the images kept. */
  keptImages: number[][];
  /** Per row, whether tokens were cut by `maxLength`. */
  truncated: boolean[];
}

/** Model inputs as tensors: int64 ids/mask (B, L); float32 pixels (N, patchDim) and int64 grids (n, 3), or null. */
export interface BatchTensors {
  inputIds: Tensor;
  attentionMask: Tensor;
  pixelValues: Tensor | null;
  imageGridThw: Tensor | null;
}

/** Special ids of a Qwen2-VL tokenizer, looked up by name; an error names the missing token. */
export function imageTokenIds(tokenizer: Tokenizer): ImageTokenIds {
  const need = (token: string): number => {
    const id = tokenizer.tokenToId(token);
    if (id === undefined) throw new Error(`tokenizer has no ${token} token (not a Qwen2-VL tokenizer?)`);
    return id;
  };
  return {
    padTokenId: tokenizer.padTokenId,
    imageTokenId: need('<|image_pad|>'),
    visionStartTokenId: need('<|vision_start|>'),
    visionEndTokenId: need('<|vision_end|>'),
  };
}

interface RowLayout {
  /** Length after expansion. */
  length: number;
  /** Original index of each image's `<|image_pad|>`. */
  padAt: number[];
  /** Expanded position of each image's `<|vision_start|>` and `<|vision_end|>`. */
  start: number[];
  end: number[];
  /** Tokens per image after expansion. */
  tokens: number[];
}

function checkInt(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new RangeError(`${what} must be an integer ≥ ${min}, got ${String(v)}`);
  }
  return v;
}

/** Validates a row and computes where its images land after expansion. `row` names it in messages. */
function layoutRow(item: SequenceItem, ids: ImageTokenIds, mergeSize: number, row: string): RowLayout {
  const { inputIds, images } = item;
  const padAt: number[] = [];
  for (let i = 0; i < inputIds.length; i++) if (inputIds[i] === ids.imageTokenId) padAt.push(i);
  if (padAt.length !== images.length) {
    throw new Error(`${row}: ${padAt.length} <|image_pad|> placeholder(s) but ${images.length} image(s)`);
  }
  const start: number[] = [];
  const end: number[] = [];
  const tokens: number[] = [];
  let offset = 0;
  padAt.forEach((i, k) => {
    if (inputIds[i - 1] !== ids.visionStartTokenId || inputIds[i + 1] !== ids.visionEndTokenId) {
      throw new Error(
        `${row}: <|image_pad|> at token ${i} is not written as <|vision_start|><|image_pad|><|vision_end|>`,
      );
    }
    const img = images[k]!;
    const grid = img.gridThw;
    if (!Array.isArray(grid) || grid.length !== 3) throw new Error(`${row}: image ${k}: gridThw must be [t, h, w]`);
    const [t, h, w] = grid.map((v, j) => checkInt(v, `${row}: image ${k}: gridThw[${j}]`, 1)) as [
      number,
      number,
      number,
    ];
    if (h % mergeSize !== 0 || w % mergeSize !== 0) {
      throw new Error(`${row}: image ${k}: grid ${t}×${h}×${w} is not divisible by the merge size ${mergeSize}`);
    }
    const n = (t * h * w) / (mergeSize * mergeSize);
    start.push(i - 1 + offset);
    end.push(i + offset + n);
    tokens.push(n);
    offset += n - 1;
  });
  return { length: inputIds.length + offset, padAt, start, end, tokens };
}

/**
 * Expands each `<|vision_start|><|image_pad|><|vision_end|>` of `inputIds` to t·h·w/mergeSize² pad tokens per
 * image (no truncation, no padding) — what the Qwen2-VL processor does to the text.
 */
export function expandImageTokens(
  item: SequenceItem,
  ids: Pick<ImageTokenIds, 'imageTokenId' | 'visionStartTokenId' | 'visionEndTokenId'>,
  mergeSize = 2,
): number[] {
  const layout = layoutRow(item, { ...ids, padTokenId: -1 }, checkInt(mergeSize, 'mergeSize', 1), 'input');
  const out: number[] = [];
  let k = 0;
  item.inputIds.forEach((id, i) => {
    if (k < layout.padAt.length && i === layout.padAt[k]) {
      for (let j = 0; j < layout.tokens[k]!; j++) out.push(id);
      k++;
    } else out.push(id);
  });
  return out;
}

/**
 * Tokenizes a normalised input's text (no special tokens added) and pairs it with its processed images, checking
 * that there is one placeholder per image. `input.id` (if any) names the input in errors.
 */
export function encodeInput(
  tokenizer: Tokenizer,
  input: { id?: string; text: string },
  images: readonly ProcessedImage[],
): SequenceItem {
  const inputIds = tokenizer.encode(input.text);
  const imageId = tokenizer.tokenToId('<|image_pad|>');
  const count = imageId === undefined ? 0 : inputIds.filter((x) => x === imageId).length;
  if (count !== images.length) {
    const name = input.id === undefined ? 'input' : `input '${input.id}'`;
    throw new Error(`${name}: text has ${count} <|image_pad|> placeholder(s) but ${images.length} image(s) were given`);
  }
  return { inputIds, images };
}

/**
 * Builds a padded batch: expansion, right padding (mask 0), truncation to `maxLength` that keeps each image whole or
 * drops it (with the rest of its row), and the pixel rows / grids of the kept images in batch-row then text order.
 * The padded length is the longest expanded row rounded up to `padToMultipleOf`, capped at `maxLength` (as the
 * Qwen processor pads and MoCa's `Truncation` then cuts). A row whose placeholder count differs from its image count
 * is an error naming the row index.
 */
export function buildBatch(items: readonly SequenceItem[], options: BuildBatchOptions): Batch {
  const mergeSize = checkInt(options.mergeSize ?? 2, 'mergeSize', 1);
  const maxLength = options.maxLength ?? 1280;
  if (maxLength !== Infinity) checkInt(maxLength, 'maxLength', 1);
  const multiple = options.padToMultipleOf === undefined ? 1 : checkInt(options.padToMultipleOf, 'padToMultipleOf', 1);
  for (const key of ['padTokenId', 'imageTokenId', 'visionStartTokenId', 'visionEndTokenId'] as const) {
    checkInt(options[key], key, 0);
  }

  const layouts = items.map((item, r) => layoutRow(item, options, mergeSize, `row ${r}`));
  let patchDim = 0;
  items.forEach((item, r) =>
    item.images.forEach((img, k) => {
      const [t, h, w] = img.gridThw;
      const rows = t * h * w;
      if (!(img.pixelValues instanceof Float32Array) || img.pixelValues.length % rows !== 0) {
        throw new Error(`row ${r}: image ${k}: pixelValues must be a Float32Array of ${rows} rows (t·h·w)`);
      }
      const dim = img.pixelValues.length / rows;
      if (dim === 0 || (patchDim !== 0 && dim !== patchDim)) {
        throw new Error(`row ${r}: image ${k}: ${dim} values per pixel row, expected ${patchDim || 'more than 0'}`);
      }
      patchDim = dim;
    }),
  );

  const longest = layouts.reduce((m, l) => Math.max(m, l.length), 0);
  const seqLen = Math.min(Math.ceil(longest / multiple) * multiple, maxLength);
  const batchSize = items.length;
  const inputIds = new BigInt64Array(batchSize * seqLen).fill(BigInt(options.padTokenId));
  const attentionMask = new BigInt64Array(batchSize * seqLen);
  const lengths: number[] = [];
  const keptImages: number[][] = [];
  const truncated: boolean[] = [];
  const imageGridThw: [number, number, number][] = [];
  const kept: Float32Array[] = [];

  items.forEach((item, r) => {
    const layout = layouts[r]!;
    // The first image whose <|vision_end|> falls at or past the cut is dropped from its <|vision_start|> on;
    // the later ones are past the cut anyway.
    let keep = item.images.length;
    let length = Math.min(layout.length, maxLength);
    if (layout.length > maxLength) {
      const k = layout.end.findIndex((e) => e >= maxLength);
      if (k !== -1) {
        keep = k;
        length = layout.start[k]!;
      }
    }
    truncated.push(layout.length > maxLength);
    lengths.push(length);
    keptImages.push(Array.from({ length: keep }, (_, k) => k));
    for (let k = 0; k < keep; k++) {
      const img = item.images[k]!;
      imageGridThw.push([img.gridThw[0], img.gridThw[1], img.gridThw[2]]);
      kept.push(img.pixelValues);
    }
    const base = r * seqLen;
    let pos = 0;
    let k = 0;
    const ids = item.inputIds;
    for (let i = 0; i < ids.length && pos < length; i++) {
      if (k < layout.padAt.length && i === layout.padAt[k]) {
        const n = Math.min(layout.tokens[k]!, length - pos);
        inputIds.fill(BigInt(options.imageTokenId), base + pos, base + pos + n);
        pos += n;
        k++;
      } else {
        inputIds[base + pos] = BigInt(ids[i]!);
        pos++;
      }
    }
    attentionMask.fill(1n, base, base + length);
  });

  const pixelValues = new Float32Array(kept.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of kept) {
    pixelValues.set(p, off);
    off += p.length;
  }
  return {
    inputIds,
    attentionMask,
    batchSize,
    seqLen,
    lengths,
    pixelValues,
    patchDim,
    imageGridThw,
    keptImages,
    truncated,
  };
}

/** The batch as model input tensors (on `device`, default CPU); image tensors are null when no image was kept. */
export function batchToTensors(batch: Batch, options: { device?: string } = {}): BatchTensors {
  const dev = options.device === undefined ? {} : { device: options.device };
  const shape = [batch.batchSize, batch.seqLen];
  const n = batch.imageGridThw.length;
  return {
    inputIds: tensor(batch.inputIds, { shape, dtype: 'int64', ...dev }),
    attentionMask: tensor(batch.attentionMask, { shape, dtype: 'int64', ...dev }),
    pixelValues:
      n === 0
        ? null
        : tensor(batch.pixelValues, {
            shape: [batch.pixelValues.length / batch.patchDim, batch.patchDim],
            dtype: 'float32',
            ...dev,
          }),
    imageGridThw:
      n === 0 ? null : tensor(BigInt64Array.from(batch.imageGridThw.flat(), BigInt), { shape: [n, 3], ...dev }),
  };
}
