// Qwen2.5-VL language model: embeddings, GQA decoder layers with M-RoPE, final RMSNorm.
// Names follow transformers (`embed_tokens`, `layers.N.self_attn.q_proj`, `input_layernorm`, `norm`).
import {
  cat,
  Embedding,
  F,
  flashAttention,
  fusedRotary,
  Linear,
  Module,
  isGradEnabled,
  ModuleList,
  RMSNorm,
  scope,
  zeros,
  type FactoryOptions,
  type Tensor,
} from '../../torch/index.js';
import { type Activation, activation, swiGlu } from '../activations.js';
import { attention, repeatKv } from '../attention.js';
import { type Qwen25VLConfig, headDim } from './config.js';
import { applyRotary } from './rope.js';

export type AttentionMode = 'bidirectional' | 'causal';

/** Inputs shared by every decoder layer of one forward pass. */
export interface DecoderContext {
  /** (B, 1, L, headDim) */
  cos: Tensor;
  sin: Tensor;
  /** bool, broadcastable to (B, heads, L, L): true where a query may attend to a key. */
  mask: Tensor;
  /** Present when the fused kernels run this pass (right-padded rows only); absent: composed path. */
  fused?: FusedDecoderContext | null;
}

/** Attention segments and per-token rotary angles of one token layout. */
export interface TokenLayout {
  /** flashAttention segments (S, 4) int64. */
  segments: Tensor;
  /** (tokens, headDim) */
  cosRows: Tensor;
  sinRows: Tensor;
}

/**
 * The fused path's view of a right-padded batch (B, L): `padded` attends over the (B·L) rows with keys limited
 * to each row's real tokens; `packed` keeps only the real tokens (N = Σ lengths rows, `index` their positions
 * in B·L), so that linear layers, norms and attention never touch padding.
 */
export interface FusedDecoderContext {
  causal: boolean;
  padded: TokenLayout;
  packed: (TokenLayout & { index: Tensor; batch: number; seqLen: number }) | null;
}

/** (B, L, H) → (N, H): the real tokens of a right-padded batch, in row order. */
export function packTokens(x: Tensor, packed: { index: Tensor }): Tensor {
  return scope(() => x.reshape(-1, x.size(-1)).indexSelect(0, packed.index));
}

/** (N, H) → (B, L, H) with zeros at padded positions (differentiable in x). */
export function unpackTokens(x: Tensor, packed: { index: Tensor; batch: number; seqLen: number }): Tensor {
  return scope(() =>
    zeros([packed.batch * packed.seqLen, x.size(-1)], { dtype: x.dtype, device: x.device })
      .indexAdd(0, packed.index, x)
      .view(packed.batch, packed.seqLen, x.size(-1)),
  );
}

export class TextAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;

  constructor(c: Qwen25VLConfig, f: FactoryOptions) {
    super();
    this.heads = c.numAttentionHeads;
    this.kvHeads = c.numKeyValueHeads;
    this.headDim = headDim(c);
    this.q_proj = new Linear(c.hiddenSize, this.heads * this.headDim, { ...f, bias: true });
    this.k_proj = new Linear(c.hiddenSize, this.kvHeads * this.headDim, { ...f, bias: true });
    this.v_proj = new Linear(c.hiddenSize, this.kvHeads * this.headDim, { ...f, bias: true });
    this.o_proj = new Linear(this.heads * this.headDim, c.hiddenSize, { ...f, bias: false });
  }

  forward(x: Tensor, ctx: DecoderContext): Tensor {
    if (ctx.fused) return this.forwardFused(x, ctx.fused);
    return scope(() => {
      const [b, l] = x.shape as [number, number, number];
      const split = (t: Tensor, n: number) => t.view(b, l, n, this.headDim).transpose(1, 2);
      const q = applyRotary(split(this.q_proj.forward(x), this.heads), ctx.cos, ctx.sin);
      const k = applyRotary(split(this.k_proj.forward(x), this.kvHeads), ctx.cos, ctx.sin);
      const v = split(this.v_proj.forward(x), this.kvHeads);
      const rep = this.heads / this.kvHeads;
      const out = attention(q, repeatKv(k, rep), repeatKv(v, rep), {
        mask: ctx.mask,
        scale: 1 / Math.sqrt(this.headDim),
      });
      return this.o_proj.forward(out.transpose(1, 2).reshape(b, l, this.heads * this.headDim));
    });
  }

  /** x (N, hidden) packed tokens or (B, L, hidden) padded rows: fused rotary + flash attention, no KV repeat. */
  private forwardFused(x: Tensor, fused: FusedDecoderContext): Tensor {
    return scope(() => {
      const layout = x.dim() === 2 ? fused.packed! : fused.padded;
      const rows = x.numel() / x.size(-1);
      const split = (t: Tensor, n: number) => t.view(rows, n, this.headDim);
      const [qp, kp, vp] = this.projectQkv(x.reshape(rows, x.size(-1)));
      const q = fusedRotary(split(qp, this.heads), layout.cosRows, layout.sinRows);
      const k = fusedRotary(split(kp, this.kvHeads), layout.cosRows, layout.sinRows);
      const v = split(vp, this.kvHeads);
      const out = flashAttention(q, k, v, layout.segments, {
        scale: 1 / Math.sqrt(this.headDim),
        causal: fused.causal,
      });
      return this.o_proj.forward(out.view(...x.shape.slice(0, -1), this.heads * this.headDim));
    });
  }

  /**
   * q, k, v projections of rows x (N, hidden). When training, one matrix product with the three weights
   * concatenated (one larger GEMM, and one input-gradient product instead of three plus two sums); in
   * inference (no grad, or packed low-precision layers) three products, so that no weight copy is made per pass.
   */
  private projectQkv(x: Tensor): [Tensor, Tensor, Tensor] {
    const layers = [this.q_proj, this.k_proj, this.v_proj];
    if (!isGradEnabled() || !layers.every((l) => l instanceof Linear && l.bias !== null)) {
      return layers.map((l) => l.forward(x)) as [Tensor, Tensor, Tensor];
    }
    return scope(() => {
      const w = cat(
        layers.map((l) => l.weight),
        0,
      );
      const b = cat(
        layers.map((l) => l.bias!),
        0,
      );
      // split (not three narrows): its backward concatenates the three gradients once, where each narrow's
      // backward would fill a zero tensor of the whole qkv size and autograd would then add the three.
      return F.linear(x, w, b).split(
        layers.map((l) => l.outFeatures),
        1,
      );
    }) as [Tensor, Tensor, Tensor];
  }
}

