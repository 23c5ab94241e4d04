// Qwen2.5-VL vision tower: patch embedding, 2-D rotary embedding, window / full attention blocks, 2×2 merger.
// Parameter names follow transformers (`patch_embed.proj`, `blocks.N.attn.qkv`, `merger.ln_q`, `merger.mlp.0`).
import {
  arange,
  attentionSegments,
  cat,
  empty,
  F,
  flashAttention,
  fusedKernelsEnabled,
  fusedRotary,
  Linear,
  Module,
  ModuleList,
  noGrad,
  powScalarBase,
  Parameter,
  RMSNorm,
  scope,
  shouldInitialize,
  tensor,
  type FactoryOptions,
  type Tensor,
  init,
} from '../../torch/index.js';
import { type Activation, activation, swiGlu } from '../activations.js';
import { attention, rotateHalf } from '../attention.js';
import type { VisionConfig } from './config.js';

export type GridThw = readonly [number, number, number];

/** Conv3d(3 → hidden, kernel = stride = (t, p, p), no bias), applied to flattened 1176-value patch rows as a
 * matrix product: the weight keeps Conv3d's shape so checkpoints load unchanged. */
class PatchEmbedProj extends Module {
  weight: Parameter;
  constructor(outDim: number, inChannels: number, temporal: number, patch: number, f: FactoryOptions) {
    super();
    const t = empty([outDim, inChannels, temporal, patch, patch], f);
    this.weight = new Parameter(t);
    t.dispose();
    if (shouldInitialize()) init.kaimingUniform_(this.weight, Math.sqrt(5));
  }
}

export class PatchEmbed extends Module {
  proj: PatchEmbedProj;
  constructor(cfg: VisionConfig, f: FactoryOptions) {
    super();
    this.proj = new PatchEmbedProj(cfg.hiddenSize, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, f);
  }

  /** (N, C·t·p·p) → (N, hidden). */
  forward(pixels: Tensor): Tensor {
    return scope(() => {
      const w = this.proj.weight;
      return F.linear(pixels.to(w.dtype), w.reshape(w.size(0), -1));
    });
  }
}

class VisionMlp extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private readonly act: Activation;
  constructor(dim: number, hidden: number, act: string, f: FactoryOptions) {
    super();
    this.gate_proj = new Linear(dim, hidden, { ...f, bias: true });
    this.up_proj = new Linear(dim, hidden, { ...f, bias: true });
    this.down_proj = new Linear(hidden, dim, { ...f, bias: true });
    this.act = activation(act);
  }
  forward(x: Tensor): Tensor {
    return swiGlu(x, this.gate_proj, this.up_proj, this.down_proj, this.act);
  }
}

/** Attention segments: contiguous row ranges [start, end) that attend only among themselves. */
export type Segments = readonly (readonly [number, number])[];

class VisionAttention extends Module {
  qkv: Linear;
  proj: Linear;
  constructor(
    private readonly dim: number,
    private readonly numHeads: number,
    f: FactoryOptions,
  ) {
    super();
    this.qkv = new Linear(dim, 3 * dim, { ...f, bias: true });
    this.proj = new Linear(dim, dim, { ...f, bias: true });
  }

  /** x (N, dim); cos/sin (N, headDim) in float32; attention restricted to each segment. */
  forward(x: Tensor, segments: Segments, cos: Tensor, sin: Tensor): Tensor {
    if (fusedKernelsEnabled() && x.device === 'cpu') return this.forwardFused(x, segments, cos, sin);
    return scope(() => {
      const n = x.size(0);
      const hd = this.dim / this.numHeads;
      const qkv = this.qkv.forward(x).reshape(n, 3, this.numHeads, hd).permute(1, 0, 2, 3);
      const [q0, k0, v] = qkv.unbind(0) as [Tensor, Tensor, Tensor];
      const q = applyVisionRotary(q0, cos, sin);
      const k = applyVisionRotary(k0, cos, sin);
      const out = segmentAttention(q, k, v, segments, 1 / Math.sqrt(hd));
      return this.proj.forward(out.reshape(n, this.dim));
    });
  }

  /** Fused path: rotary on strided q/k views of the qkv projection, flash attention over the segments directly
   * (no gathering of equal-length windows, no permutes). */
  private forwardFused(x: Tensor, segments: Segments, cos: Tensor, sin: Tensor): Tensor {
    return scope(() => {
      const n = x.size(0);
      const hd = this.dim / this.numHeads;
      // unbind (not three selects): one stacked gradient in backward instead of three zero-filled full-size ones.
      const [q0, k0, v] = this.qkv.forward(x).view(n, 3, this.numHeads, hd).unbind(1) as [Tensor, Tensor, Tensor];
      const q = fusedRotary(q0, cos, sin);
      const k = fusedRotary(k0, cos, sin);
      const out = flashAttention(q, k, v, visionSegments(segments), { scale: 1 / Math.sqrt(hd) });
      return this.proj.forward(out.view(n, this.dim));
    });
  }
}

