// Per-step training metrics: micro-batch averaging, the metrics.jsonl log (one JSON object per optimizer step),
// a running summary kept in checkpoints, the progress line on stderr and the HTML report.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

import { writeFileAtomic } from '../torch/index.js';
import { formatDuration } from '../util/progress.js';
import { renderReportHtml, type ReportOptions, type ReportRecord } from './plot.js';

/** One line of metrics.jsonl. Task metrics appear under their own names (e.g. mlm_loss, mae_loss, tokens). */
export interface StepRecord {
  /** Optimizer step (1-based: the first update is step 1). */
  step: number;
  /** Learning rate used by this step's update (first parameter group). */
  lr: number;
  /** Mean of the micro-batches' losses (as returned by the task, before division by the accumulation); null when
   * not finite. */
  loss: number | null;
  /** Global L2 norm of the gradient before clipping; null when the step was skipped before it was computed. */
  grad_norm: number | null;
  /** Micro-batches accumulated into this step (< gradAccumulation only for the last step at the end of data). */
  micro_batches: number;
  /** Training wall time since the run started, over all sessions (resumes add to it). */
  elapsed_s: number;
  /** Summed `tokens` metric over this step's micro-batches per second of this step's wall time. */
  tokens_per_s?: number;
  /** Present (true) when the update was skipped because the loss or the gradient norm was not finite. */
  skipped?: boolean;
  [metric: string]: number | boolean | null | undefined;
}

/** Names the trainer writes itself; a task metric may not use them. */
export const RESERVED_METRICS: ReadonlySet<string> = new Set([
  'step',
  'lr',
  'loss',
  'grad_norm',
  'micro_batches',
  'elapsed_s',
  'tokens_per_s',
  'skipped',
]);

/**
 * Combines the micro-batches of one optimizer step: the loss and each metric are averaged over the micro-batches
 * that reported it, except metrics named in `summed` (counts such as `tokens`), which are added up.
 */
export class MicroBatchAverager {
  private lossSum = 0;
  private n = 0;
  private readonly sums = new Map<string, { total: number; count: number }>();

  constructor(private readonly summed: ReadonlySet<string> = new Set(['tokens'])) {}

  add(loss: number, metrics: Readonly<Record<string, number>>): void {
    this.lossSum += loss;
    this.n++;
    for (const [k, v] of Object.entries(metrics)) {
      if (RESERVED_METRICS.has(k)) {
        throw new Error(`task metric '${k}' clashes with a name the trainer records itself; rename it`);
      }
      if (typeof v !== 'number') {
        throw new TypeError(`task metric '${k}' must be a number, got ${describe(v)} (call .item() on tensors)`);
      }
      const s = this.sums.get(k) ?? { total: 0, count: 0 };
      s.total += v;
      s.count++;
      this.sums.set(k, s);
    }
  }

  get count(): number {
    return this.n;
  }

  /** Mean loss (NaN when no micro-batch, or when one was not finite). */
  loss(): number {
    return this.n === 0 ? NaN : this.lossSum / this.n;
  }

  metrics(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, s] of this.sums) out[k] = this.summed.has(k) ? s.total : s.total / s.count;
    return out;
  }

  /** The raw sums (JSON), for combining the micro-batches of several data-parallel ranks. */
  snapshot(): AveragerSnapshot {
    return {
      n: this.n,
      lossSum: this.lossSum,
      sums: Object.fromEntries([...this.sums].map(([k, s]) => [k, [s.total, s.count]])),
    };
  }

  /** One averager over the micro-batches of all the snapshots (e.g. one per rank, in rank order). */
  static merge(summed: ReadonlySet<string>, snapshots: readonly AveragerSnapshot[]): MicroBatchAverager {
    const out = new MicroBatchAverager(summed);
    // Snapshots that went through JSON carry non-finite numbers as null.
    const num = (x: number | null): number => (x === null ? NaN : x);
    for (const s of snapshots) {
      out.n += s.n;
      out.lossSum += num(s.lossSum);
      for (const [k, [total, count]] of Object.entries(s.sums)) {
        const e = out.sums.get(k) ?? { total: 0, count: 0 };
        e.total += num(total);
        e.count += count;
        out.sums.set(k, e);
      }
    }
    return out;
  }
}

export interface AveragerSnapshot {
  n: number;
  /** null: not finite (JSON). */
  lossSum: number | null;
  sums: Record<string, [number | null, number]>;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

/** JSON with non-finite numbers as null (JSON.stringify's rule, made explicit). */
export function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/** Appends records to metrics.jsonl (one line each); `sync()` makes the lines so far durable. */
export class MetricsLog {
  private fd: number;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
  }

  append(record: StepRecord): void {
    writeSync(this.fd, JSON.stringify(record) + '\n');
  }

  sync(): void {
    if (this.fd >= 0) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Reads metrics.jsonl; lines that do not parse (a line torn by a crash) are skipped. Missing file → []. */
export function readMetrics(file: string): StepRecord[] {
  if (!existsSync(file)) return [];
  const out: StepRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v !== null && typeof v === 'object' && typeof (v as { step?: unknown }).step === 'number') {
        out.push(v as StepRecord);
      }
    } catch {
      // torn line
    }
  }
  return out;
}