export class TextMlp extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private readonly act: Activation;
  constructor(c: Qwen25VLConfig, f: FactoryOptions) {
    super();
    this.gate_proj = new Linear(c.hiddenSize, c.intermediateSize, { ...f, bias: false });
    this.up_proj = new Linear(c.hiddenSize, c.intermediateSize, { ...f, bias: false });
    this.down_proj = new Linear(c.intermediateSize, c.hiddenSize, { ...f, bias: false });
    this.act = activation(c.hiddenAct);
  }
  forward(x: Tensor): Tensor {
    return swiGlu(x, this.gate_proj, this.up_proj, this.down_proj, this.act);
  }
}

export class DecoderLayer extends Module {
  self_attn: TextAttention;
  mlp: TextMlp;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(c: Qwen25VLConfig, f: FactoryOptions) {
    super();
    this.self_attn = new TextAttention(c, f);
    this.mlp = new TextMlp(c, f);
    this.input_layernorm = new RMSNorm(c.hiddenSize, c.rmsNormEps, f);
    this.post_attention_layernorm = new RMSNorm(c.hiddenSize, c.rmsNormEps, f);
  }
  /** x (B, L, hidden), or (N, hidden) packed tokens when the fused context has a packed layout. */
  forward(x: Tensor, ctx: DecoderContext): Tensor {
    const packed = ctx.fused?.packed;
    if (packed && x.dim() === 3) {
      // A layer used on its own over padded rows (MoCa's MAE decoder): run it on the real tokens only.
      return scope(() => unpackTokens(this.forward(packTokens(x, packed), ctx), packed));
    }
    return scope(() => {
      const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx));
      return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
    });
  }
}

/** The decoder stack (`model.*` in transformers' checkpoint names). */
export class TextModel extends Module {
  embed_tokens: Embedding;
  layers: ModuleList<DecoderLayer>;
  norm: RMSNorm;
  constructor(
    readonly config: Qwen25VLConfig,
    f: FactoryOptions = {},
  ) {
    super();
    this.embed_tokens = new Embedding(config.vocabSize, config.hiddenSize, f);
    this.layers = new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new DecoderLayer(config, f)));
    this.norm = new RMSNorm(config.hiddenSize, config.rmsNormEps, f);
  }

  /** inputsEmbeds (B, L, hidden) → final-norm hidden states (B, L, hidden); zeros at padding when packed. */
  forward(inputsEmbeds: Tensor, ctx: DecoderContext): Tensor {
    const packed = ctx.fused?.packed;
    if (packed) {
      return scope(() => unpackTokens(this.forwardRows(packTokens(inputsEmbeds, packed), ctx), packed));
    }
    return this.forwardRows(inputsEmbeds, ctx);
  }

  private forwardRows(inputsEmbeds: Tensor, ctx: DecoderContext): Tensor {
    return scope(() => {
      let h = inputsEmbeds;
      for (const layer of this.layers) {
        const next = layer.forward(h, ctx);
        // Dropping our handle early only releases memory autograd does not need (the graph keeps its own).
        if (h !== inputsEmbeds) h.dispose();
        h = next;
      }
      return this.norm.forward(h);
    });
  }
}
