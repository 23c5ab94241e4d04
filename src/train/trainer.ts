// The training loop shared by both stages (continual pre-training and contrastive fine-tuning): gradient
// accumulation, clipping, AdamW, learning-rate schedule, metrics, atomic checkpoints, exact resume, graceful stop
// on signals, export of the final model and an HTML loss-curve report. Stage-specific code plugs in as a TrainTask.
//
// Semantics
// - Step: `gradAccumulation` micro-batches, each loss divided by gradAccumulation and back-propagated; then the
//   global gradient norm (reported pre-clip as grad_norm, clipped to maxGradNorm), AdamW, scheduler, zeroGrad.
//   When the data ends inside a step, the m < gradAccumulation micro-batches already accumulated are still applied:
//   their gradients are multiplied by gradAccumulation/m, i.e. the update uses the mean over the m micro-batches
//   (a smaller effective batch, not a smaller gradient). The run then ends with status 'data_exhausted'.
// - Learning rate: LambdaLR over base lr `lr`; warmup = ceil(warmupRatio · steps of the schedule) from 0, then
//   linear decay to 0 at totalSteps, a half cosine to 0, or constant. As in transformers, step 1 uses the
//   multiplier at 0 (lr 0 with warmup). metrics.jsonl records the lr each update used.
// - Non-finite loss (any micro-batch) or gradient norm: the update is skipped (no optimizer step; the step still
//   counts, its data is consumed and the scheduler advances), recorded with `skipped: true`, warned about on stderr.
//   More than maxBadSteps (default 10) in a row: a checkpoint is saved, then a TrainerError is thrown.
// - Files under outputDir: metrics.jsonl (one JSON object per optimizer step), report.html (self-contained SVG
//   charts; rewritten at every checkpoint and at the end), checkpoints/step-<N>/ + checkpoints/latest (see
//   checkpoint.ts; written every saveEvery steps, at the end and on a stop; the newest keepCheckpoints are kept),
//   final/ (task.exportModel, unless interrupted).
// - Resume (resume: true → latest checkpoint in outputDir; a path → that checkpoint): parameters are copied in by
//   name, the optimizer state, libtorch's CPU generator, the task's data state, the step and counters are
//   restored, and metrics.jsonl lines after the checkpoint's step are dropped. With the same config, data and
//   thread count the continuation is bit-identical to an uninterrupted run (float32 on CPU; the CUDA generators
//   are not saved, so GPU-side random ops are not reproduced across a resume). The trainer owns no JS-side RNG:
//   a task keeps its own (shuffling, masking in JS) in its data state.
// - Schedule on resume: if schedule, lr, warmupRatio and totalSteps equal the checkpoint's, the saved schedule
//   simply continues. If any of them changed (e.g. a longer run to continue pre-training on new data), a new
//   schedule segment starts at the resume step s0: warmup ceil(warmupRatio · (totalSteps − s0)) steps from 0,
//   then decay to 0 at totalSteps — the lr at global step s is lr · f(s − s0) over a run of totalSteps − s0 steps.
//   The AdamW moments are kept; weightDecay, betas and eps come from the new config. resumeData: false starts the
//   task's data from its beginning (new data set) instead of restoring the position.
// - Signals: SIGINT/SIGTERM finish the current optimizer step, save a checkpoint, skip the export and return
//   status 'interrupted' (the caller decides the exit code); a second signal terminates the process at once
//   (signals.ts). requestStop() does the same programmatically.
// - A fresh run refuses an outputDir that already holds checkpoints or metrics unless overwrite is set (then the
//   earlier checkpoints, metrics.jsonl and report.html are deleted); resume: true with no checkpoint starts fresh.
//
// Data parallelism (when a process group of more than one rank is in force: options.processGroup, by default the
// initialised default group; see data-parallel.ts and docs/training.md):
// - Every rank runs this loop on its own share of the data (the task shards: each rank must call nextBatch() the
//   same number of times per step, and dataState() describes that rank's position). Rank 0 decides where to start
//   (fresh or which checkpoint) and tells the others; all ranks load the same checkpoint; the ranks check that
//   they agree on the configuration and parameter layout, then take rank 0's parameters (broadcast).
// - Gradients: the step's last backward is "armed": autograd hooks start bucketed all-reduces (SUM) while backward
//   continues (not for tasks with lossAndBackward, e.g. GradCache, whose gradients are reduced after backward).
//   After the micro-batches, the ranks exchange their counts, losses, metrics and flags; the summed gradient is
//   scaled by k/m (k: gradAccumulation): with m the micro-batches of all ranks, that is the mean over every
//   micro-batch of the step, exactly as one process doing all m micro-batches. Tasks with gradientReduction 'sum'
//   (each rank's loss is the loss of the global batch, e.g. InfoNCE with cross-rank negatives, and its backward
//   a share of that gradient) count global batches instead: m is the batches every rank took a share of, and the
//   summed shares are each global batch's full gradient. metrics.jsonl's micro_batches is this m.
// - Decisions are collective: a non-finite loss on any rank skips the step everywhere; the data has ended when it
//   ended on any rank; a stop (signal, requestStop) on any rank stops every rank after the same step.
// - Rank 0 alone writes metrics.jsonl (global values: loss and metrics over all ranks' micro-batches, summed
//   metrics such as tokens summed), progress lines, report.html, checkpoints and the export. A checkpoint also
//   holds every rank's generator state and data state, so a resume with the same number of ranks continues each
//   rank exactly; with another number, every rank starts from rank 0's (a warning says so).
// - Fresh runs seed rank r's generator with seed + r.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import {
  AdamW,
  clipGradNorm,
  constantWithWarmup,
  fromBytes,
  getNumThreads,
  getRngState,
  LambdaLR,
  linearWarmupCosineDecay,
  linearWarmupLinearDecay,
  loadOptimizerState,
  type LrLambda,
  manualSeed,
  noGrad,
  type Parameter,
  saveOptimizerState,
  saveSafetensors,
  scope,
  setRngState,
  stack,
  Tensor,
  distributed,
} from '../torch/index.js';
import {
  CHECKPOINTS_DIR,
  type CheckpointFault,
  type CheckpointInfo,
  latestCheckpoint,
  listCheckpoints,
  loadParameters,
  OPTIMIZER_FILE,
  PARAMS_FILE,
  pruneCheckpoints,
  readTrainerState,
  removeStaleTemporaries,
  resolveCheckpoint,
  type ScheduleState,
  STATE_FILE,
  STATE_FORMAT,
  type TrainerState,
  writeCheckpointDir,
  writeJsonAtomic,
} from './checkpoint.js';
import {
  emptySummary,
  finiteOrNull,
  formatValue,
  MetricsLog,
  type MetricsSummary,
  MicroBatchAverager,
  progressLine,
  readMetrics,
  type StepRecord,
  truncateMetrics,
  updateSummary,
  writeReport,
} from './metrics.js';
import { DataParallel, type DataParallelOptions, type RankStep } from './data-parallel.js';
import { GracefulStop, type StopSignal, yieldToEventLoop } from './signals.js';