/**
 * Keeps only the records of steps ≤ `lastStep` (atomically rewritten): on resume, the lines logged after the
 * checkpoint by the interrupted session are dropped, since those steps are about to be redone.
 * Returns the number of records kept.
 */
export function truncateMetrics(file: string, lastStep: number): number {
  if (!existsSync(file)) return 0;
  const kept = readMetrics(file).filter((r) => r.step <= lastStep);
  const text = kept.map((r) => JSON.stringify(r) + '\n').join('');
  writeFileAtomic(file, (fd) => writeSync(fd, text));
  return kept.length;
}

/** Running facts about the run, carried across resumes in trainer_state.json. */
export interface MetricsSummary {
  steps: number;
  skipped_steps: number;
  best_loss: { step: number; value: number } | null;
  /** Losses of the most recent steps (at most 100), oldest first. */
  recent_losses: number[];
  last: StepRecord | null;
}

export function emptySummary(): MetricsSummary {
  return { steps: 0, skipped_steps: 0, best_loss: null, recent_losses: [], last: null };
}

export function updateSummary(s: MetricsSummary, r: StepRecord): void {
  s.steps++;
  if (r.skipped) s.skipped_steps++;
  if (r.loss !== null && !r.skipped) {
    if (s.best_loss === null || r.loss < s.best_loss.value) s.best_loss = { step: r.step, value: r.loss };
    s.recent_losses.push(r.loss);
    if (s.recent_losses.length > 100) s.recent_losses.shift();
  }
  s.last = r;
}

/** Compact number for logs: 4 significant digits, exponent form for very small / large magnitudes. */
export function formatValue(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  if (Number.isInteger(x)) return String(x);
  const t = x.toPrecision(4);
  return t.includes('e') ? t : t.replace(/\.?0+$/, '');
}

export interface ProgressLineInput {
  step: number;
  totalSteps: number;
  /** Mean loss and task metrics over the steps since the last line. */
  loss: number | null;
  metrics: Readonly<Record<string, number>>;
  lr: number;
  gradNorm: number | null;
  tokensPerSecond: number | null;
  /** Steps done and seconds spent in this session (for the rate and the ETA). */
  sessionSteps: number;
  sessionSeconds: number;
  elapsedSeconds: number;
  skippedSinceLast: number;
}

/** `train: step 120/1000 · 12.0% · loss 2.346 (mlm_loss 2.1 · mae_loss 1.9) · lr 1.20e-6 · … · ETA 32:10`. */
export function progressLine(p: ProgressLineInput, label = 'train'): string {
  const parts = [`${label}: step ${p.step}/${p.totalSteps}`];
  if (p.totalSteps > 0) parts.push(`${((100 * p.step) / p.totalSteps).toFixed(1)}%`);
  const extra = Object.entries(p.metrics)
    .filter(([k]) => k !== 'tokens')
    .map(([k, v]) => `${k} ${formatValue(v)}`);
  parts.push(`loss ${formatValue(p.loss)}${extra.length ? ` (${extra.join(' · ')})` : ''}`);
  parts.push(`lr ${formatValue(p.lr)}`);
  if (p.gradNorm !== null) parts.push(`grad_norm ${formatValue(p.gradNorm)}`);
  if (p.tokensPerSecond !== null) parts.push(`${formatValue(Math.round(p.tokensPerSecond))} tok/s`);
  const rate = p.sessionSeconds > 0 ? p.sessionSteps / p.sessionSeconds : 0;
  parts.push(`${rate.toFixed(rate < 10 ? 2 : 1)} steps/s`);
  if (rate > 0) parts.push(`ETA ${formatDuration((p.totalSteps - p.step) / rate)}`);
  parts.push(`elapsed ${formatDuration(p.elapsedSeconds)}`);
  if (p.skippedSinceLast > 0) parts.push(`${p.skippedSinceLast} skipped`);
  return parts.join(' · ');
}

/** Writes `report.html` (atomically) from the records of metrics.jsonl. */
export function writeReport(file: string, records: readonly StepRecord[], options: ReportOptions = {}): void {
  const html = renderReportHtml(records as readonly ReportRecord[], options);
  writeFileAtomic(file, (fd) => writeSync(fd, html));
}

/**
 * (Re)writes `<runDir>/report.html` from `<runDir>/metrics.jsonl` — e.g. for a run in progress or one that was
 * interrupted. Returns the report's path.
 */
export function writeRunReport(runDir: string, options: ReportOptions = {}): string {
  const records = readMetrics(path.join(runDir, 'metrics.jsonl'));
  const file = path.join(runDir, 'report.html');
  const last = records[records.length - 1];
  writeReport(file, records, {
    title: `Training report — ${path.basename(path.resolve(runDir))}`,
    subtitle: [path.resolve(runDir), last ? `last step ${last.step}` : 'no steps yet'],
    ...options,
  });
  return file;
}
