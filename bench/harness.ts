// Benchmark harness: runs our implementation and the PyTorch peer each in a persistent child process, sends
// both the same JSON commands over stdin, alternates measurement rounds between them (ours, peer, ours, peer, …)
// and prints one JSON line per metric with the medians. Human-readable progress goes to stderr.
//
// This module does not import the tensor runtime at load time (the workers import this file for serveWorker,
// and the parent must choose OPENBLAS_CORETYPE before anything loads libtorch).
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { applyOpenMpDefaults } from '../src/torch/openmp.js';

/** The user's OPENBLAS_CORETYPE, read before anything in this process loads libtorch (native.js sets it). */
const USER_OPENBLAS_CORETYPE = process.env.OPENBLAS_CORETYPE;

// ------------------------------------------------------------------------------------------------ protocol

/** A command sent to a worker (one JSON line on its stdin). */
export type WorkerCommand =
  | { cmd: 'init'; config: Record<string, unknown> }
  | { cmd: 'warmup'; steps: number; case?: string }
  | { cmd: 'run'; steps: number; case?: string }
  | { cmd: 'rss' }
  | { cmd: 'exit' };

/** A worker's reply to `run`/`warmup`: wall time of each step, plus per-step values the step returned. */
export interface RunReply {
  ok: true;
  times_ms: number[];
  values: Record<string, number[]>;
}

export interface Reply {
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

/** What a worker provides: set-up from the shared config, and one (timed) step of a case. */
export interface WorkerHandlers {
  /** May return a promise (e.g. a worker that first joins a process group). */
  init(config: Record<string, unknown>): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** One step. Numbers in the returned record are collected per step (e.g. the loss, phase timings). */
  step(caseId: string | undefined): Record<string, number> | void;
}

/** Peak and current resident set size of a process from /proc/<pid>/status, in MiB (null if unreadable). */
export function readRss(pid: number | 'self'): { peakMiB: number | null; currentMiB: number | null } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string): number | null => {
      const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
      return m ? Number(m[1]) : null;
    };
    const hwm = kib('VmHWM');
    const rss = kib('VmRSS');
    return { peakMiB: hwm === null ? null : hwm / 1024, currentMiB: rss === null ? null : rss / 1024 };
  } catch {
    return { peakMiB: null, currentMiB: null };
  }
}

/**
 * The worker side of the protocol (our TypeScript workers; the Python peers implement the same loop).
 * Reads one JSON command per line from stdin, answers one JSON line on stdout. Nothing else may go to stdout.
 */
export function serveWorker(handlers: WorkerHandlers): void {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const reply = (r: Reply): void => {
    process.stdout.write(JSON.stringify(r) + '\n');
  };
  const timed = (steps: number, caseId: string | undefined): RunReply => {
    const times: number[] = [];
    const values: Record<string, number[]> = {};
    for (let i = 0; i < steps; i++) {
      const t0 = process.hrtime.bigint();
      const v = handlers.step(caseId);
      const t1 = process.hrtime.bigint();
      times.push(Number(t1 - t0) / 1e6);
      if (v) for (const [k, x] of Object.entries(v)) (values[k] ??= []).push(x);
    }
    return { ok: true, times_ms: times, values };
  };
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    let command: WorkerCommand;
    try {
      command = JSON.parse(line) as WorkerCommand;
    } catch {
      reply({ ok: false, error: `bad command line: ${line.slice(0, 200)}` });
      return;
    }
    try {
      switch (command.cmd) {
        case 'init': {
          const init = handlers.init(command.config);
          if (init instanceof Promise) {
            init.then(
              (r) => reply({ ok: true, ...r }),
              (err: unknown) =>
                reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
            );
          } else {
            reply({ ok: true, ...init });
          }
          break;
        }
        case 'warmup':
        case 'run':
          reply(timed(command.steps, command.case) as unknown as Reply);
          break;
        case 'rss': {
          const r = readRss('self');
          reply({ ok: true, peak_rss_mib: r.peakMiB, rss_mib: r.currentMiB });
          break;
        }
        case 'exit':
          reply({ ok: true });
          rl.close();
          process.exit(0);
          break;
        default:
          reply({ ok: false, error: `unknown command ${JSON.stringify(command)}` });
      }
    } catch (err) {
      reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  });
  rl.on('close', () => process.exit(0));
}