/** flashAttention segments for row ranges [start, end) that attend among themselves. */
function visionSegments(segments: Segments): Tensor {
  return attentionSegments(
    segments.filter(([s, e]) => e > s).map(([s, e]) => ({ qStart: s, qLen: e - s, kStart: s, kLen: e - s })),
  );
}

/** Rotary on (N, heads, hd) in float32, cast back to the input dtype (transformers' apply_rotary_pos_emb_vision). */
function applyVisionRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return scope(() => {
    const xf = x.float();
    const c = cos.unsqueeze(-2);
    const s = sin.unsqueeze(-2);
    const out = xf.mul(c).add(rotateHalf(xf).mul(s));
    return out.dtype === x.dtype ? out : out.to(x.dtype);
  });
}

/**
 * Attention of rows (N, heads, hd) within segments. Segments of equal length are batched together, so the
 * many equal 8×8-patch windows run as one batched attention; results are put back in row order.
 */
export function segmentAttention(q: Tensor, k: Tensor, v: Tensor, segments: Segments, scale: number): Tensor {
  return scope(() => {
    const byLength = new Map<number, number[]>();
    for (const [s, e] of segments) {
      if (e <= s) continue;
      const list = byLength.get(e - s) ?? [];
      list.push(s);
      byLength.set(e - s, list);
    }
    const outputs: Tensor[] = [];
    const order: number[] = [];
    for (const [len, starts] of byLength) {
      const rows: number[] = [];
      for (const s of starts) for (let i = 0; i < len; i++) rows.push(s + i);
      order.push(...rows);
      const idx = tensor(Int32Array.from(rows), { dtype: 'int64' });
      const g = starts.length;
      const gather = (t: Tensor): Tensor =>
        t.indexSelect(0, idx).reshape(g, len, t.size(1), t.size(2)).permute(0, 2, 1, 3);
      const o = attention(gather(q), gather(k), gather(v), { scale }); // (g, heads, len, hd)
      outputs.push(o.permute(0, 2, 1, 3).reshape(g * len, q.size(1), q.size(2)));
    }
    const all = outputs.length === 1 ? outputs[0]! : cat(outputs, 0);
    // Row r of `all` is original row order[r]; invert that permutation.
    const inverse = new Int32Array(order.length);
    order.forEach((row, i) => (inverse[row] = i));
    return all.indexSelect(0, tensor(inverse, { dtype: 'int64' }));
  });
}

export class VisionBlock extends Module {
  norm1: RMSNorm;
  norm2: RMSNorm;
  attn: VisionAttention;
  mlp: VisionMlp;
  constructor(cfg: VisionConfig, f: FactoryOptions) {
    super();
    this.norm1 = new RMSNorm(cfg.hiddenSize, 1e-6, f);
    this.norm2 = new RMSNorm(cfg.hiddenSize, 1e-6, f);
    this.attn = new VisionAttention(cfg.hiddenSize, cfg.numHeads, f);
    this.mlp = new VisionMlp(cfg.hiddenSize, cfg.intermediateSize, cfg.hiddenAct, f);
  }
  forward(x: Tensor, segments: Segments, cos: Tensor, sin: Tensor): Tensor {
    return scope(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x), segments, cos, sin));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

/** GELU as a parameterless module, so that the merger's MLP keeps transformers' indices (mlp.0, mlp.2). */
class Gelu extends Module {
  forward(x: Tensor): Tensor {
    return F.gelu(x, 'none');
  }
}

export class PatchMerger extends Module {
  ln_q: RMSNorm;
  mlp: ModuleList;
  private readonly mergedDim: number;
  constructor(contextDim: number, outDim: number, mergeSize: number, f: FactoryOptions) {
    super();
    this.mergedDim = contextDim * mergeSize * mergeSize;
    this.ln_q = new RMSNorm(contextDim, 1e-6, f);
    this.mlp = new ModuleList([
      new Linear(this.mergedDim, this.mergedDim, f),
      new Gelu(),
      new Linear(this.mergedDim, outDim, f),
    ]);
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = this.ln_q.forward(x).reshape(-1, this.mergedDim);
      const first = this.mlp.get(0) as Linear;
      const last = this.mlp.get(2) as Linear;
      return last.forward(F.gelu(first.forward(h), 'none'));
    });
  }
}

/** Window layout of one forward pass (transformers' get_window_index), computed in plain JS. */
export interface WindowLayout {
  /** Merged-token index (over all images) at each window-ordered position. */
  windowIndex: number[];
  /** Segments (in patch rows, window order) for the windowed blocks. */
  windowSegments: [number, number][];
  /** One segment per image frame (in patch rows) for the full-attention blocks. */
  fullSegments: [number, number][];
}

