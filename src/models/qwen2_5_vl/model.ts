// Qwen2.5-VL as a (bidirectional) embedding model: vision tower + language model + pooling, as MoCa's
// `Qwen2_5ForEmbedding` (spec §1.4–§1.7). Field names give transformers' checkpoint keys: `visual.*`, `model.*`,
// `lm_head.*`.
import {
  attentionSegments,
  F,
  fusedKernelsEnabled,
  Linear,
  Module,
  noGrad,
  ones,
  packedSegments,
  scope,
  tensor,
  type FactoryOptions,
  type Tensor,
} from '../../torch/index.js';
import type { Qwen25VLConfig } from './config.js';
import { headDim } from './config.js';
import { mropeCosSin, ropePositionIds } from './rope.js';
import { type AttentionMode, type DecoderContext, type FusedDecoderContext, TextModel } from './text.js';
import { type GridThw, VisionTransformer } from './vision.js';

export type Pooling = 'mean' | 'last';

export interface ModelOptions extends FactoryOptions {
  /** `bidirectional` (MoCa: key-padding mask only) or `causal` (the base VLM). */
  attention?: AttentionMode;
  /** Build the LM head (needed for MLM pre-training, not for embedding). Tied heads share embed_tokens. */
  withLmHead?: boolean;
}

export interface ModelInputs {
  /** (B, L) int64, right-padded. */
  inputIds: Tensor;
  /** (B, L) int64 or bool, 1 for real tokens. */
  attentionMask: Tensor;
  /** (N, C·t·p·p) patch rows of all images, batch-row-major then text order. */
  pixelValues?: Tensor | null;
  imageGridThw?: readonly GridThw[];
}

export class Qwen25VLModel extends Module {
  visual: VisionTransformer;
  model: TextModel;
  lm_head: Linear | null;
  attentionMode: AttentionMode;
  /** Activation dtype when it differs from the parameters' (low-precision inference: float32); else null. */
  computeDtype: Tensor['dtype'] | null = null;