// ------------------------------------------------------------------------------------------------ parent side

/** The package root (holds package.json and bench/peers), from dist/bench or bench. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'bench', 'peers'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('bench: cannot find the package root (a directory with package.json and bench/peers)');
}

/** Directory of the compiled TypeScript workers (next to this module: dist/bench/workers). */
export function workersDir(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'workers');
}

/** A persistent child process speaking the JSON-lines protocol. */
export class Worker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private readonly stderrTail: string[] = [];
  private exited: string | null = null;

  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    cwd: string,
  ) {
    this.child = spawn(command, [...args], { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
      process.stderr.write(`[${label}] ${line}\n`);
    });
    this.child.on('error', (err) => this.fail(`${label}: could not start ${command}: ${err.message}`));
    this.child.on('exit', (code, signal) => this.fail(`${label}: exited (code ${code}, signal ${signal})`));
    this.child.stdin.on('error', () => undefined); // a dead child is reported through 'exit'
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.label}: no pid (the process did not start)`);
    return this.child.pid;
  }

  private onLine(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || !('ok' in parsed)) {
      process.stderr.write(`[${this.label} stdout] ${line}\n`);
      return;
    }
    this.pending.shift()?.resolve(parsed as Reply);
  }

  private fail(message: string): void {
    if (this.exited !== null) return;
    const tail = this.stderrTail.slice(-15).join('\n');
    this.exited = tail ? `${message}\n--- last stderr lines ---\n${tail}` : message;
    for (const p of this.pending.splice(0)) p.reject(new Error(this.exited));
  }

  /** Sends one command and waits for its reply (throws on `ok: false` or a dead process). */
  request(command: WorkerCommand, timeoutMs = 15 * 60_000): Promise<Reply> {
    if (this.exited !== null) return Promise.reject(new Error(this.exited));
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.label}: no reply to ${command.cmd} within ${timeoutMs / 1000} s`));
        this.child.kill('SIGKILL');
      }, timeoutMs);
      this.pending.push({
        resolve: (r) => {
          clearTimeout(timer);
          if (r.ok) resolve(r);
          else reject(new Error(`${this.label}: ${command.cmd} failed: ${r.error ?? '(no message)'}`));
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin.write(JSON.stringify(command) + '\n');
    });
  }

  async run(command: WorkerCommand & { cmd: 'warmup' | 'run' }): Promise<RunReply> {
    return (await this.request(command)) as unknown as RunReply;
  }

  /** Peak RSS (VmHWM) read by the parent from /proc/<pid>/status, else as reported by the worker. */
  async peakRssMiB(): Promise<number | null> {
    const own = readRss(this.pid).peakMiB;
    if (own !== null) return own;
    const r = await this.request({ cmd: 'rss' });
    return typeof r.peak_rss_mib === 'number' ? r.peak_rss_mib : null;
  }

  async close(): Promise<void> {
    const running = (): boolean => this.child.exitCode === null && this.child.signalCode === null;
    if (this.child.pid === undefined || !running()) return; // never started, or already gone
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.request({ cmd: 'exit' }, 10_000).catch(() => undefined); // the reply races the process's exit
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------------------------------------ statistics

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Rounds to `digits` significant decimals for printing. */
export function round(x: number | null, digits = 4): number | null {
  if (x === null || !Number.isFinite(x)) return x;
  if (x === 0) return 0;
  const scale = 10 ** Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * scale) / scale;
}

// ------------------------------------------------------------------------------------------------ benches