/** The stage-specific part of training. `B` is whatever a micro-batch is (tensors, token ids, image pixels…). */
export interface TrainTask<B> {
  /** Trainable parameters with their checkpoint names: everything the optimizer updates and checkpoints save.
   * The same names in the same order on every call (the optimizer state refers to parameters by position). */
  namedParameters(): [string, Parameter][];
  /** Next micro-batch, or null at the end of the data. */
  nextBatch(): Promise<B | null>;
  /**
   * Forward pass for one micro-batch, run by the trainer inside a `scope()` with gradients enabled: the scalar
   * loss to back-propagate (reduced as the task wants, e.g. a mean; the trainer divides it by the accumulation
   * count) and scalar metrics to log (e.g. mlm_loss, mae_loss, mlm_accuracy, tokens). Metric names must not be
   * one of RESERVED_METRICS. Must be synchronous (scopes are).
   */
  loss(batch: B): { loss: Tensor; metrics: Record<string, number> };
  /** JSON-serialisable data position (including any JS-side RNG the data pipeline owns) … */
  dataState(): unknown;
  /** … and its restore: after it (awaited when it returns a promise), nextBatch() continues exactly where the saved
   * run was, and dataState() returns the restored position. */
  restoreDataState(state: unknown): Promise<void> | void;
  /** Writes the deliverable model (e.g. an HF-layout embedding model) into `dir` (created by the trainer). */
  exportModel(dir: string): Promise<void> | void;
  /** Metrics that are counts, summed over the micro-batches of a step instead of averaged (default ['tokens']).
   * `tokens` also gives the throughput `tokens_per_s`. */
  readonly summedMetrics?: readonly string[];
  /**
   * Optional: a task that back-propagates by itself (e.g. GradCache, which re-runs the forward chunk by chunk)
   * computes the loss, accumulates `gradScale ·` ∂loss/∂parameters into the gradients, and returns the loss value
   * and metrics. When present, the trainer calls it instead of `loss()` + backward.
   */
  lossAndBackward?(batch: B, gradScale: number): { value: number; metrics: Record<string, number> };
  /** Frees a micro-batch after its forward/backward. Default: every tensor found in the batch (through arrays,
   * plain objects and Maps) that was not `keep()`-ed is disposed. */
  disposeBatch?(batch: B): void;
  /**
   * Data parallelism: how the ranks' gradients combine. 'mean' (default): each rank's loss is a mean over its own
   * micro-batch, the step's gradient is the mean over all ranks' micro-batches. 'sum': each rank's loss is the loss
   * of the whole global batch (e.g. a contrastive loss over embeddings gathered from all ranks) and its backward
   * yields only its local share of that gradient, so the shares are added up.
   */
  readonly gradientReduction?: 'mean' | 'sum';
}

export type LrScheduleKind = 'linear' | 'cosine' | 'constant';

export interface TrainerConfig {
  /** Run directory: metrics.jsonl, report.html, checkpoints/, final/. */
  outputDir: string;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** Warmup steps = ceil(warmupRatio · steps of the schedule). */
  warmupRatio: number;
  /** After a linear warmup from 0: linear decay to 0 at totalSteps, half-cosine to 0, or constant. */
  schedule: LrScheduleKind;
  /** Optimizer steps of the whole run (the global step at which training ends). */
  totalSteps: number;
  /** Micro-batches per optimizer step. */
  gradAccumulation: number;
  /** Clip the global gradient L2 norm to this (null: no clipping; the norm is still reported). */
  maxGradNorm: number | null;
  /** Save a checkpoint every this many steps (0: only at the end and on a stop). */
  saveEvery: number;
  /** Checkpoints kept (the newest; 0 keeps all). */
  keepCheckpoints: number;
  /** Progress line every this many steps. */
  logEvery: number;
  /** Seeds libtorch's generator at the start of a fresh run (a resume restores the generator instead). Seed the
   * model's initialisation yourself before building it. */
  seed: number;
  /** true: continue from the latest checkpoint in outputDir if there is one (else start fresh); a string: continue
   * from that checkpoint (a step-<N> directory, a checkpoints directory or a run directory). */
  resume: boolean | string;
  /** Consecutive non-finite steps tolerated before training stops with an error (default 10). */
  maxBadSteps?: number;
  /** On resume, restore the data position (default true). false: the task's data starts from its beginning, e.g.
   * continual training on a new data set. */
  resumeData?: boolean;
  /** Allow a fresh run (resume false) to delete the checkpoints, metrics and report already in outputDir. */
  overwrite?: boolean;
  /** Where the final model is exported (default `<outputDir>/final`). */
  exportDir?: string;
}

