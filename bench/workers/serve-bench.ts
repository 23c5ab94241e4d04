// `npm run bench -- serve`: HTTP embedding throughput and latency of `moca serve` on the `small` model at
// concurrency 1, 8 and 32, with dynamic batching ("ours") against the same server without it ("peer": one request
// per forward pass). Ours vs ours: both servers run as child processes with the same threads and environment, and
// measurement runs alternate between them. Clients are in this process, on loopback.
//
// Per concurrency, one JSON line: requests/s (median over rounds), p50/p99 latency over every measured request,
// server CPU time per request (from /proc: robust to other load on the machine, unlike wall-clock figures), the mean
// forward-pass size each server reports in /metrics, and the servers' peak RSS.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { Rng } from '../../src/data/rng.js';
import { type BenchOptions, childEnv, median, openBlasCoreType, packageRoot, readRss, round } from '../harness.js';

export const SERVE_BENCH_DESCRIPTION =
  'HTTP /v1/embeddings on the `small` model (LLM 4×512, vision 4×256), one ~100-token text per request, at ' +
  'concurrency 1, 8, 32: requests/s and p50/p99 latency; ours = dynamic batching, peer = the same server with ' +
  '--no-batching';

const CONCURRENCY = [1, 8, 32];
const WORDS =
  'the a red blue small large cat dog house tree car person image photo of with on under next to near'.split(' ');

