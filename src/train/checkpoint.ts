// Training checkpoints on disk: one directory per saved step, written atomically.
//
//   <outputDir>/checkpoints/
//     step-200/  params.safetensors      trainable parameters by name
//                optimizer.safetensors   AdamW state (saveOptimizerState)
//                trainer_state.json      step, schedule, data position, RNG, config, metric summary
//     step-400/  …
//     latest                            "step-400\n" (written atomically after the directory is complete)
//
// A checkpoint is written into a hidden sibling `.tmp-step-<N>-…`, each file fsynced, the directory fsynced,
// then renamed to `step-<N>` in one step; only names of the form `step-<N>` count as checkpoints, so a crash
// mid-write leaves at most a hidden temporary (removed by the next run) and the previous checkpoints intact.
import {
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

import { loadSafetensors, noGrad, type Parameter, writeFileAtomic } from '../torch/index.js';
import type { MetricsSummary } from './metrics.js';

export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
export const PARAMS_FILE = 'params.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';
export const STATE_FORMAT = 'moca-ts trainer state';

export class CheckpointError extends Error {}

/** The learning-rate schedule in force: a segment of steps [start_step, total_steps]. */
export interface ScheduleState {
  kind: 'linear' | 'cosine' | 'constant';
  base_lr: number;
  warmup_ratio: number;
  /** ceil(warmup_ratio · (total_steps − start_step)). */
  warmup_steps: number;
  /** Global step at which this schedule segment began (0 for a run's own schedule). */
  start_step: number;
  total_steps: number;
}

/** trainer_state.json. */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: 1;
  /** Optimizer steps completed (skipped steps included). */
  step: number;
  micro_batches: number;
  /** True when the task's data ran out (a resume then ends at once unless the data state is not restored). */
  data_ended: boolean;
  schedule: ScheduleState;
  /** LambdaLR.stateDict() at the save. */
  scheduler: { lastStep: number; baseLrs: number[] };
  data_state: unknown;
  rng: {
    /** libtorch's CPU generator state (getRngState), base64. */
    torch_cpu: string;
  };
  bad_steps: { total: number; consecutive: number };
  /** Wall-clock seconds of training over all sessions. */
  elapsed_s: number;
  tokens: number;
  /** Parameter names in optimizer order (the optimizer state refers to parameters by this index). */
  param_names: string[];
  config: Record<string, unknown>;
  metrics_summary: MetricsSummary;
  torch_threads: number;
  saved_at: string;
  /** Data-parallel runs: every rank's generator (base64) and data state, by rank (rank 0's are also above). */
  distributed?: { world_size: number; rng_per_rank: string[]; data_state_per_rank: unknown[] };
}

export interface CheckpointInfo {
  step: number;
  name: string;
  dir: string;
}

/** Fault injection for tests: called before each stage of a checkpoint write; throwing simulates a crash there. */
export type CheckpointFault = (stage: 'params' | 'optimizer' | 'state' | 'rename' | 'latest') => void;

export function checkpointName(step: number): string {
  return `step-${step}`;
}

const NAME_RE = /^step-(\d+)$/;
const TEMP_RE = /^\.(tmp|old)-step-\d+-/;

