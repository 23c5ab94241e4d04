// Benchmark dispatcher: `node dist/bench/run.js <bench|all> [--threads 2] [--rounds 5] [--steps 3] [--warmup k]
// [--seed n] [--python /usr/bin/python3]`. One JSON line per measurement on stdout; progress on stderr.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  type BenchCase,
  type BenchOptions,
  type BenchSpec,
  type CaseSamples,
  median,
  round,
  runBench,
  workersDir,
} from './harness.js';
import { DDP_DESCRIPTION, runDdpBench } from './ddp.js';
import type { TinyTransformerConfig } from './models/tiny-transformer.js';
import type { MatmulCase } from './workers/matmul.js';
import { runServeBench, SERVE_BENCH_DESCRIPTION } from './workers/serve-bench.js';

const med = (xs: number[] | undefined): number | null => (xs && xs.length > 0 ? round(median(xs)) : null);

function phaseFields(side: 'ours' | 'peer', s: CaseSamples): Record<string, unknown> {
  return {
    [`${side}_forward_ms`]: med(s.values.forward_ms),
    [`${side}_backward_ms`]: med(s.values.backward_ms),
    [`${side}_optimizer_ms`]: med(s.values.optimizer_ms),
    [`${side}_minor_faults_per_step`]: med(s.values.minor_faults),
  };
}

/** The train-step model (type-only import: the parent must not load libtorch before choosing OPENBLAS_CORETYPE). */
const TRAIN_STEP_MODEL: TinyTransformerConfig = {
  vocabSize: 1024,
  dModel: 256,
  nHeads: 4,
  nLayers: 4,
  dFf: 1024,
  seqLen: 128,
  causal: false,
};
const TRAIN_STEP_BATCH = 16;

const trainStep: BenchSpec = {
  name: 'train-step',
  description:
    '4-layer pre-norm transformer encoder LM (d=256, 4 heads, seq 128, batch 16, FFN 1024, vocab 1024, ' +
    'bidirectional attention), cross-entropy + AdamW: ms per step (forward+backward+step+zero_grad)',
  oursWorker: 'train-step.js',
  peerScript: 'train_step.py',
  defaults: { rounds: 5, steps: 3, warmup: 3 },
  config: () => ({ model: TRAIN_STEP_MODEL, batch: TRAIN_STEP_BATCH, lr: 1e-3, weightDecay: 0.01 }),
  cases: () => [{ id: undefined, metric: 'ms_per_step', unit: 'ms', higherIsBetter: false, value: (ms: number) => ms }],
  extra(_c, ours, peer) {
    const o = ours.cases.get(undefined)!;
    const p = peer.cases.get(undefined)!;
    const handles = o.values.live_handles ?? [];
    const growth = handles.length > 0 ? Math.max(...handles) - handles[0]! : null;
    if (growth !== null && growth > 0) {
      process.stderr.write(`WARNING train-step: our live tensor handles grew by ${growth} across measured steps\n`);
    }
    const firstLoss = (s: CaseSamples): number | null => s.warmupValues.loss?.[0] ?? s.values.loss?.[0] ?? null;
    const lastLoss = (s: CaseSamples): number | null => s.values.loss?.at(-1) ?? null;
    const model = TRAIN_STEP_MODEL;
    return {
      attention: model.causal ? 'causal' : 'bidirectional',
      model: `L${model.nLayers} d${model.dModel} h${model.nHeads} ff${model.dFf} T${model.seqLen} V${model.vocabSize} B${TRAIN_STEP_BATCH}`,
      parameters: ours.init.parameters ?? null,
      same_data: ours.init.data_checksum === peer.init.data_checksum,
      ...phaseFields('ours', o),
      ...phaseFields('peer', p),
      ours_loss_first: round(firstLoss(o), 6),
      peer_loss_first: round(firstLoss(p), 6),
      ours_loss_last: round(lastLoss(o), 6),
      peer_loss_last: round(lastLoss(p), 6),
      ours_gc_per_step: med(o.values.gc_count),
      ours_gc_ms_per_step: med(o.values.gc_ms),
      ours_live_handles: handles.at(-1) ?? null,
      ours_handles_growth: growth,
      ours_live_tensor_mib: round(o.values.live_mib?.at(-1) ?? null),
    };
  },
};