/** MoCa's stage-1 hyper-parameters (spec §2.7); outputDir, totalSteps, seed and resume remain the caller's. */
export const CPT_DEFAULTS = {
  lr: 2e-6,
  weightDecay: 0,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  warmupRatio: 0.1,
  schedule: 'linear' as LrScheduleKind,
  gradAccumulation: 4,
  maxGradNorm: 5.0,
  saveEvery: 200,
} satisfies Partial<TrainerConfig>;

/** MoCa's stage-2 hyper-parameters (spec §3.5). */
export const CL_DEFAULTS = {
  lr: 2e-5,
  weightDecay: 0,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  warmupRatio: 0.05,
  schedule: 'linear' as LrScheduleKind,
  gradAccumulation: 1,
  maxGradNorm: 5.0,
} satisfies Partial<TrainerConfig>;

export interface TrainerOptions<B> {
  /** Where progress lines go (default process.stderr). stdout is never written. */
  log?: { write(text: string): unknown };
  /** Prefix of progress lines (default 'train'). */
  label?: string;
  /** Catch SIGINT/SIGTERM while training (default true). */
  handleSignals?: boolean;
  /** Called after each optimizer step (after its metrics line is written, before a periodic checkpoint). */
  onStep?: (record: StepRecord, trainer: Trainer<B>) => void | Promise<void>;
  /** Title of report.html. */
  reportTitle?: string;
  /** Tests: called before each stage of every checkpoint write (throw to simulate a crash there). */
  checkpointFault?: CheckpointFault;
  /** Data parallelism over this group (default: the default process group when it has more than one rank; null:
   * none). Every rank of the group runs the trainer with the same config. */
  processGroup?: distributed.ProcessGroup | null;
  /** Gradient bucketing and overlap (data parallelism only). */
  dataParallel?: DataParallelOptions;
}

export type TrainStatus = 'completed' | 'data_exhausted' | 'interrupted';

export interface TrainResult {
  /** completed: totalSteps reached; data_exhausted: the data ended first; interrupted: a signal or requestStop(). */
  status: TrainStatus;
  /** Optimizer steps done in total, and the step this session started at. */
  step: number;
  startStep: number;
  /** The signal that interrupted training, if one did. */
  signal: StopSignal | null;
  /** The newest checkpoint directory (null if none was saved or loaded). */
  checkpoint: string | null;
  /** Where the model was exported (null when interrupted, and on data-parallel ranks other than 0). */
  exportDir: string | null;
  report: string;
  metricsFile: string;
  /** Steps whose update was skipped (non-finite loss or gradient), over the whole run. */
  skippedSteps: number;
  /** Mean loss of the last step that had a finite loss. */
  lastLoss: number | null;
}

export class TrainerError extends Error {}

const METRICS_FILE = 'metrics.jsonl';
const REPORT_FILE = 'report.html';

/** Schedule values of `schedule` at a global step (the LambdaLR multiplier of the base lr). */
export function scheduleLambda(s: ScheduleState): LrLambda {
  const span = s.total_steps - s.start_step;
  const inner =
    s.kind === 'linear'
      ? linearWarmupLinearDecay(s.warmup_steps, span)
      : s.kind === 'cosine'
        ? linearWarmupCosineDecay(s.warmup_steps, span)
        : constantWithWarmup(s.warmup_steps);
  return (step) => inner(step - s.start_step);
}

/** The schedule of `config` as a segment beginning at `startStep`. */
export function scheduleSegment(config: TrainerConfig, startStep: number): ScheduleState {
  const span = Math.max(0, config.totalSteps - startStep);
  return {
    kind: config.schedule,
    base_lr: config.lr,
    warmup_ratio: config.warmupRatio,
    warmup_steps: Math.ceil(config.warmupRatio * span),
    start_step: startStep,
    total_steps: config.totalSteps,
  };
}

function sameSchedule(s: ScheduleState, c: TrainerConfig): boolean {
  return (
    s.kind === c.schedule && s.base_lr === c.lr && s.warmup_ratio === c.warmupRatio && s.total_steps === c.totalSteps
  );
}

function validateConfig(c: TrainerConfig): void {
  const bad = (msg: string): never => {
    throw new TrainerError(`trainer config: ${msg}`);
  };
  const posInt = (name: keyof TrainerConfig, min: number): void => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(`${name} must be an integer ≥ ${min}, got ${v}`);
  };
  if (typeof c.outputDir !== 'string' || c.outputDir === '') bad('outputDir is required');
  if (!(Number.isFinite(c.lr) && c.lr >= 0)) bad(`lr must be a finite number ≥ 0, got ${c.lr}`);
  if (!(c.warmupRatio >= 0 && c.warmupRatio <= 1)) bad(`warmupRatio must lie in [0, 1], got ${c.warmupRatio}`);
  if (!['linear', 'cosine', 'constant'].includes(c.schedule)) {
    bad(`schedule must be 'linear', 'cosine' or 'constant', got ${JSON.stringify(c.schedule)}`);
  }
  posInt('totalSteps', 1);
  posInt('gradAccumulation', 1);
  posInt('saveEvery', 0);
  posInt('keepCheckpoints', 0);
  posInt('logEvery', 1);
  if (!Number.isInteger(c.seed)) bad(`seed must be an integer, got ${c.seed}`);
  if (c.maxGradNorm !== null && !(c.maxGradNorm > 0)) bad(`maxGradNorm must be > 0 or null, got ${c.maxGradNorm}`);
  if (c.maxBadSteps !== undefined && !(Number.isInteger(c.maxBadSteps) && c.maxBadSteps >= 0)) {
    bad(`maxBadSteps must be an integer ≥ 0, got ${c.maxBadSteps}`);
  }
  if (typeof c.resume !== 'boolean' && typeof c.resume !== 'string') bad('resume must be a boolean or a path');
}