/** CPU seconds (user + system, all threads) of a process, from /proc; null where unreadable. */
function cpuSeconds(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime in USER_HZ (100)
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine (everything but idle and iowait), from /proc/stat. */
function machineBusySeconds(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return f.reduce((sum, x, i) => (i === 3 || i === 4 ? sum : sum + x), 0) / 100;
  } catch {
    return null;
  }
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** The `small` random model, made once per machine and seed with `moca init`. */
function modelDir(seed: number): string {
  const dir = path.join(os.tmpdir(), `moca-bench-serve-${seed}`, 'model');
  if (!existsSync(path.join(dir, 'model.safetensors'))) {
    const r = spawnSync(
      process.execPath,
      [
        path.join(packageRoot(), 'bin', 'moca.js'),
        'init',
        '--preset',
        'small',
        '--output',
        dir,
        '--seed',
        String(seed),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (r.status !== 0) throw new Error(`moca init failed (exit ${r.status})`);
  }
  return dir;
}

class ServerProcess {
  private constructor(
    readonly label: string,
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(label: string, args: string[], env: NodeJS.ProcessEnv): Promise<ServerProcess> {
    const child = spawn(process.execPath, [path.join(packageRoot(), 'bin', 'moca.js'), 'serve', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => {
      tail.push(l);
      if (tail.length > 20) tail.shift();
    });
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          const m = JSON.parse(line) as { event?: string; url?: string };
          if (m.event === 'ready' && m.url) resolve(m.url);
        } catch {
          // not ours
        }
      });
      child.once('exit', (code) => reject(new Error(`${label} server exited (${code}):\n${tail.join('\n')}`)));
    });
    return new ServerProcess(label, child, url);
  }

  async batchStats(): Promise<{ batches: number; inputs: number }> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const value = (name: string): number => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    return { batches: value('moca_batch_size_count'), inputs: value('moca_batch_size_sum') };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

interface RunResult {
  seconds: number;
  latenciesMs: number[];
  failures: number;
}

/** `total` requests from `concurrency` clients, each sending its next request when the last one is answered. */
async function load(url: string, texts: readonly string[], concurrency: number, total: number): Promise<RunResult> {
  let next = 0;
  let failures = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = performance.now();
        const res = await fetch(`${url}/v1/embeddings`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ input: texts[i % texts.length], encoding_format: 'base64' }),
        });
        await res.arrayBuffer();
        if (res.status === 200) latencies.push(performance.now() - s);
        else failures++;
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, latenciesMs: latencies, failures };
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export async function runServeBench(options: BenchOptions): Promise<void> {
  const model = modelDir(options.seed);
  const coreType = await openBlasCoreType();
  const t = String(options.threads);
  const env = childEnv(options.threads, coreType, options.env);
  const rng = new Rng(options.seed);
  const texts = Array.from({ length: 512 }, (_, i) => {
    const words = Array.from({ length: 14 + rng.int(12) }, () => WORDS[rng.int(WORDS.length)]);
    return `query ${i}: ${words.join(' ')}`;
  });
  const meanTokens = texts.reduce((s, x) => s + Buffer.byteLength(x), 0) / texts.length; // byte-level tokenizer
  const common = ['--model', model, '--port', '0', '--threads', t, '--max-queue', '100000', '--timeout-ms', '0'];
  log(
    `bench serve: ${SERVE_BENCH_DESCRIPTION}\n  threads=${t} rounds=${options.rounds} OPENBLAS_CORETYPE=${coreType ?? '(unset)'}`,
  );
  const ours = await ServerProcess.start('batching', common, env);
  const peer = await ServerProcess.start('no-batching', [...common, '--no-batching'], env);
  // Interrupted: stop the servers too rather than leave them running.
  const onSignal = (): void => {
    void Promise.all([ours.stop(), peer.stop()]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const c of CONCURRENCY) {
      const perRun = Math.max(16, c * 4);
      const sides = [ours, peer];
      const rps = new Map<ServerProcess, number[]>(sides.map((s) => [s, []]));
      const lat = new Map<ServerProcess, number[]>(sides.map((s) => [s, []]));
      const failures = new Map<ServerProcess, number>(sides.map((s) => [s, 0]));
      const before = new Map<ServerProcess, { batches: number; inputs: number }>();
      for (const s of sides) {
        for (let w = 0; w < Math.max(1, options.warmup); w++) await load(s.url, texts, c, Math.max(8, c * 2));
        before.set(s, await s.batchStats());
      }
      const cpuPerRequest = new Map<ServerProcess, number[]>(sides.map((s) => [s, []]));
      let otherSeconds = 0;
      let wallSeconds = 0;
      for (let r = 0; r < options.rounds; r++) {
        for (const s of sides) {
          const pid = s.child.pid!;
          const cpu0 = cpuSeconds(pid);
          const own0 = cpuSeconds('self');
          const busy0 = machineBusySeconds();
          const run = await load(s.url, texts, c, perRun);
          const cpu1 = cpuSeconds(pid);
          const own1 = cpuSeconds('self');
          const busy1 = machineBusySeconds();
          rps.get(s)!.push(run.latenciesMs.length / run.seconds);
          lat.get(s)!.push(...run.latenciesMs);
          failures.set(s, failures.get(s)! + run.failures);
          if (cpu0 !== null && cpu1 !== null) cpuPerRequest.get(s)!.push(((cpu1 - cpu0) * 1000) / perRun);
          if (cpu0 !== null && cpu1 !== null && own0 !== null && own1 !== null && busy0 !== null && busy1 !== null) {
            otherSeconds += busy1 - busy0 - (cpu1 - cpu0) - (own1 - own0);
            wallSeconds += run.seconds;
          }
        }
        log(
          `  c=${c} round ${r + 1}/${options.rounds}: batching ${round(median(rps.get(ours)!))} req/s, ` +
            `no batching ${round(median(rps.get(peer)!))} req/s`,
        );
      }
      const meanBatch = async (s: ServerProcess): Promise<number | null> => {
        const a = before.get(s)!;
        const b = await s.batchStats();
        return b.batches > a.batches ? round((b.inputs - a.inputs) / (b.batches - a.batches), 3) : null;
      };
      const o = rps.get(ours)!;
      const p = rps.get(peer)!;
      const line = {
        bench: 'serve',
        metric: `requests_per_s_c${c}`,
        ours: round(median(o)),
        peer: round(median(p)),
        ratio: round(median(o) / median(p)),
        unit: 'req/s',
        runs: options.rounds,
        higher_is_better: true,
        concurrency: c,
        ours_label: 'moca serve (dynamic batching: --max-batch 32, --max-wait-ms 2)',
        peer_label: 'moca serve --no-batching (one request per forward pass)',
        ours_p50_ms: round(percentile(lat.get(ours)!, 50)),
        ours_p99_ms: round(percentile(lat.get(ours)!, 99)),
        peer_p50_ms: round(percentile(lat.get(peer)!, 50)),
        peer_p99_ms: round(percentile(lat.get(peer)!, 99)),
        ours_min: round(Math.min(...o)),
        ours_max: round(Math.max(...o)),
        peer_min: round(Math.min(...p)),
        peer_max: round(Math.max(...p)),
        ours_cpu_ms_per_request: round(median(cpuPerRequest.get(ours)!)),
        peer_cpu_ms_per_request: round(median(cpuPerRequest.get(peer)!)),
        ours_mean_batch: await meanBatch(ours),
        peer_mean_batch: await meanBatch(peer),
        ours_failures: failures.get(ours),
        peer_failures: failures.get(peer),
        requests_per_run: perRun,
        mean_input_tokens: round(meanTokens, 3),
        threads: options.threads,
        openblas_coretype: coreType ?? null,
        ours_peak_rss_mib: round(readRss(ours.child.pid!).peakMiB),
        peer_peak_rss_mib: round(readRss(peer.child.pid!).peakMiB),
        other_cpu_cores_during: wallSeconds > 0 ? round(Math.max(0, otherSeconds) / wallSeconds, 2) : null,
        load_avg_1m: round(os.loadavg()[0]!, 2),
        ratio_note: 'ours/peer of requests/s: above 1 means dynamic batching serves more requests per second',
      };
      if (line.other_cpu_cores_during !== null && line.other_cpu_cores_during > 0.1) {
        log(`WARNING: other processes kept ${line.other_cpu_cores_during} cores busy during c=${c}; figures distorted`);
      }
      process.stdout.write(JSON.stringify(line) + '\n');
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all([ours.stop(), peer.stop()]);
  }
}
