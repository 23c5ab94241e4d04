// The `ddp` bench: data-parallel training step time with 1 and 2 processes (1 thread each by default) and the
// scaling efficiency, ours (GradReducer over c10d Gloo) and the PyTorch peer (DistributedDataParallel, Gloo)
// alternating in the same invocation.
//
// Weak scaling: every process trains on its own batch of the same size, so 2 processes do twice the work per step;
// the efficiency is t(1 process) / t(2 processes) (1.0: perfect; the loss comes from gradient communication not
// hidden behind backward, and from the two processes sharing memory bandwidth and caches). Each process group
// (ours ×1, peer ×1, ours ×2, peer ×2) is a set of persistent workers speaking the harness protocol; a step of a
// 2-process group takes as long as its slower rank. Rounds alternate between the groups.
import os from 'node:os';
import path from 'node:path';
import { createServer } from 'node:net';

import {
  type BenchOptions,
  childEnv,
  describeInit,
  median,
  openBlasCoreType,
  OTHER_CPU_WARNING,
  OtherCpuMeter,
  otherCpuBefore,
  packageRoot,
  round,
  Worker,
  workersDir,
} from './harness.js';
import type { TinyTransformerConfig } from './models/tiny-transformer.js';

/** The train-step bench's transformer (L4 d256 h4 ff1024 T128 V1024), batch 8 per process. */
const MODEL: TinyTransformerConfig = {
  vocabSize: 1024,
  dModel: 256,
  nHeads: 4,
  nLayers: 4,
  dFf: 1024,
  seqLen: 128,
  causal: false,
};
const BATCH_PER_PROCESS = 8;

export const DDP_DESCRIPTION =
  `data-parallel step of the train-step transformer (L4 d256, batch ${BATCH_PER_PROCESS} per process): ms per step ` +
  'with 1 and 2 processes (1 thread each unless --threads) and scaling efficiency t1/t2; peer = PyTorch DDP (gloo)';

interface Group {
  label: string;
  side: 'ours' | 'peer';
  world: number;
  workers: Worker[];
  cases: string[];
}

/** Per group and case: the step times (slowest rank) and rank 0's per-step values. */
type Samples = Map<string, { ms: number[]; values: Record<string, number[]> }>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function startGroup(
  side: 'ours' | 'peer',
  world: number,
  cases: string[],
  env: NodeJS.ProcessEnv,
  options: BenchOptions,
  config: Record<string, unknown>,
): Promise<Group> {
  const root = packageRoot();
  const port = await freePort();
  const label = `${side}×${world}`;
  const workers = Array.from({ length: world }, (_, rank) => {
    const rankEnv: NodeJS.ProcessEnv =
      world > 1
        ? {
            ...env,
            RANK: String(rank),
            LOCAL_RANK: String(rank),
            WORLD_SIZE: String(world),
            MASTER_ADDR: '127.0.0.1',
            MASTER_PORT: String(port),
          }
        : env;
    const name = world > 1 ? `${label} rank ${rank}` : label;
    return side === 'ours'
      ? new Worker(name, process.execPath, [path.join(workersDir(), 'ddp-step.js')], rankEnv, root)
      : new Worker(name, options.python, ['-u', path.join(root, 'bench', 'peers', 'ddp_step.py')], rankEnv, root);
  });
  const t0 = performance.now();
  // The ranks of a group rendezvous with each other: initialise them together.
  const inits = await Promise.all(workers.map((w) => w.request({ cmd: 'init', config })));
  log(`  ${label}: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${describeInit(inits[0]!)})`);
  for (const init of inits) {
    if (init.threads !== options.threads) {
      throw new Error(`${label} runs with ${String(init.threads)} threads instead of ${options.threads}`);
    }
  }
  return { label, side, world, workers, cases };
}

async function runSteps(
  g: Group,
  kind: 'warmup' | 'run',
  steps: number,
  caseId: string,
  into?: Samples,
): Promise<void> {
  const replies = await Promise.all(g.workers.map((w) => w.run({ cmd: kind, steps, case: caseId })));
  if (!into) return;
  const s = into.get(`${g.label}/${caseId}`) ?? { ms: [], values: {} };
  for (let i = 0; i < steps; i++) s.ms.push(Math.max(...replies.map((r) => r.times_ms[i]!)));
  for (const [k, xs] of Object.entries(replies[0]!.values)) (s.values[k] ??= []).push(...xs);
  into.set(`${g.label}/${caseId}`, s);
}