/** Disposes every non-kept tensor reachable through arrays, plain objects and Maps. */
function disposeTensorsIn(value: unknown, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Tensor) {
    if (!value.isKept) value.dispose();
  } else if (Array.isArray(value)) {
    for (const v of value) disposeTensorsIn(v, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) disposeTensorsIn(v, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) disposeTensorsIn(v, seen);
  }
}

function gradNorm(params: readonly Parameter[]): number {
  return noGrad(() =>
    scope(() => {
      const grads = params.map((p) => p.grad).filter((g) => g !== null);
      if (grads.length === 0) return 0;
      return stack(grads.map((g) => g.norm(2)))
        .norm(2)
        .item();
    }),
  );
}

function scaleGrads(params: readonly Parameter[], factor: number): void {
  noGrad(() => {
    for (const p of params) {
      const g = p.grad;
      if (g) {
        g.mul_(factor);
        g.dispose();
      }
    }
  });
}

/**
 * Runs a TrainTask (see the file header for the semantics). Per optimizer step: `gradAccumulation` micro-batches,
 * each `scope(() => task.loss(b).loss.div(gradAccumulation).backward())`; then gradient clipping (the pre-clip norm
 * is reported), AdamW, the scheduler, zeroGrad.
 */
export class Trainer<B> {
  readonly config: Readonly<TrainerConfig>;
  /** Set once run() has built them. The optimizer's state is freed when the loop ends (it lives on in the
   * checkpoint). */
  optimizer: AdamW | null = null;
  scheduler: LambdaLR | null = null;
  /** Optimizer steps completed. */
  step = 0;

  private readonly log: { write(text: string): unknown };
  private readonly label: string;
  private stopRequested = false;
  private running = false;
  /** False on data-parallel ranks other than 0: they train silently. */
  private speaks = true;

  constructor(
    readonly task: TrainTask<B>,
    config: TrainerConfig,
    private readonly options: TrainerOptions<B> = {},
  ) {
    validateConfig(config);
    this.config = { ...config, betas: [...config.betas] as [number, number] };
    this.log = options.log ?? process.stderr;
    this.label = options.label ?? 'train';
  }

  /** Asks the loop to stop after the current optimizer step, save a checkpoint and return 'interrupted'. */
  requestStop(): void {
    this.stopRequested = true;
  }

  private say(line: string): void {
    if (this.speaks) this.log.write(`${this.label}: ${line}\n`);
  }

  async run(): Promise<TrainResult> {
    if (this.running) throw new TrainerError('Trainer.run() is already running');
    this.running = true;
    try {
      return await this.runInner();
    } finally {
      this.running = false;
    }
  }