/** Complete checkpoints under `root` (a `checkpoints` directory), by increasing step. Missing root → []. */
export function listCheckpoints(root: string): CheckpointInfo[] {
  if (!existsSync(root)) return [];
  const out: CheckpointInfo[] = [];
  for (const name of readdirSync(root)) {
    const m = NAME_RE.exec(name);
    if (!m) continue;
    const dir = path.join(root, name);
    if (!existsSync(path.join(dir, STATE_FILE))) continue;
    out.push({ step: Number(m[1]), name, dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The checkpoint named by the `latest` pointer, else (pointer missing or stale) the highest step; null if none. */
export function latestCheckpoint(root: string): CheckpointInfo | null {
  const all = listCheckpoints(root);
  const pointer = path.join(root, LATEST_FILE);
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, 'utf8').trim();
    const hit = all.find((c) => c.name === name);
    if (hit) return hit;
  }
  return all[all.length - 1] ?? null;
}

/**
 * A checkpoint from a user-given path: a checkpoint directory (with trainer_state.json), a `checkpoints`
 * directory, or a run's output directory (its latest checkpoint).
 */
export function resolveCheckpoint(p: string): CheckpointInfo {
  const abs = path.resolve(p);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new CheckpointError(`resume: ${p} is not a directory`);
  }
  if (existsSync(path.join(abs, STATE_FILE))) {
    const m = NAME_RE.exec(path.basename(abs));
    const state = readTrainerState(abs);
    return { step: m ? Number(m[1]) : state.step, name: path.basename(abs), dir: abs };
  }
  for (const root of [abs, path.join(abs, CHECKPOINTS_DIR)]) {
    const c = latestCheckpoint(root);
    if (c) return c;
  }
  throw new CheckpointError(
    `resume: no checkpoint found at ${p} (expected a step-<N> directory with ${STATE_FILE}, a ${CHECKPOINTS_DIR} ` +
      `directory, or a run directory containing one)`,
  );
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read trainer state (${(e as Error).message})`);
  }
  if (state?.format !== STATE_FORMAT || state.version !== 1) {
    throw new CheckpointError(`${file}: not a moca-ts trainer state (format ${JSON.stringify(state?.format)})`);
  }
  for (const f of [PARAMS_FILE, OPTIMIZER_FILE]) {
    if (!existsSync(path.join(dir, f))) throw new CheckpointError(`${dir}: checkpoint is missing ${f}`);
  }
  return state;
}

/** fsync of a directory (its entries); ignored where the platform does not support it. */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // not supported
  } finally {
    closeSync(fd);
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2) + '\n';
  writeFileAtomic(file, (fd) => writeSync(fd, text));
}

/**
 * Writes checkpoint `step-<step>` under `root`: `write(tmpDir)` fills a temporary directory (each file written
 * and fsynced by the caller's writers), which is then fsynced and renamed into place; finally the `latest`
 * pointer is replaced. On any error the temporary directory is removed and the error rethrown: the
 * checkpoints that existed before are untouched. An existing `step-<step>` is replaced.
 */
export function writeCheckpointDir(
  root: string,
  step: number,
  write: (tmpDir: string) => void,
  options: { fault?: CheckpointFault } = {},
): CheckpointInfo {
  mkdirSync(root, { recursive: true });
  const name = checkpointName(step);
  const final = path.join(root, name);
  const tag = `${process.pid}-${Date.now()}`;
  const tmp = path.join(root, `.tmp-${name}-${tag}`);
  mkdirSync(tmp);
  try {
    write(tmp);
    options.fault?.('rename');
    fsyncDir(tmp);
    if (existsSync(final)) {
      // Replacing a checkpoint of the same step: move the old one aside first (rename cannot replace a
      // non-empty directory), then drop it once the new one is in place.
      const old = path.join(root, `.old-${name}-${tag}`);
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(root);
  options.fault?.('latest');
  writeFileAtomic(path.join(root, LATEST_FILE), (fd) => writeSync(fd, name + '\n'));
  return { step, name, dir: final };
}

/**
 * Deletes the oldest checkpoints so that at most `keep` with step ≤ `currentStep` remain (`keep` ≤ 0 keeps all).
 * Checkpoints of later steps (left by a run that went further before being resumed from an earlier point) are
 * never deleted. Returns the names deleted.
 */
export function pruneCheckpoints(root: string, keep: number, currentStep: number): string[] {
  if (keep <= 0) return [];
  const older = listCheckpoints(root).filter((c) => c.step <= currentStep);
  const doomed = older.slice(0, Math.max(0, older.length - keep));
  for (const c of doomed) rmSync(c.dir, { recursive: true, force: true });
  return doomed.map((c) => c.name);
}

/** Removes temporaries left by an interrupted checkpoint write (hidden `.tmp-step-*` / `.old-step-*` entries). */
export function removeStaleTemporaries(root: string): string[] {
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(root)) {
    if (TEMP_RE.test(name) || /^\.latest\.tmp-/.test(name)) {
      rmSync(path.join(root, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/**
 * Copies a checkpoint's parameters into `named` (matched by name). Throws a CheckpointError listing missing and
 * unexpected names, shape and dtype mismatches; nothing is copied unless everything matches.
 */
export function loadParameters(file: string, named: readonly (readonly [string, Parameter])[]): void {
  const loaded = loadSafetensors(file);
  try {
    const own = new Map(named.map(([n, p]) => [n, p]));
    const missing = [...own.keys()].filter((n) => !loaded.has(n));
    const unexpected = [...loaded.keys()].filter((n) => !own.has(n));
    const problems: string[] = [];
    if (missing.length) problems.push(`missing in the checkpoint (${missing.length}): ${preview(missing)}`);
    if (unexpected.length) problems.push(`not parameters of the task (${unexpected.length}): ${preview(unexpected)}`);
    for (const [n, p] of own) {
      const t = loaded.get(n);
      if (t === undefined) continue;
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        problems.push(`${n}: checkpoint shape [${t.shape.join(', ')}] vs parameter [${p.shape.join(', ')}]`);
      } else if (t.dtype !== p.dtype) {
        problems.push(`${n}: checkpoint dtype ${t.dtype} vs parameter ${p.dtype}`);
      }
    }
    if (problems.length) {
      throw new CheckpointError(`${file}: parameters do not match the task's:\n  ${problems.join('\n  ')}`);
    }
    noGrad(() => {
      for (const [n, p] of own) p.copy_(loaded.get(n)!);
    });
  } finally {
    for (const t of loaded.values()) t.dispose();
  }
}

function preview(names: string[]): string {
  const shown = names.slice(0, 10).join(', ');
  return names.length > 10 ? `${shown}, … (${names.length - 10} more)` : shown;
}
