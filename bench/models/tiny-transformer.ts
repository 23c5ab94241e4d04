// A small pre-norm transformer encoder language model written with the public tensor API: learned token and
// position embeddings, N blocks of (LayerNorm → multi-head self-attention → residual, LayerNorm → tanh-GELU
// MLP → residual), a final LayerNorm and an untied LM head. bench/peers/train_step.py is the same model in
// PyTorch, with the submodules created in the same order.
import * as torch from '../../src/torch/index.js';

export interface TinyTransformerConfig {
  vocabSize: number;
  dModel: number;
  nHeads: number;
  nLayers: number;
  dFf: number;
  seqLen: number;
  /** false: bidirectional attention (an encoder); true: causal mask. */
  causal: boolean;
}

export const TINY_TRANSFORMER_DEFAULTS: TinyTransformerConfig = {
  vocabSize: 1024,
  dModel: 256,
  nHeads: 4,
  nLayers: 4,
  dFf: 1024,
  seqLen: 128,
  causal: false,
};

/** Multi-head self-attention with separate q/k/v/o projections and softmax attention. */
export class SelfAttention extends torch.Module {
  q_proj: torch.Linear;
  k_proj: torch.Linear;
  v_proj: torch.Linear;
  o_proj: torch.Linear;

  constructor(
    readonly dModel: number,
    readonly nHeads: number,
    readonly causal: boolean,
  ) {
    super();
    if (dModel % nHeads !== 0) throw new RangeError(`dModel ${dModel} is not divisible by nHeads ${nHeads}`);
    this.q_proj = new torch.Linear(dModel, dModel);
    this.k_proj = new torch.Linear(dModel, dModel);
    this.v_proj = new torch.Linear(dModel, dModel);
    this.o_proj = new torch.Linear(dModel, dModel);
  }

  // Each forward runs in a scope (the library's idiom): temporaries are released when the module returns,
  // as PyTorch's reference counting releases them, instead of living until the end of the training step.
  forward(x: torch.Tensor): torch.Tensor {
    if (torch.fusedKernelsEnabled() && torch.isGradEnabled()) return this.forwardFused(x);
    return torch.scope(() => {
      const [b, t, d] = x.shape as [number, number, number];
      const hd = d / this.nHeads;
      const heads = (y: torch.Tensor): torch.Tensor => y.view(b, t, this.nHeads, hd).transpose(1, 2);
      const q = heads(this.q_proj.forward(x));
      const k = heads(this.k_proj.forward(x));
      const v = heads(this.v_proj.forward(x));
      // softmax(q kᵀ / √hd) v, composed from matmul + softmax (as the peer does).
      const y = torch.F.scaledDotProductAttention(q, k, v, { isCausal: this.causal });
      return this.o_proj.forward(y.transpose(1, 2).reshape(b, t, d));
    });
  }

  /**
   * The same attention with the fused kernels: q, k, v from one product with the three weights concatenated
   * (one larger GEMM; one input-gradient product instead of three and two sums), flash attention on (B·T, heads,
   * hd) views of it, each sequence a segment.
   */
  private forwardFused(x: torch.Tensor): torch.Tensor {
    return torch.scope(() => {
      const [b, t, d] = x.shape as [number, number, number];
      const hd = d / this.nHeads;
      const layers = [this.q_proj, this.k_proj, this.v_proj];
      const w = torch.cat(
        layers.map((l) => l.weight),
        0,
      );
      const bias = torch.cat(
        layers.map((l) => l.bias!),
        0,
      );
      const qkv = torch.F.linear(x, w, bias).view(b * t, 3, this.nHeads, hd);
      // unbind (not three selects): one stacked gradient in backward instead of three zero-filled full-size ones.
      const [q, k, v] = qkv.unbind(1) as [torch.Tensor, torch.Tensor, torch.Tensor];
      const segments = Array.from({ length: b }, (_, i) => ({ qStart: i * t, qLen: t, kStart: i * t, kLen: t }));
      const y = torch.flashAttention(q, k, v, segments, { scale: 1 / Math.sqrt(hd), causal: this.causal });
      return this.o_proj.forward(y.view(b, t, d));
    });
  }
}

export class Mlp extends torch.Module {
  fc1: torch.Linear;
  fc2: torch.Linear;

  constructor(dModel: number, dFf: number) {
    super();
    this.fc1 = new torch.Linear(dModel, dFf);
    this.fc2 = new torch.Linear(dFf, dModel);
  }

  forward(x: torch.Tensor): torch.Tensor {
    return torch.scope(() => this.fc2.forward(torch.F.gelu(this.fc1.forward(x), 'tanh')));
  }
}

export class Block extends torch.Module {
  ln1: torch.LayerNorm;
  attn: SelfAttention;
  ln2: torch.LayerNorm;
  mlp: Mlp;

  constructor(c: TinyTransformerConfig) {
    super();
    this.ln1 = new torch.LayerNorm(c.dModel);
    this.attn = new SelfAttention(c.dModel, c.nHeads, c.causal);
    this.ln2 = new torch.LayerNorm(c.dModel);
    this.mlp = new Mlp(c.dModel, c.dFf);
  }

  forward(x: torch.Tensor): torch.Tensor {
    return torch.scope(() => {
      const h = x.add(this.attn.forward(this.ln1.forward(x)));
      return h.add(this.mlp.forward(this.ln2.forward(h)));
    });
  }
}

export class TinyTransformerLM extends torch.Module {
  tok_emb: torch.Embedding;
  pos_emb: torch.Embedding;
  layers: torch.ModuleList<Block>;
  ln_f: torch.LayerNorm;
  lm_head: torch.Linear;

  constructor(readonly config: TinyTransformerConfig = TINY_TRANSFORMER_DEFAULTS) {
    super();
    this.tok_emb = new torch.Embedding(config.vocabSize, config.dModel);
    this.pos_emb = new torch.Embedding(config.seqLen, config.dModel);
    this.layers = new torch.ModuleList(Array.from({ length: config.nLayers }, () => new Block(config)));
    this.ln_f = new torch.LayerNorm(config.dModel);
    this.lm_head = new torch.Linear(config.dModel, config.vocabSize, { bias: false });
    this.registerBuffer('position_ids', torch.arange(config.seqLen), false);
  }

  /** tokens (B, T) int64 → final-norm hidden states (B, T, d). */
  hidden(tokens: torch.Tensor): torch.Tensor {
    const t = tokens.size(1);
    if (t > this.config.seqLen) throw new RangeError(`sequence length ${t} exceeds seqLen ${this.config.seqLen}`);
    const positions = this.getBuffer('position_ids').slice(0, 0, t);
    return torch.scope(() => {
      let x = this.tok_emb.forward(tokens).add(this.pos_emb.forward(positions));
      for (const block of this.layers) x = block.forward(x);
      return this.ln_f.forward(x);
    });
  }

  /** tokens (B, T) int64 → logits (B, T, vocab). */
  forward(tokens: torch.Tensor): torch.Tensor {
    return torch.scope(() => this.lm_head.forward(this.hidden(tokens)));
  }

  /**
   * Mean cross-entropy over every position against targets (B, T): the LM head and the loss in one
   * `F.linearCrossEntropy` (fused, no full logits, when the fused kernels are on; logits + crossEntropy else).
   */
  loss(tokens: torch.Tensor, targets: torch.Tensor): torch.Tensor {
    return torch.scope(() => {
      const h = this.hidden(tokens);
      return torch.F.linearCrossEntropy(h.reshape(-1, this.config.dModel), this.lm_head.weight, targets.reshape(-1))
        .loss;
    });
  }
}