  private async runInner(): Promise<TrainResult> {
    const c = this.config;
    const task = this.task;
    const runDir = path.resolve(c.outputDir);
    mkdirSync(runDir, { recursive: true });
    const ckRoot = path.join(runDir, CHECKPOINTS_DIR);
    const metricsFile = path.join(runDir, METRICS_FILE);
    const reportFile = path.join(runDir, REPORT_FILE);
    const maxBadSteps = c.maxBadSteps ?? 10;
    const k = c.gradAccumulation;
    const pg = this.options.processGroup === undefined ? distributed.dataParallelGroup() : this.options.processGroup;
    const group = pg !== null && pg.size > 1 ? pg : null;
    const rank = group?.rank ?? 0;
    const worldSize = group?.size ?? 1;
    const isMain = rank === 0;
    this.speaks = isMain;
    if (isMain) removeStaleTemporaries(ckRoot);

    // ---------------------------------------------------------------------------------------- where to start
    // Rank 0 decides (it alone may delete an earlier run) and tells the others.
    const hasMetrics = existsSync(metricsFile) && statSync(metricsFile).size > 0;
    const decide = (): { from: CheckpointInfo | null; error?: string } => {
      try {
        return { from: this.startingPoint(ckRoot, runDir, metricsFile, reportFile, hasMetrics) };
      } catch (e) {
        if (group === null) throw e;
        return { from: null, error: (e as Error).message };
      }
    };
    let decision = isMain ? decide() : { from: null };
    if (group !== null) decision = await distributed.broadcastObject(decision, 0, { group });
    if (decision.error !== undefined) {
      throw new TrainerError(isMain ? decision.error : `rank 0 could not start: ${decision.error}`);
    }
    const from = decision.from;

    // ---------------------------------------------------------------------------------------- parameters
    const named = task.namedParameters();
    if (named.length === 0) throw new TrainerError('task.namedParameters() returned no parameters');
    const names = named.map(([n]) => n);
    const dupName = names.find((n, i) => names.indexOf(n) !== i);
    if (dupName !== undefined) throw new TrainerError(`task.namedParameters(): name '${dupName}' appears twice`);
    const params = named.map(([, p]) => p);
    if (new Set(params).size !== params.length) {
      throw new TrainerError(
        'task.namedParameters(): the same parameter appears under two names (list tied weights once)',
      );
    }
    const optimizer = new AdamW(params, { lr: c.lr, betas: c.betas, eps: c.eps, weightDecay: c.weightDecay });
    this.optimizer = optimizer;

    let step = 0;
    let microBatches = 0;
    let elapsedBase = 0;
    let tokensTotal = 0;
    const bad = { total: 0, consecutive: 0 };
    let summary: MetricsSummary = emptySummary();
    let schedule: ScheduleState;
    const saved: { last: CheckpointInfo | null } = { last: null };
    let dataEnded = false;
    let sessionStart = performance.now();
    const elapsed = (): number => elapsedBase + (performance.now() - sessionStart) / 1000;

    if (from !== null) {
      const st = readTrainerState(from.dir);
      if (st.param_names.length === names.length && st.param_names.some((n, i) => n !== names[i])) {
        const sameSet = new Set(st.param_names);
        if (names.every((n) => sameSet.has(n))) {
          throw new TrainerError(
            `${from.dir}: the task lists its parameters in a different order than when the checkpoint was saved ` +
              `(the optimizer state is by position); keep namedParameters() in a stable order`,
          );
        }
      }
      loadParameters(path.join(from.dir, PARAMS_FILE), named);
      loadOptimizerState(path.join(from.dir, OPTIMIZER_FILE), optimizer);
      for (const g of optimizer.paramGroups) {
        // The config in force wins for the hyper-parameters; the moments and step counts are the checkpoint's.
        g.options.betas = [...c.betas];
        g.options.eps = c.eps;
        g.options.weightDecay = c.weightDecay;
      }
      // A data-parallel checkpoint holds every rank's data position and generator: each rank takes its own when
      // the number of ranks is unchanged, else rank 0's.
      const perRank = st.distributed?.world_size === worldSize ? st.distributed : undefined;
      if (st.distributed !== undefined && perRank === undefined) {
        this.say(
          `note: the checkpoint was written by ${st.distributed.world_size} data-parallel ranks, now ${worldSize}: ` +
            "every rank continues from rank 0's data position and generator (not an exact continuation)",
        );
      }
      if (c.resumeData ?? true)
        await task.restoreDataState(perRank ? perRank.data_state_per_rank[rank] : st.data_state);
      // The generator last, so that nothing run while restoring (e.g. by restoreDataState) can advance it.
      const rngBytes = Buffer.from(perRank ? perRank.rng_per_rank[rank]! : st.rng.torch_cpu, 'base64');
      const rng = fromBytes(rngBytes, [rngBytes.length], 'uint8');
      try {
        setRngState(rng);
      } finally {
        rng.dispose();
      }
      step = st.step;
      microBatches = st.micro_batches;
      elapsedBase = st.elapsed_s;
      tokensTotal = st.tokens;
      bad.total = st.bad_steps.total;
      bad.consecutive = st.bad_steps.consecutive;
      summary = st.metrics_summary ?? emptySummary();
      if (path.dirname(from.dir) === ckRoot) saved.last = from;
      schedule = sameSchedule(st.schedule, c) ? st.schedule : scheduleSegment(c, step);
      this.say(`resumed from ${from.dir} at step ${step}/${c.totalSteps}`);
      this.reportConfigChanges(st, schedule);
      if (st.torch_threads !== getNumThreads()) {
        this.say(
          `note: the checkpoint was written with ${st.torch_threads} libtorch threads, now ${getNumThreads()}: ` +
            'results may differ from an uninterrupted run in the last bits',
        );
      }
      if (c.resumeData === false) this.say('data position not restored (resumeData: false): data starts over');
    } else {
      manualSeed(c.seed + rank);
      schedule = scheduleSegment(c, 0);
    }

    for (const g of optimizer.paramGroups) g.options.lr = schedule.base_lr;
    const scheduler = new LambdaLR(optimizer, scheduleLambda(schedule));
    scheduler.loadStateDict({ lastStep: step, baseLrs: optimizer.paramGroups.map(() => schedule.base_lr) });
    this.scheduler = scheduler;
    this.step = step;

    const startStep = step;
    const nParams = params.reduce((n, p) => n + p.numel(), 0);

    // ---------------------------------------------------------------------------------------- data parallelism
    let dp: DataParallel | null = null;
    if (group !== null) {
      dp = new DataParallel(group, params, this.options.dataParallel);
      try {
        await dp.checkSame({
          parameters: names.map((n, i) => `${n}:${params[i]!.shape.join('x')}:${params[i]!.dtype}`).join(','),
          step,
          resumed_from: from?.step ?? null,
          totalSteps: c.totalSteps,
          gradAccumulation: k,
          lr: c.lr,
          schedule: c.schedule,
          maxGradNorm: c.maxGradNorm,
          gradientReduction: task.gradientReduction ?? 'mean',
          customBackward: task.lossAndBackward !== undefined,
        });
        await dp.broadcastParameters(params);
      } catch (e) {
        dp.dispose();
        throw e;
      }
    }
    const reduction = task.gradientReduction ?? 'mean';

    if (isMain && (from !== null || hasMetrics)) truncateMetrics(metricsFile, step);
    const metrics = isMain ? new MetricsLog(metricsFile) : null;
    if (from === null) {
      this.say(
        `fresh run in ${runDir}: ${nParams.toLocaleString('en-US')} trainable parameters in ${params.length} tensors · ` +
          `${c.totalSteps} steps · grad accumulation ${k} · lr ${formatValue(c.lr)} ${c.schedule}, warmup ` +
          `${schedule.warmup_steps} · clip ${c.maxGradNorm ?? 'none'}`,
      );
    }
    if (dp !== null) {
      this.say(
        `data parallel: ${worldSize} ranks (${group!.backend}); ${k} micro-batch(es) per rank and step → ` +
          `${k * worldSize} per step; gradients ${reduction === 'sum' ? 'summed (global-batch loss)' : 'averaged'} ` +
          `in buckets${dp.overlap && !task.lossAndBackward ? ', overlapped with backward' : ' after backward'}`,
      );
    }

    const summedMetrics = new Set(task.summedMetrics ?? ['tokens']);
    const stop = new GracefulStop({ log: (m) => this.say(m) });
    if (this.options.handleSignals ?? true) stop.install();

    let lastSavedStep = from !== null && path.dirname(from.dir) === ckRoot ? from.step : -1;
    // Collective under data parallelism (every rank's generator and data state travel to rank 0).
    const saveCheckpoint = async (): Promise<void> => {
      metrics?.sync();
      const rngState = getRngState();
      let rngB64: string;
      try {
        rngB64 = rngState.toBytes().toString('base64');
      } finally {
        rngState.dispose();
      }
      let dataState: unknown;
      try {
        dataState = JSON.parse(JSON.stringify(task.dataState() ?? null)) as unknown;
      } catch (e) {
        throw new TrainerError(`task.dataState() is not JSON-serialisable: ${(e as Error).message}`);
      }
      let perRank: TrainerState['distributed'];
      if (dp !== null) {
        const all = await dp.gather({ rng: rngB64, data: dataState });
        perRank = {
          world_size: worldSize,
          rng_per_rank: all.map((a) => a.rng),
          data_state_per_rank: all.map((a) => a.data),
        };
      }
      lastSavedStep = step;
      if (!isMain) return;
      const state: TrainerState = {
        format: STATE_FORMAT,
        version: 1,
        step,
        micro_batches: microBatches,
        data_ended: dataEnded,
        schedule,
        scheduler: scheduler.stateDict(),
        data_state: dataState,
        rng: { torch_cpu: rngB64 },
        bad_steps: { ...bad },
        elapsed_s: elapsed(),
        tokens: tokensTotal,
        param_names: names,
        config: JSON.parse(JSON.stringify(c)) as Record<string, unknown>,
        metrics_summary: summary,
        torch_threads: getNumThreads(),
        saved_at: new Date().toISOString(),
        ...(perRank ? { distributed: perRank } : {}),
      };
      const fault = this.options.checkpointFault;
      const info = writeCheckpointDir(
        ckRoot,
        step,
        (tmp) => {
          fault?.('params');
          saveSafetensors(path.join(tmp, PARAMS_FILE), new Map(named));
          fault?.('optimizer');
          saveOptimizerState(path.join(tmp, OPTIMIZER_FILE), optimizer);
          fault?.('state');
          writeJsonAtomic(path.join(tmp, STATE_FILE), state);
        },
        fault ? { fault } : {},
      );
      pruneCheckpoints(ckRoot, c.keepCheckpoints, step);
      saved.last = info;
      this.say(`checkpoint saved: ${info.dir}`);
      report('in progress');
    };

    const report = (status: string): void => {
      if (!isMain) return;
      const records = readMetrics(metricsFile);
      writeReport(reportFile, records, {
        title: this.options.reportTitle ?? `Training report — ${path.basename(runDir)}`,
        subtitle: [`${runDir}`, `status: ${status} · step ${step}/${c.totalSteps}`],
        summary: {
          steps: step,
          'last loss': formatValue(summary.last?.loss ?? null),
          'best loss': summary.best_loss
            ? `${formatValue(summary.best_loss.value)} (step ${summary.best_loss.step})`
            : '-',
          'skipped steps': bad.total,
          'micro-batches': microBatches,
          tokens: tokensTotal,
          'elapsed (s)': Math.round(elapsed()),
        },
        config: c,
      });
    };

    // ---------------------------------------------------------------------------------------- the loop
    let status: TrainStatus = 'completed';
    const win = {
      steps: 0,
      lossSum: 0,
      lossN: 0,
      metrics: new Map<string, { s: number; n: number }>(),
      tokens: 0,
      seconds: 0,
      skipped: 0,
    };
    let lastLr = optimizer.paramGroups[0]!.options.lr;
    let lastNorm: number | null = null;
    sessionStart = performance.now();

    // A stop is requested on this rank; under data parallelism every rank stops when any rank asks.
    const stopAgreed = async (): Promise<boolean> => {
      const mine = stop.requested !== null || this.stopRequested;
      return dp !== null ? dp.anyRank(mine) : mine;
    };

    try {
      while (step < c.totalSteps) {
        if (await stopAgreed()) {
          status = 'interrupted';
          break;
        }
        const t0 = performance.now();
        let acc = new MicroBatchAverager(summedMetrics);
        let nonFinite = false;
        for (let i = 0; i < k; i++) {
          const batch = await task.nextBatch();
          if (batch === null) {
            dataEnded = true;
            break;
          }
          // The step's last backward starts the gradient all-reduces from its hooks (data parallelism).
          if (dp !== null && i === k - 1 && !task.lossAndBackward) dp.armForLastBackward();
          try {
            const r = scope(() => {
              if (task.lossAndBackward) {
                // The task back-propagates itself (GradCache: chunk by chunk), scaled by 1/k.
                const own = task.lossAndBackward(batch, 1 / k);
                return { value: own.value, metrics: own.metrics ?? {} };
              }
              const out = task.loss(batch);
              const loss = out?.loss;
              if (!(loss instanceof Tensor))
                throw new TrainerError('task.loss() must return { loss: Tensor, metrics }');
              if (loss.numel() !== 1) {
                throw new TrainerError(`task.loss(): the loss must be a scalar, got shape [${loss.shape.join(', ')}]`);
              }
              const value = loss.item();
              if (Number.isFinite(value) && !nonFinite) {
                if (!loss.requiresGrad) {
                  throw new TrainerError(
                    'task.loss(): the loss does not require grad (computed under noGrad, or from frozen parameters only?)',
                  );
                }
                loss.div(k).backward();
              }
              return { value, metrics: out.metrics ?? {} };
            });
            if (!Number.isFinite(r.value)) nonFinite = true;
            acc.add(r.value, r.metrics);
          } finally {
            if (task.disposeBatch) task.disposeBatch(batch);
            else disposeTensorsIn(batch);
          }
        }
        let m = acc.count;
        if (dp !== null) {
          // Reduce the gradients (the buckets backward did not start) while the ranks exchange their accounts.
          const gradientWork = dp.startGradientReduction();
          const all: RankStep[] = await dp.exchangeStep({ averager: acc.snapshot(), nonFinite, dataEnded });
          await gradientWork.wait();
          acc = MicroBatchAverager.merge(
            summedMetrics,
            all.map((a) => a.averager),
          );
          nonFinite = all.some((a) => a.nonFinite);
          dataEnded = all.some((a) => a.dataEnded);
          if (reduction === 'mean') {
            m = acc.count; // distinct micro-batches of all ranks
          } else {
            // Every rank holds a share of the same global batches.
            const counts = all.map((a) => a.averager.n);
            if (counts.some((n) => n !== counts[0])) {
              throw new TrainerError(
                `data-parallel ranks processed different numbers of global batches in step ${step + 1} ` +
                  `(${counts.join(', ')}): a task with gradientReduction 'sum' must give every rank a share of each batch`,
              );
            }
            m = counts[0]!;
          }
          // Σ_ranks of gradients that were each divided by k, times k/m: the mean over the step's m micro-batches
          // ('mean': the ranks' micro-batches; 'sum': global batches, whose gradient is the sum of the rank shares).
          dp.applyReducedGradients(m === 0 ? 1 : k / m);
        }
        microBatches += m;
        if (m === 0) break; // the data ended at a step boundary

        // A partial accumulation (end of data) was divided by k: rescale so it is the mean over its m micro-batches.
        let norm: number | null = null;
        let skipped = nonFinite;
        if (!skipped) {
          if (dp === null && m < k) scaleGrads(params, k / m);
          norm = c.maxGradNorm !== null ? clipGradNorm(params, c.maxGradNorm) : gradNorm(params);
          if (!Number.isFinite(norm)) skipped = true;
        }
        const lr = optimizer.paramGroups[0]!.options.lr;
        if (!skipped) optimizer.step();
        optimizer.zeroGrad();
        scheduler.step();
        step++;
        this.step = step;

        const stepSeconds = (performance.now() - t0) / 1000;
        const taskMetrics = acc.metrics();
        const lossValue = acc.loss();
        const record: StepRecord = {
          step,
          lr,
          loss: finiteOrNull(lossValue),
          ...Object.fromEntries(Object.entries(taskMetrics).map(([kk, v]) => [kk, finiteOrNull(v)])),
          grad_norm: norm === null ? null : finiteOrNull(norm),
          micro_batches: m,
          elapsed_s: Math.round(elapsed() * 1000) / 1000,
        };
        const stepTokens = taskMetrics.tokens;
        if (stepTokens !== undefined && Number.isFinite(stepTokens)) {
          tokensTotal += stepTokens;
          record.tokens_per_s = stepSeconds > 0 ? stepTokens / stepSeconds : 0;
        }
        if (skipped) {
          record.skipped = true;
          bad.total++;
          bad.consecutive++;
          this.say(
            `warning: step ${step}: ${nonFinite ? `non-finite loss (${formatValue(lossValue)})` : `non-finite gradient norm (${formatValue(norm)})`}` +
              ` — update skipped (${bad.consecutive} in a row, ${bad.total} in total)`,
          );
        } else {
          bad.consecutive = 0;
        }
        metrics?.append(record);
        updateSummary(summary, record);

        // Progress: means over the steps since the last line.
        win.steps++;
        win.seconds += stepSeconds;
        if (skipped) win.skipped++;
        else {
          win.lossSum += lossValue;
          win.lossN++;
          for (const [kk, v] of Object.entries(taskMetrics)) {
            const e = win.metrics.get(kk) ?? { s: 0, n: 0 };
            e.s += v;
            e.n++;
            win.metrics.set(kk, e);
          }
        }
        if (stepTokens !== undefined) win.tokens += stepTokens;
        lastLr = lr;
        if (norm !== null) lastNorm = norm;
        if (isMain && (step % c.logEvery === 0 || step === c.totalSteps || dataEnded)) {
          const hasTokens = stepTokens !== undefined;
          this.log.write(
            progressLine(
              {
                step,
                totalSteps: c.totalSteps,
                loss: win.lossN > 0 ? win.lossSum / win.lossN : null,
                metrics: Object.fromEntries([...win.metrics].map(([kk, e]) => [kk, e.s / e.n])),
                lr: lastLr,
                gradNorm: lastNorm,
                tokensPerSecond: hasTokens && win.seconds > 0 ? win.tokens / win.seconds : null,
                sessionSteps: step - startStep,
                sessionSeconds: (performance.now() - sessionStart) / 1000,
                elapsedSeconds: elapsed(),
                skippedSinceLast: win.skipped,
              },
              this.label,
            ) + '\n',
          );
          Object.assign(win, { steps: 0, lossSum: 0, lossN: 0, tokens: 0, seconds: 0, skipped: 0 });
          win.metrics.clear();
        }

        if (dp !== null && !task.lossAndBackward) await dp.rebuildBucketsOnce();
        await this.options.onStep?.(record, this);

        if (bad.consecutive > maxBadSteps) {
          await saveCheckpoint();
          report('stopped: too many non-finite steps');
          throw new TrainerError(
            `${bad.consecutive} consecutive steps had a non-finite loss or gradient (limit maxBadSteps = ${maxBadSteps}); ` +
              `stopped at step ${step} after saving a checkpoint. Lower the learning rate or inspect the data.`,
          );
        }
        if (c.saveEvery > 0 && step % c.saveEvery === 0) await saveCheckpoint();
        if (dataEnded) break;
        await yieldToEventLoop();
      }

      // A stop requested during the last step still skips the export (a resume then only exports).
      if (status === 'interrupted' || (await stopAgreed())) status = 'interrupted';
      else if (step < c.totalSteps) status = 'data_exhausted';
      if (lastSavedStep !== step) await saveCheckpoint();
    } finally {
      stop.remove();
      metrics?.close();
      if (dp !== null) {
        const st = dp.reducerStats();
        if (st.launched > 0) {
          this.say(
            `data parallel: ${st.launchedDuringBackward} of ${st.launched} gradient bucket all-reduces started ` +
              `during backward (${st.buckets} buckets)`,
          );
        }
        dp.dispose();
      }
      // The AdamW moments (2× the trainable parameters) are in the checkpoint now; free them before the export.
      optimizer.dispose();
    }

    const result: TrainResult = {
      status,
      step,
      startStep,
      signal: stop.requested,
      checkpoint: saved.last?.dir ?? null,
      exportDir: null,
      report: reportFile,
      metricsFile,
      skippedSteps: bad.total,
      lastLoss: lastFiniteLoss(summary),
    };

    if (!isMain) return result; // rank 0 reports and exports

    if (status === 'interrupted') {
      report('interrupted');
      this.say(
        `stopped at step ${step}/${c.totalSteps}${stop.requested ? ` (${stop.requested})` : ''}; checkpoint ` +
          `${result.checkpoint}; resume with the same output directory and resume enabled`,
      );
      return result;
    }
    if (status === 'data_exhausted') this.say(`the data ended at step ${step} of ${c.totalSteps}`);
    const exportDir = path.resolve(c.exportDir ?? path.join(runDir, 'final'));
    mkdirSync(exportDir, { recursive: true });
    await task.exportModel(exportDir);
    result.exportDir = exportDir;
    report(status === 'completed' ? 'completed' : 'data exhausted');
    this.say(`done: step ${step}, model exported to ${exportDir}, report ${reportFile}`);
    return result;
  }