export interface BenchOptions {
  threads: number;
  rounds: number;
  steps: number;
  warmup: number;
  seed: number;
  python: string;
  /** Extra environment variables for both children (`--env KEY=VALUE`, for experiments). */
  env: Record<string, string>;
}

/** One measured quantity of a bench (a line of output). */
export interface BenchCase {
  /** Passed to the workers' `run` command (undefined for single-case benches). */
  id: string | undefined;
  metric: string;
  unit: string;
  higherIsBetter: boolean;
  /** Converts one step's wall time (ms) and that step's values into the reported quantity. */
  value(ms: number, values: Record<string, number>): number;
}

/** Everything a side (ours or peer) produced for one case over all rounds. */
export interface CaseSamples {
  /** Reported quantity per measured step (all rounds together). */
  samples: number[];
  /** Per-step values returned by the worker, all rounds together. */
  values: Record<string, number[]>;
  /** Values from the warm-up steps. */
  warmupValues: Record<string, number[]>;
  /** Per-step values, per round (for growth checks). */
  roundValues: Record<string, number[]>[];
}

export interface SideResult {
  init: Reply;
  cases: Map<string | undefined, CaseSamples>;
  peakRssMiB: number | null;
}

export interface BenchSpec {
  name: string;
  description: string;
  /** Compiled worker file under dist/bench/workers. */
  oursWorker: string;
  /** Python script under bench/peers. */
  peerScript: string;
  /** Defaults for --rounds/--steps/--warmup where this bench wants others than the harness's. */
  defaults?: Partial<Pick<BenchOptions, 'rounds' | 'steps' | 'warmup'>>;
  /** The init config sent to both workers (same shapes, same seed). */
  config(options: BenchOptions): Record<string, unknown>;
  cases(config: Record<string, unknown>): BenchCase[];
  /** Extra fields for a case's output line. */
  extra?(c: BenchCase, ours: SideResult, peer: SideResult): Record<string, unknown>;
}

/** OPENBLAS_CORETYPE for both children: the user's choice if set, else what our runtime would pick. */
export async function openBlasCoreType(): Promise<string | undefined> {
  const fromUser = USER_OPENBLAS_CORETYPE;
  if (fromUser !== undefined && fromUser !== '') return fromUser;
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  let cpuinfo: string;
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  // openblas.js is pure: the parent process does not load libtorch.
  const { chooseOpenBlasCoreType } = await import('../src/torch/openblas.js');
  return chooseOpenBlasCoreType(cpuinfo);
}

