// Turning one side of a pair (text and an optional image) into a model input, and embedding groups of them.
import type { Pooling, Qwen25VLModel } from '../../models/index.js';
import { decodeImage, type Qwen2VLImageProcessor } from '../../processing/image/index.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../../processing/inputs.js';
import {
  batchToTensors,
  buildBatch,
  encodeInput,
  type ImageTokenIds,
  type SequenceItem,
} from '../../processing/sequence.js';
import type { Tokenizer } from '../../processing/tokenizer.js';
import { scope, type Tensor } from '../../torch/index.js';

/** An image reference as the pair readers produce it: a file path, a data URI, or encoded bytes. */
export type PairImage = string | Uint8Array | { kind: 'path'; path: string } | { kind: 'data'; uri: string } | null;

export interface PairSide {
  text: string;
  image: PairImage;
}

export interface Preprocessor {
  tokenizer: Tokenizer;
  imageProcessor: Qwen2VLImageProcessor;
  /** Decompression-bomb guard for training images. */
  maxDecodePixels?: number;
}

function imageSource(image: Exclude<PairImage, null>): string | Uint8Array {
  if (typeof image === 'string' || image instanceof Uint8Array) return image;
  return image.kind === 'path' ? image.path : image.uri;
}

/**
 * Tokenizes one side, decoding and processing its image. A text with an image but no placeholder gets one in
 * front (MMEB rows always have it; text-only pair sets never have images).
 */
export async function prepareSide(side: PairSide, pre: Preprocessor): Promise<SequenceItem> {
  if (side.image === null) return encodeInput(pre.tokenizer, { text: side.text }, []);
  const rgb = await decodeImage(
    imageSource(side.image),
    pre.maxDecodePixels === undefined ? {} : { maxPixels: pre.maxDecodePixels },
  );
  const processed = pre.imageProcessor.process(rgb);
  const text = side.text.includes(QWEN_IMAGE_PLACEHOLDER) ? side.text : QWEN_IMAGE_PLACEHOLDER + side.text;
  return encodeInput(pre.tokenizer, { text }, [processed]);
}

/** Pooled, unnormalised embeddings (n, hidden) of prepared items (InfoNCE normalises). */
export function embedItems(
  model: Qwen25VLModel,
  items: readonly SequenceItem[],
  ids: ImageTokenIds,
  maxLength: number,
  pooling: Pooling = 'mean',
): Tensor {
  return scope(() => {
    const batch = buildBatch(items, { ...ids, mergeSize: model.config.vision.spatialMergeSize, maxLength });
    const t = batchToTensors(batch, { device: model.device });
    return model.embed(
      {
        inputIds: t.inputIds,
        attentionMask: t.attentionMask,
        pixelValues: t.pixelValues === null ? null : t.pixelValues.to(model.dtype),
        imageGridThw: batch.imageGridThw.map((g) => [g[0], g[1], g[2]] as const),
      },
      { normalize: false, pooling },
    );
  });
}
