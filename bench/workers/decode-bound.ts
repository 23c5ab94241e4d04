// Worker for `decode-bound` (ours): the language-model decoder of a 3B-shaped Qwen2.5-VL (hidden 2048, FFN 11008,
// 16 query / 2 KV heads, head dim 128) with `layers` random layers, run over one long text and one short query in
// float32, and with its linear layers packed in bfloat16 and int8. Also measures the machine's memory bandwidth
// (stream-like read and copy) for the bandwidth bound. The token-embedding lookup is left out: it reads only the
// rows of the input tokens, not the table.
import {
  DecoderLayer,
  type DecoderContext,
  mropeCosSin,
  presetConfig,
  type Qwen25VLConfig,
} from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

export interface DecodeBoundConfig {
  layers: number;
  longTokens: number;
  shortTokens: number;
  dtypes: ('float32' | 'bfloat16' | 'int8')[];
  bandwidthMiB: number;
  threads: number;
  seed: number;
}

/** Parameter names and shapes of one layer, in the order both sides draw them from the generator. */
export function layerParameterShapes(c: Qwen25VLConfig): [string, number[]][] {
  const h = c.hiddenSize;
  const kv = c.numKeyValueHeads * (h / c.numAttentionHeads);
  return [
    ['self_attn.q_proj.weight', [h, h]],
    ['self_attn.q_proj.bias', [h]],
    ['self_attn.k_proj.weight', [kv, h]],
    ['self_attn.k_proj.bias', [kv]],
    ['self_attn.v_proj.weight', [kv, h]],
    ['self_attn.v_proj.bias', [kv]],
    ['self_attn.o_proj.weight', [h, h]],
    ['mlp.gate_proj.weight', [c.intermediateSize, h]],
    ['mlp.up_proj.weight', [c.intermediateSize, h]],
    ['mlp.down_proj.weight', [h, c.intermediateSize]],
  ];
}

class Decoder extends torch.Module {
  layers: torch.ModuleList<DecoderLayer>;
  norm: torch.RMSNorm;
  constructor(c: Qwen25VLConfig, layers: number, seed: number) {
    super();
    this.layers = torch.noInit(
      () => new torch.ModuleList(Array.from({ length: layers }, () => new DecoderLayer(c, {}))),
    );
    this.norm = new torch.RMSNorm(c.hiddenSize, c.rmsNormEps);
    torch.manualSeed(seed);
    torch.noGrad(() => {
      for (const layer of this.layers) {
        const params = new Map(layer.namedParameters());
        for (const [name, shape] of layerParameterShapes(c)) {
          const t = torch.scope(() => torch.randn(shape).mul(0.02));
          params.get(name)!.setData_(t);
          t.dispose();
        }
      }
    });
    this.requiresGrad_(false);
    this.eval();
  }
  forward(x: torch.Tensor, ctx: DecoderContext): torch.Tensor {
    return torch.scope(() => {
      let h = x;
      for (const layer of this.layers) h = layer.forward(h, ctx);
      return this.norm.forward(h);
    });
  }
}

/** Bytes of one layer's parameters as stored (float32 tensors, or packed weights + their scales). */
function layerBytes(layer: torch.Module): number {
  let bytes = 0;
  for (const [, mod] of layer.namedModules()) {
    if (mod instanceof torch.PackedLinear) bytes += mod.bytes;
  }
  for (const [, p] of layer.namedParameters()) bytes += p.numel() * p.elementSize();
  return bytes;
}

/** One sequence of `len` text tokens: 1-D positions (M-RoPE of text), every key visible. */
function context(c: Qwen25VLConfig, len: number): DecoderContext {
  return torch.scope(() => {
    const pos = new Int32Array(3 * len);
    for (let a = 0; a < 3; a++) for (let i = 0; i < len; i++) pos[a * len + i] = i;
    const hd = c.hiddenSize / c.numAttentionHeads;
    const { cos, sin } = mropeCosSin(pos, 1, len, hd, c.ropeTheta, c.mropeSection, 'float32');
    return {
      cos,
      sin,
      mask: torch.ones([1, 1, 1, len], { dtype: 'bool' }),
      fused: {
        causal: false,
        padded: {
          segments: torch.attentionSegments(torch.packedSegments([len])),
          cosRows: cos.reshape(len, hd),
          sinRows: sin.reshape(len, hd),
        },
        packed: null,
      },
    };
  });
}

/** Median seconds of `fn` over `reps` runs. */
function timeIt(fn: () => void, reps: number): number {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[reps >> 1]!;
}

const models = new Map<string, Decoder>();
const contexts = new Map<string, DecoderContext>();
const inputs = new Map<string, torch.Tensor>();

serveWorker({
  init(raw) {
    const c = raw as unknown as DecodeBoundConfig;
    torch.setNumThreads(c.threads);
    const cfg = { ...presetConfig('3b'), numHiddenLayers: c.layers };
    // Memory bandwidth first (before the models take memory): read = Σ over a buffer, copy = buffer → buffer.
    const n = (c.bandwidthMiB * 2 ** 20) / 4;
    const { readGBps, copyGBps } = torch.scope(() => {
      const a = torch.ones([n]);
      const b = torch.empty([n]);
      b.copy_(a);
      const read = timeIt(() => torch.scope(() => void a.sum().item()), 5);
      const copy = timeIt(() => b.copy_(a), 5);
      return { readGBps: (n * 4) / read / 1e9, copyGBps: (2 * n * 4) / copy / 1e9 };
    });
    const bytesPerLayer: Record<string, number> = {};
    for (const dtype of c.dtypes) {
      const model = new Decoder(cfg, c.layers, c.seed);
      if (dtype !== 'float32') torch.packLinearLayers(model, dtype);
      models.set(dtype, model);
      bytesPerLayer[dtype] = layerBytes(model.layers.get(0));
    }
    for (const [id, len] of [
      ['long', c.longTokens],
      ['short', c.shortTokens],
    ] as const) {
      contexts.set(id, context(cfg, len));
      torch.manualSeed(c.seed + len);
      inputs.set(id, torch.randn([1, len, cfg.hiddenSize]).keep());
    }
    for (const ctx of contexts.values()) {
      for (const t of [ctx.cos, ctx.sin, ctx.mask, ctx.fused!.padded.segments, ctx.fused!.padded.cosRows]) t.keep();
      ctx.fused!.padded.sinRows.keep();
    }
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      read_gbps: readGBps,
      copy_gbps: copyGBps,
      bytes_per_layer: bytesPerLayer,
      packed_kernels: torch.packedLinearKernels(),
      fused_kernels: torch.fusedKernelsName(),
      parameters_per_layer: layerParameterShapes(cfg).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0),
    };
  },

  step(caseId) {
    const [dtype, len] = (caseId ?? '').split('-') as [string, string];
    const model = models.get(dtype);
    const ctx = contexts.get(len);
    const x = inputs.get(len);
    if (model === undefined || ctx === undefined || x === undefined)
      throw new Error(`decode-bound: bad case ${caseId}`);
    const checksum = torch.noGrad(() => torch.scope(() => model.forward(x, ctx).float().abs().mean().item()));
    return { tokens: x.size(1), checksum };
  },
});
