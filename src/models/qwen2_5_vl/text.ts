// Qwen2.5-VL language model: embeddings, GQA decoder layers with M-RoPE, final RMSNorm.
// Names follow transformers (`embed_tokens`, `layers.N.self_attn.q_proj`, `input_layernorm`, `norm`).
import {
  Embedding,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  scope,
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
  cos: Tensor;
  sin: Tensor;
  /** bool, broadcastable to (B, heads, L, L): true where a query may attend to a key. */
  mask: Tensor;
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
  forward(x: Tensor, ctx: DecoderContext): Tensor {
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

  /** inputsEmbeds (B, L, hidden) → final-norm hidden states (B, L, hidden). */
  forward(inputsEmbeds: Tensor, ctx: DecoderContext): Tensor {
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