const MATMUL_SIZES: [number, number, number][] = [
  [512, 512, 512],
  [1024, 1024, 1024],
  [2048, 768, 3072],
];
/** Work per measured step, so that small sizes are timed over many products (≈0.1 s at 150 GFLOP/s). */
const MATMUL_FLOP_PER_STEP = 1.5e10;

const matmul: BenchSpec = {
  name: 'matmul',
  description: 'fp32 matmul GFLOP/s (M×K×N) at 512³, 1024³ and 2048×768×3072; ratio = ours/peer GFLOP/s',
  oursWorker: 'matmul.js',
  peerScript: 'matmul.py',
  defaults: { rounds: 5, steps: 3, warmup: 1 },
  config: () => ({
    cases: MATMUL_SIZES.map(([m, k, n]): MatmulCase => {
      const flop = 2 * m * k * n;
      return { id: `${m}x${k}x${n}`, m, k, n, reps: Math.max(1, Math.ceil(MATMUL_FLOP_PER_STEP / flop)) };
    }),
  }),
  cases: (config) =>
    (config.cases as MatmulCase[]).map((mc): BenchCase => ({
      id: mc.id,
      metric: `gflops_${mc.id}`,
      unit: 'GFLOP/s',
      higherIsBetter: true,
      value: (ms: number) => (2 * mc.m * mc.k * mc.n * mc.reps) / (ms * 1e6),
    })),
  extra(c, ours, peer) {
    const mc = (ours.init.checksums ?? {}) as Record<string, number>;
    const pc = (peer.init.checksums ?? {}) as Record<string, number>;
    const a = mc[c.id ?? ''];
    const b = pc[c.id ?? ''];
    const sizes = MATMUL_SIZES.find(([m, k, n]) => `${m}x${k}x${n}` === c.id)!;
    const flop = 2 * sizes[0] * sizes[1] * sizes[2];
    const msPer = (gflops: number[]): number | null => (gflops.length ? round(flop / (median(gflops) * 1e6)) : null);
    return {
      m: sizes[0],
      k: sizes[1],
      n: sizes[2],
      matmuls_per_step: Math.max(1, Math.ceil(MATMUL_FLOP_PER_STEP / flop)),
      ours_ms_per_matmul: msPer(ours.cases.get(c.id)!.samples),
      peer_ms_per_matmul: msPer(peer.cases.get(c.id)!.samples),
      same_data: a !== undefined && b !== undefined && Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(a)),
      ratio_note: 'ours/peer of GFLOP/s: above 1 means ours is faster',
    };
  },
};