export function windowLayout(grids: readonly GridThw[], cfg: VisionConfig): WindowLayout {
  const merge = cfg.spatialMergeSize;
  const unit = merge * merge;
  const win = Math.floor(cfg.windowSize / merge / cfg.patchSize);
  if (win < 1) throw new Error(`vision window_size ${cfg.windowSize} is smaller than one merged token`);
  const windowIndex: number[] = [];
  const windowSegments: [number, number][] = [];
  const fullSegments: [number, number][] = [];
  let base = 0;
  let rowStart = 0;
  for (const [t, h, w] of grids) {
    const gh = h / merge;
    const gw = w / merge;
    const nh = Math.ceil(gh / win);
    const nw = Math.ceil(gw / win);
    for (let ti = 0; ti < t; ti++) {
      for (let wy = 0; wy < nh; wy++) {
        for (let wx = 0; wx < nw; wx++) {
          let count = 0;
          for (let y = wy * win; y < Math.min((wy + 1) * win, gh); y++) {
            for (let x = wx * win; x < Math.min((wx + 1) * win, gw); x++) {
              windowIndex.push(base + ti * gh * gw + y * gw + x);
              count++;
            }
          }
          if (count > 0) {
            windowSegments.push([rowStart, rowStart + count * unit]);
            rowStart += count * unit;
          }
        }
      }
    }
    const frame = h * w;
    const firstRow = base * unit;
    for (let ti = 0; ti < t; ti++) fullSegments.push([firstRow + ti * frame, firstRow + (ti + 1) * frame]);
    base += t * gh * gw;
  }
  return { windowIndex, windowSegments, fullSegments };
}

export class VisionTransformer extends Module {
  patch_embed: PatchEmbed;
  blocks: ModuleList<VisionBlock>;
  merger: PatchMerger;

  constructor(
    readonly config: VisionConfig,
    f: FactoryOptions = {},
  ) {
    super();
    this.patch_embed = new PatchEmbed(config, f);
    this.blocks = new ModuleList(Array.from({ length: config.depth }, () => new VisionBlock(config, f)));
    this.merger = new PatchMerger(config.hiddenSize, config.outHiddenSize, config.spatialMergeSize, f);
  }

  /** Rotary angles (N, headDim/2) for every patch row, in merge-window order: [h·invFreq, w·invFreq]. */
  rotaryAngles(grids: readonly GridThw[]): Tensor {
    const merge = this.config.spatialMergeSize;
    return noGrad(() =>
      scope(() => {
        const hPos: number[] = [];
        const wPos: number[] = [];
        for (const [t, h, w] of grids) {
          for (let ti = 0; ti < t; ti++) {
            for (let by = 0; by < h / merge; by++) {
              for (let bx = 0; bx < w / merge; bx++) {
                for (let my = 0; my < merge; my++) {
                  for (let mx = 0; mx < merge; mx++) {
                    hPos.push(by * merge + my);
                    wPos.push(bx * merge + mx);
                  }
                }
              }
            }
          }
        }
        const dim = this.config.hiddenSize / this.config.numHeads / 2;
        // inv_freq = 1 / 10000^(arange(0, dim, 2) / dim), in float32 as the reference computes it.
        const invFreq = arange(0, dim, 2, { dtype: 'int64' }).float().div(dim);
        const inv = powScalarBase(10000, invFreq).reciprocal();
        const hp = tensor(Float32Array.from(hPos)).unsqueeze(1).mul(inv);
        const wp = tensor(Float32Array.from(wPos)).unsqueeze(1).mul(inv);
        return cat([hp, wp], 1);
      }),
    );
  }

  /** pixels (N, 1176) for the images described by `grids` → (N/4, outHidden) merged tokens in image order. */
  forward(pixels: Tensor, grids: readonly GridThw[]): Tensor {
    return scope(() => {
      const unit = this.config.spatialMergeSize ** 2;
      const expectedRows = grids.reduce((s, [t, h, w]) => s + t * h * w, 0);
      if (pixels.size(0) !== expectedRows) {
        throw new Error(`vision: ${pixels.size(0)} pixel rows given, image_grid_thw describes ${expectedRows}`);
      }
      const layout = windowLayout(grids, this.config);
      const winIdx = tensor(Int32Array.from(layout.windowIndex), { dtype: 'int64' });
      const n = pixels.size(0);
      let h = this.patch_embed.forward(pixels);
      h = h
        .reshape(n / unit, unit, -1)
        .indexSelect(0, winIdx)
        .reshape(n, -1);
      const angles = this.rotaryAngles(grids)
        .reshape(n / unit, unit, -1)
        .indexSelect(0, winIdx)
        .reshape(n, -1);
      const emb = cat([angles, angles], -1);
      const cos = emb.cos();
      const sin = emb.sin();
      const full = new Set(this.config.fullattBlockIndexes);
      let i = 0;
      for (const block of this.blocks) {
        const next = block.forward(h, full.has(i) ? layout.fullSegments : layout.windowSegments, cos, sin);
        h.dispose(); // our handle only: autograd keeps what backward needs
        h = next;
        i++;
      }
      const merged = this.merger.forward(h);
      const inverse = new Int32Array(layout.windowIndex.length);
      layout.windowIndex.forEach((tok, pos) => (inverse[tok] = pos));
      return merged.indexSelect(0, tensor(inverse, { dtype: 'int64' }));
    });
  }
}

/** Number of merged tokens an image of grid (t, h, w) contributes. */
export function imageTokenCount(grid: GridThw, mergeSize: number): number {
  return (grid[0] * grid[1] * grid[2]) / (mergeSize * mergeSize);
}