  /** Fresh run (after checking, or with overwrite clearing, outputDir) or the checkpoint to resume from. */
  private startingPoint(
    ckRoot: string,
    runDir: string,
    metricsFile: string,
    reportFile: string,
    hasMetrics: boolean,
  ): CheckpointInfo | null {
    const c = this.config;
    if (c.resume === false) {
      const existing = listCheckpoints(ckRoot);
      if (existing.length > 0 || hasMetrics) {
        const what = existing.length
          ? `checkpoints up to step ${existing[existing.length - 1]!.step}`
          : `${METRICS_FILE} of an earlier run`;
        if (!c.overwrite) {
          throw new TrainerError(
            `${runDir} already holds a training run (${what}); resume it (resume: true) or start over (overwrite: true)`,
          );
        }
        this.say(`overwrite: removing the earlier run's ${what} in ${runDir}`);
        rmSync(ckRoot, { recursive: true, force: true });
        rmSync(metricsFile, { force: true });
        rmSync(reportFile, { force: true });
      }
      return null;
    }
    const from = typeof c.resume === 'string' ? resolveCheckpoint(c.resume) : latestCheckpoint(ckRoot);
    if (from === null) this.say(`resume: no checkpoint in ${ckRoot}, starting a fresh run`);
    return from;
  }