/** Prepared once per machine (random `small` model + input batches), reused by later runs. */
function embedWorkDir(seed: number): string {
  const dir = path.join(os.tmpdir(), `moca-bench-embed-${seed}`);
  const r = spawnSync(process.execPath, [path.join(workersDir(), 'embed-prepare.js'), dir, String(seed)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`preparing the embed bench failed (exit ${r.status})`);
  return dir;
}

const EMBED_CASES = [
  { id: 'text', metric: 'embeddings_per_s_text', description: '16 text-only rows' },
  { id: 'image', metric: 'embeddings_per_s_image_text', description: '4 rows of one image + text' },
];

const embed: BenchSpec = {
  name: 'embed',
  description:
    'embeddings/s of the `small` config (LLM 4×512, vision 4×256) for text-only and image+text batches; ' +
    'peer = the independent PyTorch reference (tools/reference) on the same weights and inputs',
  oursWorker: 'embed.js',
  peerScript: 'embed.py',
  defaults: { rounds: 5, steps: 3, warmup: 2 },
  config: (options) => {
    const dir = embedWorkDir(options.seed);
    return {
      modelDir: path.join(dir, 'model'),
      inputs: Object.fromEntries(EMBED_CASES.map((c) => [c.id, path.join(dir, `${c.id}.safetensors`)])),
    };
  },
  cases: () =>
    EMBED_CASES.map((c): BenchCase => ({
      id: c.id,
      metric: c.metric,
      unit: 'embeddings/s',
      higherIsBetter: true,
      value: (ms: number, values: Record<string, number>) => ((values.rows ?? 1) * 1000) / ms,
    })),
  extra(c, ours, peer) {
    const o = ours.cases.get(c.id)!;
    const p = peer.cases.get(c.id)!;
    const oc = o.values.checksum?.at(-1);
    const pc = p.values.checksum?.at(-1);
    return {
      batch: EMBED_CASES.find((e) => e.id === c.id)!.description,
      ours_ms_per_batch: med(o.samples.map((x) => ((o.values.rows?.[0] ?? 1) * 1000) / x)),
      peer_ms_per_batch: med(p.samples.map((x) => ((p.values.rows?.[0] ?? 1) * 1000) / x)),
      ours_load_ms: round((ours.init.load_ms as number | undefined) ?? null),
      peer_load_ms: round((peer.init.load_ms as number | undefined) ?? null),
      parameters: ours.init.parameters ?? null,
      same_output: oc !== undefined && pc !== undefined && Math.abs(oc - pc) <= 1e-3 * Math.max(1, Math.abs(pc)),
      ratio_note: 'ours/peer of embeddings/s: above 1 means ours is faster',
    };
  },
};

const PRECISIONS = ['bfloat16', 'int8'] as const;

const embedPrecision: BenchSpec = {
  name: 'embed-precision',
  description:
    'the embed batches with our linear layers packed in bfloat16 / int8 (float32 activations), against the ' +
    'float32 PyTorch reference; embedding agreement = cosine to our float32 embeddings of the same rows',
  oursWorker: 'embed.js',
  peerScript: 'embed.py',
  defaults: { rounds: 3, steps: 3, warmup: 1 },
  config: (options) => ({ ...embed.config(options), dtypes: [...PRECISIONS] }),
  cases: () =>
    EMBED_CASES.flatMap((c) =>
      PRECISIONS.map((dtype): BenchCase => ({
        id: `${c.id}-${dtype}`,
        metric: `${c.metric}_${dtype}`,
        unit: 'embeddings/s',
        higherIsBetter: true,
        value: (ms: number, values: Record<string, number>) => ((values.rows ?? 1) * 1000) / ms,
      })),
    ),
  extra(c, ours, peer) {
    const o = ours.cases.get(c.id)!;
    const p = peer.cases.get(c.id)!;
    const dtype = (c.id ?? '').split('-')[1]!;
    const rows = o.values.rows?.[0] ?? 1;
    return {
      ours_dtype: dtype,
      peer_dtype: 'float32',
      ours_ms_per_batch: med(o.samples.map((x) => (rows * 1000) / x)),
      peer_ms_per_batch: med(p.samples.map((x) => (rows * 1000) / x)),
      cosine_to_float32_min: round(Math.min(...(o.values.cosine_min ?? [NaN])), 6),
      cosine_to_float32_mean: round(o.values.cosine_mean?.at(-1) ?? null, 6),
      packed_linear_bytes: (ours.init.packed_bytes as Record<string, number>)[dtype] ?? null,
      ratio_note: 'ours (low precision) / peer (float32) of embeddings/s: above 1 means ours is faster',
    };
  },
};

const cptStep: BenchSpec = {
  name: 'cpt-step',
  description:
    'one MoCa stage-1 step (MLM + MAE forward, backward, AdamW) of the `small` config on an interleaved batch ' +
    '(4 text rows + 4 image rows, fixed masks); peer = the independent PyTorch reference; tokens/s',
  oursWorker: 'cpt-step.js',
  peerScript: 'cpt_step.py',
  defaults: { rounds: 5, steps: 2, warmup: 1 },
  config: (options) => {
    const dir = embedWorkDir(options.seed);
    return {
      modelDir: path.join(dir, 'model'),
      batchFile: path.join(dir, 'cpt.safetensors'),
      headsFile: path.join(dir, 'heads.safetensors'),
      lr: 1e-5,
    };
  },
  cases: () => [
    {
      id: undefined,
      metric: 'tokens_per_s',
      unit: 'tokens/s',
      higherIsBetter: true,
      value: (ms: number, values: Record<string, number>) => ((values.tokens ?? 0) * 1000) / ms,
    },
  ],
  extra(_c, ours, peer) {
    const o = ours.cases.get(undefined)!;
    const p = peer.cases.get(undefined)!;
    const first = (s: CaseSamples, k: string) => round(s.warmupValues[k]?.[0] ?? s.values[k]?.[0] ?? null, 6);
    return {
      ours_ms_per_step: med(o.samples.map((x) => ((o.values.tokens?.[0] ?? 0) * 1000) / x)),
      peer_ms_per_step: med(p.samples.map((x) => ((p.values.tokens?.[0] ?? 0) * 1000) / x)),
      tokens_per_step: o.values.tokens?.[0] ?? null,
      parameters: ours.init.parameters ?? null,
      ours_loss_first: first(o, 'loss'),
      peer_loss_first: first(p, 'loss'),
      ours_mae_loss_first: first(o, 'mae_loss'),
      peer_mae_loss_first: first(p, 'mae_loss'),
      ratio_note: 'ours/peer of tokens/s: above 1 means ours is faster',
    };
  },
};

/** The embed bench's model plus contrastive batches of the given sizes. */
function clWorkDir(seed: number, sizes: number[]): string {
  const dir = embedWorkDir(seed);
  const missing = sizes.filter((b) => !existsSync(path.join(dir, `cl-${b}.safetensors`)));
  if (missing.length > 0) {
    const r = spawnSync(
      process.execPath,
      [path.join(workersDir(), 'cl-prepare.js'), dir, String(seed), missing.join(',')],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (r.status !== 0) throw new Error(`preparing the cl-step bench failed (exit ${r.status})`);
  }
  return dir;
}

const CL_BATCH = 32;

const clStep: BenchSpec = {
  name: 'cl-step',
  description:
    `one MoCa stage-2 step of the \`small\` config: ${CL_BATCH} queries + ${CL_BATCH} positives + 2 hard negatives ` +
    'each, InfoNCE τ 0.03, backward, AdamW; ours plain and with GradCache (chunks of 8) vs the PyTorch reference plain',
  oursWorker: 'cl-step.js',
  peerScript: 'cl_step.py',
  defaults: { rounds: 5, steps: 2, warmup: 1 },
  config: (options) => {
    const dir = clWorkDir(options.seed, [CL_BATCH]);
    return {
      modelDir: path.join(dir, 'model'),
      batchFile: path.join(dir, `cl-${CL_BATCH}.safetensors`),
      lr: 1e-5,
      temperature: 0.03,
      chunkSize: 8,
      gradCache: false,
    };
  },
  cases: () =>
    ['plain', 'gradcache'].map((id): BenchCase => ({
      id,
      metric: `ms_per_step_${id}`,
      unit: 'ms',
      higherIsBetter: false,
      value: (ms: number) => ms,
    })),
  extra(c, ours, peer) {
    const o = ours.cases.get(c.id)!;
    const p = peer.cases.get(c.id)!;
    return {
      ours_mode: c.id,
      peer_mode: 'plain',
      sequences_per_step: o.values.rows?.[0] ?? null,
      ours_loss_first: round(o.warmupValues.loss?.[0] ?? o.values.loss?.[0] ?? null, 5),
      peer_loss_first: round(p.warmupValues.loss?.[0] ?? p.values.loss?.[0] ?? null, 5),
      parameters: ours.init.parameters ?? null,
    };
  },
};

/** decode-bound: decoder layers actually built (the 3B model has 36; times are extrapolated per layer). */
const DECODE_LAYERS = 4;
const DECODE_FULL_LAYERS = 36;
const DECODE_DTYPES = ['float32', 'bfloat16', 'int8'] as const;
const DECODE_LENGTHS = { long: 1024, short: 16 } as const;

const decodeBound: BenchSpec = {
  name: 'decode-bound',
  description:
    `3B-shaped Qwen2.5-VL language model (hidden 2048, FFN 11008, 16/2 heads; ${DECODE_LAYERS} random layers ` +
    `built, times ×${DECODE_FULL_LAYERS}/${DECODE_LAYERS}) over a ${DECODE_LENGTHS.long}-token text and a ` +
    `${DECODE_LENGTHS.short}-token query in float32 / bfloat16 / int8, next to the memory-bandwidth bound ` +
    '(weight bytes ÷ measured read bandwidth); peer = PyTorch eager (bf16 model cast, int8 dynamic quantisation)',
  oursWorker: 'decode-bound.js',
  peerScript: 'decode_bound.py',
  defaults: { rounds: 3, steps: 1, warmup: 1 },
  config: () => ({
    layers: DECODE_LAYERS,
    longTokens: DECODE_LENGTHS.long,
    shortTokens: DECODE_LENGTHS.short,
    dtypes: [...DECODE_DTYPES],
    bandwidthMiB: 512,
  }),
  cases: () =>
    DECODE_DTYPES.flatMap((dtype) =>
      (['long', 'short'] as const).map((len): BenchCase => ({
        id: `${dtype}-${len}`,
        metric: len === 'long' ? `ms_per_1000_tokens_${dtype}` : `ms_per_query_${dtype}`,
        unit: 'ms',
        higherIsBetter: false,
        // Extrapolated to the full depth; the long text per 1000 tokens.
        value: (ms: number, v: Record<string, number>) =>
          (ms * (DECODE_FULL_LAYERS / DECODE_LAYERS) * (len === 'long' ? 1000 / (v.tokens ?? 1) : 1)) as number,
      })),
    ),
  extra(c, ours, peer) {
    const [dtype, len] = (c.id ?? '').split('-') as [(typeof DECODE_DTYPES)[number], 'long' | 'short'];
    const tokens = DECODE_LENGTHS[len];
    const readGBps = ours.init.read_gbps as number;
    const bytesPerLayer = (ours.init.bytes_per_layer as Record<string, number>)[dtype]!;
    const weightBytes = bytesPerLayer * DECODE_FULL_LAYERS;
    // One pass reads every weight once; the long text's bound is spread over its tokens like the metric.
    const boundMs = (weightBytes / (readGBps * 1e9)) * 1000 * (len === 'long' ? 1000 / tokens : 1);
    const o = median(ours.cases.get(c.id)!.samples);
    const flopPerToken = 2 * (ours.init.parameters_per_layer as number) * DECODE_FULL_LAYERS;
    const attnFlop = 4 * tokens * 2048 * DECODE_FULL_LAYERS; // q·kᵀ and p·v per token
    const perTokens = len === 'long' ? 1000 : tokens;
    return {
      dtype,
      text_tokens: tokens,
      layers_built: DECODE_LAYERS,
      layers_extrapolated_to: DECODE_FULL_LAYERS,
      weight_bytes_full_model: weightBytes,
      read_gbps: round(readGBps),
      copy_gbps: round(ours.init.copy_gbps as number),
      peer_read_gbps: round(peer.init.read_gbps as number),
      bandwidth_bound_ms: round(boundMs),
      ours_over_bound: round(o / boundMs),
      ours_gflops: round(((flopPerToken + attnFlop) * perTokens) / (o * 1e6)),
      ours_checksum: round(ours.cases.get(c.id)!.values.checksum?.at(-1) ?? null, 6),
      peer_checksum: round(peer.cases.get(c.id)!.values.checksum?.at(-1) ?? null, 6),
      ours_kernels: `${String(ours.init.fused_kernels)}; ${String(ours.init.packed_kernels)}`,
      peer_int8: dtype === 'int8' ? `torch.ao dynamic quantisation (${String(peer.init.int8_engine)})` : undefined,
      note:
        len === 'long'
          ? 'a long text is compute-bound: every weight is read once per pass and used for all its tokens'
          : 'a short query reads every weight for a few tokens: the bandwidth-bound case',
    };
  },
};

const BENCHES: BenchSpec[] = [trainStep, matmul, embed, embedPrecision, cptStep, clStep, decodeBound];

/** Benches with their own runner instead of the ours-vs-PyTorch harness (ours vs ours). */
interface CustomBench {
  name: string;
  description: string;
  defaults: Partial<Pick<BenchOptions, 'rounds' | 'steps' | 'warmup'>>;
  run(options: BenchOptions): Promise<void>;
}

const serve: CustomBench = {
  name: 'serve',
  description: SERVE_BENCH_DESCRIPTION,
  defaults: { rounds: 3, warmup: 1 },
  run: runServeBench,
};

const CUSTOM_BENCHES: CustomBench[] = [serve];

function usage(): string {
  const lines = [...BENCHES, ...CUSTOM_BENCHES].map((b) => `  ${b.name.padEnd(12)} ${b.description}`);
  lines.push(`  ${'ddp'.padEnd(12)} ${DDP_DESCRIPTION}`);
  return (
    'usage: npm run bench -- <name|all> [--threads N] [--rounds N] [--steps N] [--warmup N] [--seed N] ' +
    '[--python PATH] [--env KEY=VALUE ...]\n\navailable benches:\n' +
    lines.join('\n') +
    '\n  all          every bench above, in order\n'
  );
}

interface Parsed {
  names: string[];
  flags: Partial<BenchOptions>;
}

function parseArgs(argv: readonly string[]): Parsed {
  const names: string[] = [];
  const flags: Partial<BenchOptions> = {};
  const intFlags = new Set(['threads', 'rounds', 'steps', 'warmup', 'seed']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      names.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = arg.slice(2, eq < 0 ? undefined : eq);
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (key === 'help') throw new UsageError('');
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    if (key === 'python') {
      flags.python = value;
    } else if (key === 'env') {
      const at = value.indexOf('=');
      if (at <= 0) throw new UsageError(`--env needs KEY=VALUE, got ${value}`);
      flags.env = { ...flags.env, [value.slice(0, at)]: value.slice(at + 1) };
    } else if (intFlags.has(key)) {
      const n = Number(value);
      const min = key === 'warmup' || key === 'seed' ? 0 : 1;
      if (!Number.isInteger(n) || n < min) throw new UsageError(`--${key} must be an integer ≥ ${min}, got ${value}`);
      (flags as Record<string, number>)[key] = n;
    } else {
      throw new UsageError(`unknown option --${key}`);
    }
  }
  return { names, flags };
}

class UsageError extends Error {}

async function main(): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      process.stderr.write(usage());
      return 2;
    }
    throw err;
  }
  const known = new Map<string, BenchSpec | CustomBench>([...BENCHES, ...CUSTOM_BENCHES].map((b) => [b.name, b]));
  const unknown = parsed.names.filter((n) => n !== 'all' && n !== 'ddp' && !known.has(n));
  if (parsed.names.length === 0 || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown bench: ${unknown.join(', ')}\n`);
    process.stderr.write(usage());
    return 2;
  }
  const all = parsed.names.includes('all');
  const selected = all
    ? [...BENCHES, ...CUSTOM_BENCHES]
    : parsed.names.filter((n) => n !== 'ddp').map((n) => known.get(n)!);
  for (const spec of selected) {
    const options: BenchOptions = {
      threads: 2,
      rounds: 5,
      steps: 3,
      warmup: 2,
      seed: 1234,
      python: process.env.PYTHON ?? '/usr/bin/python3',
      env: {},
      ...spec.defaults,
      ...parsed.flags,
    };
    if ('run' in spec) await spec.run(options);
    else await runBench(spec, options);
  }
  if (all || parsed.names.includes('ddp')) {
    // One libtorch thread per process unless --threads says otherwise.
    await runDdpBench({
      threads: 1,
      rounds: 5,
      steps: 3,
      warmup: 2,
      seed: 1234,
      python: process.env.PYTHON ?? '/usr/bin/python3',
      env: {},
      ...parsed.flags,
    });
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // The parent loads libtorch to choose OPENBLAS_CORETYPE; exit explicitly rather than wait on its threads.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