export function childEnv(
  threads: number,
  coreType: string | undefined,
  extra: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const t = String(threads);
  env.OMP_NUM_THREADS = t;
  env.MOCA_NUM_THREADS = t;
  env.OPENBLAS_NUM_THREADS = t;
  env.MKL_NUM_THREADS = t;
  env.PYTHONUNBUFFERED = '1';
  if (coreType === undefined) delete env.OPENBLAS_CORETYPE;
  else env.OPENBLAS_CORETYPE = coreType;
  // Both sides wait at OpenMP barriers the same way: what our runtime would choose (unless the user chose).
  applyOpenMpDefaults(env);
  return env;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function emptySamples(): CaseSamples {
  return { samples: [], values: {}, warmupValues: {}, roundValues: [] };
}

function addValues(into: Record<string, number[]>, from: Record<string, number[]>): void {
  for (const [k, xs] of Object.entries(from)) (into[k] ??= []).push(...xs);
}

/** Runs one bench: starts both workers, warms them up, alternates rounds, prints one JSON line per case. */
export async function runBench(spec: BenchSpec, options: BenchOptions): Promise<void> {
  const root = packageRoot();
  const coreType = await openBlasCoreType();
  const env = childEnv(options.threads, coreType, options.env);
  const config = { ...spec.config(options), threads: options.threads, seed: options.seed };
  const cases = spec.cases(config);

  const oursPath = path.join(workersDir(), spec.oursWorker);
  const peerPath = path.join(root, 'bench', 'peers', spec.peerScript);
  for (const p of [oursPath, peerPath]) if (!existsSync(p)) throw new Error(`bench ${spec.name}: missing ${p}`);

  const busyBefore = await otherCpuBefore(1000);
  if (busyBefore !== null && busyBefore > OTHER_CPU_WARNING) {
    log(`WARNING: other processes keep ${busyBefore.toFixed(2)} cores busy; the figures will be distorted`);
  }
  log(
    `bench ${spec.name}: ${spec.description}\n  threads=${options.threads} rounds=${options.rounds} ` +
      `steps=${options.steps} warmup=${options.warmup} OPENBLAS_CORETYPE=${coreType ?? '(unset)'}`,
  );
  const ours = new Worker('ours', process.execPath, [oursPath], env, root);
  const peer = new Worker('peer', options.python, ['-u', peerPath], env, root);
  try {
    // Start both before measuring either, and wait until both answer (Python imports torch, Node loads libtorch:
    // seconds of CPU) so that neither start-up overlaps the other's init, which may measure the machine (the
    // decode-bound bench's memory bandwidth read half its value while the peer was still importing). Then init
    // in sequence so their set-up does not overlap either.
    await Promise.all([ours, peer].map((w) => w.request({ cmd: 'rss' })));
    const results = new Map<Worker, SideResult>();
    for (const w of [ours, peer]) {
      const t0 = performance.now();
      const init = await w.request({ cmd: 'init', config });
      log(`  ${w.label}: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${describeInit(init)})`);
      if (init.threads !== options.threads) {
        throw new Error(`${w.label} runs with ${String(init.threads)} threads instead of ${options.threads}`);
      }
      if ((init.openblas_coretype ?? null) !== (coreType ?? null)) {
        throw new Error(`${w.label} sees OPENBLAS_CORETYPE=${String(init.openblas_coretype)}, expected ${coreType}`);
      }
      results.set(w, { init, cases: new Map(cases.map((c) => [c.id, emptySamples()])), peakRssMiB: null });
    }

    for (const c of cases) {
      for (const w of [ours, peer]) {
        if (options.warmup <= 0) continue;
        const r = await w.run({ cmd: 'warmup', steps: options.warmup, case: c.id });
        addValues(results.get(w)!.cases.get(c.id)!.warmupValues, r.values);
      }
    }

    const meter = new OtherCpuMeter([ours.pid, peer.pid]);
    for (let r = 0; r < options.rounds; r++) {
      for (const c of cases) {
        for (const w of [ours, peer]) {
          const reply = await w.run({ cmd: 'run', steps: options.steps, case: c.id });
          const s = results.get(w)!.cases.get(c.id)!;
          reply.times_ms.forEach((ms, i) => {
            const stepValues = Object.fromEntries(Object.entries(reply.values).map(([k, xs]) => [k, xs[i]!]));
            s.samples.push(c.value(ms, stepValues));
          });
          addValues(s.values, reply.values);
          s.roundValues.push(reply.values);
        }
      }
      const progress = cases
        .map((c) => {
          const o = median(results.get(ours)!.cases.get(c.id)!.samples);
          const p = median(results.get(peer)!.cases.get(c.id)!.samples);
          return `${c.metric}: ours ${round(o)} peer ${round(p)} ${c.unit}`;
        })
        .join('; ');
      log(`  round ${r + 1}/${options.rounds}: ${progress}`);
    }

    const otherDuring = meter.otherCores();
    if (otherDuring !== null && otherDuring > OTHER_CPU_WARNING) {
      log(`WARNING: other processes kept ${otherDuring.toFixed(2)} cores busy during the rounds; figures distorted`);
    }
    for (const w of [ours, peer]) results.get(w)!.peakRssMiB = await w.peakRssMiB();

    const o = results.get(ours)!;
    const p = results.get(peer)!;
    for (const c of cases) {
      const os = o.cases.get(c.id)!.samples;
      const ps = p.cases.get(c.id)!.samples;
      const mo = median(os);
      const mp = median(ps);
      const line: Record<string, unknown> = {
        bench: spec.name,
        metric: c.metric,
        ours: round(mo),
        peer: round(mp),
        ratio: round(mo / mp),
        unit: c.unit,
        runs: Math.min(os.length, ps.length),
        higher_is_better: c.higherIsBetter,
        ours_min: round(Math.min(...os)),
        ours_max: round(Math.max(...os)),
        peer_min: round(Math.min(...ps)),
        peer_max: round(Math.max(...ps)),
        threads: options.threads,
        rounds: options.rounds,
        steps: options.steps,
        warmup: options.warmup,
        openblas_coretype: coreType ?? null,
        other_cpu_cores_before: round(busyBefore, 2),
        other_cpu_cores_during: round(otherDuring, 2),
        ours_peak_rss_mib: round(o.peakRssMiB),
        peer_peak_rss_mib: round(p.peakRssMiB),
        ours_libtorch: o.init.libtorch_version ?? null,
        peer_torch: p.init.torch_version ?? null,
        ...(Object.keys(options.env).length > 0 ? { extra_env: options.env } : {}),
        ...(spec.extra?.(c, o, p) ?? {}),
      };
      process.stdout.write(JSON.stringify(line) + '\n');
    }
  } finally {
    await Promise.all([ours.close(), peer.close()]);
  }
}

/** Busy CPU time of the whole machine, in seconds (from /proc/stat), or null. */
function machineBusySeconds(): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait is busy.
    const busy = fields.slice(0, 8).reduce((sum, x, i) => (i === 3 || i === 4 ? sum : sum + x), 0);
    return busy / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** CPU time (user + system, all threads) of a process, in seconds, or null. */
function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command: state(3) … utime(14) stime(15), numbered from 1 in proc(5).
    return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Above this many cores used by other processes, the harness warns that the figures are unreliable. */
export const OTHER_CPU_WARNING = 0.1;

/** USER_HZ; 100 on every Linux configuration Node supports. */
const CLOCK_TICKS = 100;

/** CPU used by other processes (cores on average) while `pids` and this process ran, measured between two calls. */
export class OtherCpuMeter {
  private readonly t0 = performance.now();
  private readonly busy0: number | null;
  private readonly own0: number | null;

  constructor(private readonly pids: readonly number[]) {
    this.busy0 = machineBusySeconds();
    this.own0 = this.ownSeconds();
  }

  private ownSeconds(): number | null {
    let total = process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
    for (const pid of this.pids) {
      const s = processCpuSeconds(pid);
      if (s === null) return null;
      total += s;
    }
    return total;
  }

  /** Average number of cores kept busy by everything else since construction (null if unknown). */
  otherCores(): number | null {
    const busy1 = machineBusySeconds();
    const own1 = this.ownSeconds();
    if (this.busy0 === null || this.own0 === null || busy1 === null || own1 === null) return null;
    const seconds = (performance.now() - this.t0) / 1000;
    if (seconds <= 0) return null;
    return Math.max(0, busy1 - this.busy0 - (own1 - this.own0)) / seconds;
  }
}

/** Cores kept busy by other processes over `ms` milliseconds before a bench starts. */
export async function otherCpuBefore(ms: number): Promise<number | null> {
  const meter = new OtherCpuMeter([]);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return meter.otherCores();
}

export function describeInit(init: Reply): string {
  const parts: string[] = [];
  if (init.libtorch_version !== undefined) parts.push(`libtorch ${String(init.libtorch_version)}`);
  if (init.torch_version !== undefined) parts.push(`torch ${String(init.torch_version)}`);
  parts.push(`threads ${String(init.threads)}`);
  if (init.parameters !== undefined) parts.push(`${String(init.parameters)} parameters`);
  return parts.join(', ');
}