  private reportConfigChanges(st: TrainerState, schedule: ScheduleState): void {
    const before = st.config as Partial<TrainerConfig>;
    const c = this.config;
    const keys: (keyof TrainerConfig)[] = [
      'lr',
      'schedule',
      'warmupRatio',
      'totalSteps',
      'gradAccumulation',
      'maxGradNorm',
      'weightDecay',
      'betas',
      'eps',
    ];
    const changes = keys
      .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(c[key]))
      .map((key) => `${key} ${JSON.stringify(before[key])} → ${JSON.stringify(c[key])}`);
    if (changes.length) this.say(`changed since the checkpoint: ${changes.join(', ')}`);
    if (schedule === st.schedule) {
      this.say(
        `learning-rate schedule continues (${schedule.kind}, steps ${schedule.start_step}→${schedule.total_steps})`,
      );
    } else {
      this.say(
        `new learning-rate schedule segment: ${schedule.kind} from step ${schedule.start_step} to ${schedule.total_steps}, ` +
          `warmup ${schedule.warmup_steps} steps, base lr ${formatValue(schedule.base_lr)}`,
      );
    }
  }
}

function lastFiniteLoss(s: MetricsSummary): number | null {
  return s.recent_losses.length ? s.recent_losses[s.recent_losses.length - 1]! : null;
}

/** `new Trainer(task, config, options).run()`. */
export function train<B>(
  task: TrainTask<B>,
  config: TrainerConfig,
  options: TrainerOptions<B> = {},
): Promise<TrainResult> {
  return new Trainer(task, config, options).run();
}