  constructor(
    readonly config: Qwen25VLConfig,
    options: ModelOptions = {},
  ) {
    super();
    const f: FactoryOptions = { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' };
    this.visual = new VisionTransformer(config.vision, f);
    this.model = new TextModel(config, f);
    this.attentionMode = options.attention ?? 'bidirectional';
    if (options.withLmHead) {
      this.lm_head = new Linear(config.hiddenSize, config.vocabSize, { ...f, bias: false });
      if (config.tieWordEmbeddings) {
        this.lm_head.weight.dispose();
        this.lm_head.weight = this.model.embed_tokens.weight;
      }
    } else {
      this.lm_head = null;
    }
  }

  /** Parameter dtype (of the token embeddings). */
  get dtype(): Tensor['dtype'] {
    return this.model.embed_tokens.weight.dtype;
  }

  get device(): string {
    return this.model.embed_tokens.weight.device;
  }

  /** Token embeddings with image placeholder positions overwritten, in order, by the vision tower's outputs. */
  inputEmbeddings(inputs: ModelInputs): Tensor {
    return scope(() => {
      let embeds = this.model.embed_tokens.forward(inputs.inputIds);
      if (this.computeDtype !== null && embeds.dtype !== this.computeDtype) embeds = embeds.to(this.computeDtype);
      const grids = inputs.imageGridThw ?? [];
      const pixels = inputs.pixelValues ?? null;
      const isImage = inputs.inputIds.eq(this.config.imageTokenId);
      const imageTokens = isImage.sum().item();
      if (pixels === null || grids.length === 0) {
        if (imageTokens > 0) throw new Error(`input has ${imageTokens} image tokens but no pixel values`);
        return embeds;
      }
      const imageEmbeds = this.visual.forward(pixels, grids);
      if (imageEmbeds.size(0) !== imageTokens) {
        throw new Error(
          `Image features and image tokens do not match: tokens: ${imageTokens}, features ${imageEmbeds.size(0)}`,
        );
      }
      const mask = isImage.unsqueeze(-1).expandAs(embeds);
      return embeds.maskedScatter(mask, imageEmbeds.to(embeds.dtype));
    });
  }

  /** Final-norm hidden states (B, L, hidden). */
  hiddenStates(inputs: ModelInputs): Tensor {
    return scope(() => this.forwardWithContext(inputs).hidden);
  }

  /**
   * Final-norm hidden states together with the decoder context of this pass (M-RoPE cos/sin and attention
   * mask), which extra decoder layers on top (MoCa's MAE decoder) reuse.
   */
  forwardWithContext(inputs: ModelInputs): { hidden: Tensor; ctx: DecoderContext } {
    return scope(() => {
      const embeds = this.inputEmbeddings(inputs);
      const ctx = this.decoderContext(inputs, embeds.dtype);
      return { hidden: this.model.forward(embeds, ctx), ctx: { ...ctx } };
    });
  }

  /** M-RoPE cos/sin (in `dtype`) and the attention mask for `inputs`. */
  decoderContext(inputs: ModelInputs, dtype: Tensor['dtype']): DecoderContext {
    return scope(() => {
      const [batch, seqLen] = inputs.inputIds.shape as [number, number];
      const maskBool = inputs.attentionMask.dtype === 'bool' ? inputs.attentionMask : inputs.attentionMask.ne(0);
      const mask = maskBool.to('int32').toTypedArray() as Int32Array;
      const { cos, sin } = noGrad(() => {
        const ids = inputs.inputIds.to('int32').toTypedArray() as Int32Array;
        const positions = ropePositionIds(ids, mask, batch, seqLen, inputs.imageGridThw ?? [], {
          imageTokenId: this.config.imageTokenId,
          visionStartTokenId: this.config.visionStartTokenId,
          spatialMergeSize: this.config.vision.spatialMergeSize,
        });
        return mropeCosSin(
          positions,
          batch,
          seqLen,
          headDim(this.config),
          this.config.ropeTheta,
          this.config.mropeSection,
          dtype,
        );
      });
      let attnMask = maskBool.view(batch, 1, 1, seqLen);
      if (this.attentionMode === 'causal') {
        attnMask = attnMask.logicalAnd(ones([seqLen, seqLen], { dtype: 'bool', device: this.device }).tril());
      }
      const lengths = fusedKernelsEnabled() && this.device === 'cpu' ? rightPaddedLengths(mask, batch, seqLen) : null;
      const fused = lengths === null ? null : this.fusedContext(lengths, cos, sin, seqLen);
      return { cos, sin, mask: attnMask, fused };
    });
  }

  /** Token layouts of the fused path (see FusedDecoderContext) for rows of the given real lengths. */
  private fusedContext(lengths: number[], cos: Tensor, sin: Tensor, seqLen: number): FusedDecoderContext {
    return scope(() => {
      const batch = lengths.length;
      const cosRows = cos.reshape(batch * seqLen, -1);
      const sinRows = sin.reshape(batch * seqLen, -1);
      const padded = {
        segments: attentionSegments(
          lengths.map((len, b) => ({ qStart: b * seqLen, qLen: seqLen, kStart: b * seqLen, kLen: len })),
        ),
        cosRows,
        sinRows,
      };
      const total = lengths.reduce((a, b) => a + b, 0);
      let packed: FusedDecoderContext['packed'] = null;
      if (total < batch * seqLen) {
        const positions = new Int32Array(total);
        let at = 0;
        lengths.forEach((len, b) => {
          for (let i = 0; i < len; i++) positions[at++] = b * seqLen + i;
        });
        const index = tensor(positions, { dtype: 'int64', device: this.device });
        packed = {
          index,
          batch,
          seqLen,
          segments: attentionSegments(packedSegments(lengths)),
          cosRows: cosRows.indexSelect(0, index),
          sinRows: sinRows.indexSelect(0, index),
        };
      }
      return { causal: this.attentionMode === 'causal', padded, packed };
    });
  }

  /** Pools hidden states (B, L, H) over the mask: mean (MoCa) or the last real token. Computed in float32. */
  static pool(hidden: Tensor, attentionMask: Tensor, pooling: Pooling): Tensor {
    return scope(() => {
      const h = hidden.float();
      const m = attentionMask.to('float32');
      if (pooling === 'mean') {
        const summed = h.mul(m.unsqueeze(-1)).sum(1);
        return summed.div(m.sum(1, true).clampMin(1e-9));
      }
      const last = m.sum(1).to('int64').sub(1).clampMin(0); // index of the last real token (right padding)
      const idx = last.view(-1, 1, 1).expand(h.size(0), 1, h.size(2));
      return h.gather(1, idx).squeeze(1);
    });
  }

  /** Pooled embeddings (B, hidden) in float32, L2-normalised unless `normalize` is false. */
  embed(inputs: ModelInputs, options: { pooling?: Pooling; normalize?: boolean } = {}): Tensor {
    return scope(() => {
      const hidden = this.hiddenStates(inputs);
      const pooled = Qwen25VLModel.pool(hidden, inputs.attentionMask, options.pooling ?? 'mean');
      return options.normalize === false ? pooled : F.normalize(pooled, { dim: -1 });
    });
  }
}

/** Real-token count of each row when every row is right-padded (ones then zeros); null otherwise. */
export function rightPaddedLengths(mask: ArrayLike<number>, batch: number, seqLen: number): number[] | null {
  const lengths: number[] = [];
  for (let b = 0; b < batch; b++) {
    let len = 0;
    while (len < seqLen && mask[b * seqLen + len] !== 0) len++;
    for (let i = len; i < seqLen; i++) if (mask[b * seqLen + i] !== 0) return null;
    lengths.push(len);
  }
  return lengths;
}
