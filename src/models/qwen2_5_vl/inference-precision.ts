// Low-precision inference for a loaded Qwen2.5-VL: linear layers packed in bfloat16 or int8 (per-output-channel
// scales), everything else computed in float32. The token embedding table keeps its stored dtype (rows are cast
// to float32 as they are looked up), so a bf16 checkpoint's largest tensor is not doubled.
import { noGrad, packLinearLayers, type PackedWeightFormat, Parameter, scope } from '../../torch/index.js';
import type { Qwen25VLModel } from './model.js';

/** Dtypes an embedding model can run in: float32, or float32 activations with bf16 / int8 linear weights. */
export type InferenceDtype = 'float32' | 'bfloat16' | 'int8';

export const INFERENCE_DTYPES: readonly InferenceDtype[] = ['float32', 'bfloat16', 'int8'];

export interface InferencePrecisionReport {
  format: PackedWeightFormat;
  /** Linear layers packed (dotted names). */
  packedLayers: string[];
  /** Bytes of the packed linear weights (with their scales). */
  packedBytes: number;
}

/**
 * Converts `model` in place for inference in `format`: every Linear (vision tower, language model, LM head when
 * present) becomes an inference-only packed layer, the other parameters become float32 except the token
 * embeddings, and activations are computed in float32. The model cannot be trained or saved afterwards.
 */
export function prepareInferencePrecision(model: Qwen25VLModel, format: PackedWeightFormat): InferencePrecisionReport {
  model.eval();
  const packedLayers = packLinearLayers(model, format);
  const embedding = model.model.embed_tokens.weight;
  noGrad(() => {
    for (const [, mod] of model.namedModules()) {
      for (const value of Object.values(mod)) {
        if (!(value instanceof Parameter) || value === embedding || value.isDisposed) continue;
        if (value.dtype !== 'float32') scope(() => value.setData_(value.float()));
        value.requiresGrad_(false);
      }
    }
  });
  embedding.requiresGrad_(false);
  model.computeDtype = 'float32';
  let packedBytes = 0;
  for (const [, mod] of model.namedModules()) {
    const w = (mod as { weightPacked?: { bytes: number } }).weightPacked;
    if (w !== undefined) packedBytes += w.bytes;
  }
  return { format, packedLayers, packedBytes };
}