export async function runDdpBench(options: BenchOptions): Promise<void> {
  const coreType = await openBlasCoreType();
  const env = childEnv(options.threads, coreType, options.env);
  const config = { model: MODEL, batch: BATCH_PER_PROCESS, lr: 1e-4, threads: options.threads, seed: options.seed };
  const busyBefore = await otherCpuBefore(1000);
  if (busyBefore !== null && busyBefore > OTHER_CPU_WARNING) {
    log(`WARNING: other processes keep ${busyBefore.toFixed(2)} cores busy; the figures will be distorted`);
  }
  const cores = os.availableParallelism();
  if (cores < 2 * options.threads) {
    log(
      `WARNING: 2 processes × ${options.threads} threads on ${cores} cores: the 2-process figures are oversubscribed`,
    );
  }
  log(
    `bench ddp: ${DDP_DESCRIPTION}\n  threads=${options.threads} rounds=${options.rounds} steps=${options.steps} ` +
      `warmup=${options.warmup} OPENBLAS_CORETYPE=${coreType ?? '(unset)'}`,
  );
  const groups: Group[] = [];
  try {
    // Started one group at a time so that their start-ups do not overlap.
    groups.push(await startGroup('ours', 1, ['single'], env, options, config));
    groups.push(await startGroup('peer', 1, ['single'], env, options, config));
    groups.push(await startGroup('ours', 2, ['overlap', 'after-backward'], env, options, config));
    groups.push(await startGroup('peer', 2, ['ddp'], env, options, config));
    for (const g of groups)
      for (const c of g.cases) if (options.warmup > 0) await runSteps(g, 'warmup', options.warmup, c);

    const samples: Samples = new Map();
    const meter = new OtherCpuMeter(groups.flatMap((g) => g.workers.map((w) => w.pid)));
    const med = (key: string): number => median(samples.get(key)?.ms ?? []);
    for (let r = 0; r < options.rounds; r++) {
      for (const g of groups) for (const c of g.cases) await runSteps(g, 'run', options.steps, c, samples);
      log(
        `  round ${r + 1}/${options.rounds}: ms/step ours ×1 ${round(med('ours×1/single'))}, ×2 ` +
          `${round(med('ours×2/overlap'))} (no overlap ${round(med('ours×2/after-backward'))}); peer ×1 ` +
          `${round(med('peer×1/single'))}, ×2 ${round(med('peer×2/ddp'))}`,
      );
    }
    const otherDuring = meter.otherCores();
    if (otherDuring !== null && otherDuring > OTHER_CPU_WARNING) {
      log(`WARNING: other processes kept ${otherDuring.toFixed(2)} cores busy during the rounds; figures distorted`);
    }
    const peak = async (label: string): Promise<number | null> => {
      const g = groups.find((x) => x.label === label)!;
      const all = await Promise.all(g.workers.map((w) => w.peakRssMiB()));
      return all.some((x) => x === null) ? null : Math.max(...(all as number[]));
    };
    const common = {
      threads: options.threads,
      rounds: options.rounds,
      steps: options.steps,
      warmup: options.warmup,
      batch_per_process: BATCH_PER_PROCESS,
      model: `L${MODEL.nLayers} d${MODEL.dModel} h${MODEL.nHeads} ff${MODEL.dFf} T${MODEL.seqLen} V${MODEL.vocabSize}`,
      openblas_coretype: coreType ?? null,
      cores,
      other_cpu_cores_before: round(busyBefore, 2),
      other_cpu_cores_during: round(otherDuring, 2),
    };
    const line = (metric: string, unit: string, higher: boolean, ours: number, peer: number, extra = {}): void => {
      process.stdout.write(
        JSON.stringify({
          bench: 'ddp',
          metric,
          ours: round(ours),
          peer: round(peer),
          ratio: round(ours / peer),
          unit,
          higher_is_better: higher,
          runs: options.rounds * options.steps,
          ...common,
          ...extra,
        }) + '\n',
      );
    };
    const spread = (key: string) => {
      const xs = samples.get(key)?.ms ?? [];
      return [round(Math.min(...xs)), round(Math.max(...xs))];
    };
    const phase = (key: string, name: string): number | null => {
      const xs = samples.get(key)?.values[name];
      return xs && xs.length ? round(median(xs)) : null;
    };
    const o1 = med('ours×1/single');
    const p1 = med('peer×1/single');
    const o2 = med('ours×2/overlap');
    const o2n = med('ours×2/after-backward');
    const p2 = med('peer×2/ddp');
    line('ms_per_step_1proc', 'ms', false, o1, p1, {
      ours_min_max: spread('ours×1/single'),
      peer_min_max: spread('peer×1/single'),
      ours_peak_rss_mib: round(await peak('ours×1')),
      peer_peak_rss_mib: round(await peak('peer×1')),
    });
    line('ms_per_step_2proc', 'ms', false, o2, p2, {
      ours_min_max: spread('ours×2/overlap'),
      peer_min_max: spread('peer×2/ddp'),
      ours_no_overlap_ms: round(o2n),
      ours_forward_ms: phase('ours×2/overlap', 'forward_ms'),
      ours_backward_ms: phase('ours×2/overlap', 'backward_ms'),
      ours_reduce_wait_ms: phase('ours×2/overlap', 'reduce_wait_ms'),
      ours_no_overlap_reduce_wait_ms: phase('ours×2/after-backward', 'reduce_wait_ms'),
      ours_optimizer_ms: phase('ours×2/overlap', 'optimizer_ms'),
      peer_backward_ms: phase('peer×2/ddp', 'backward_ms'),
      ours_peak_rss_mib_per_process: round(await peak('ours×2')),
      peer_peak_rss_mib_per_process: round(await peak('peer×2')),
    });
    line('scaling_efficiency', 't1/t2', true, o1 / o2, p1 / p2, {
      ours_no_overlap: round(o1 / o2n),
      ours_samples_per_s_1proc: round((BATCH_PER_PROCESS * 1000) / o1),
      ours_samples_per_s_2proc: round((2 * BATCH_PER_PROCESS * 1000) / o2),
      peer_samples_per_s_1proc: round((BATCH_PER_PROCESS * 1000) / p1),
      peer_samples_per_s_2proc: round((2 * BATCH_PER_PROCESS * 1000) / p2),
      ratio_note: 'ours/peer of the efficiencies: above 1 means ours scales better',
    });
  } finally {
    await Promise.all(groups.flatMap((g) => g.workers.map((w) => w.close())));
  }
}
