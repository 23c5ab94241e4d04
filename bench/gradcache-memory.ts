// GradCache memory curve: peak RSS of one stage-2 step (small config, 2 hard negatives) as the batch grows,
// plain vs GradCache (chunks of 16), each measured in a fresh process. One JSON line per (batch, mode).
// Usage: node dist/bench/gradcache-memory.js [--sizes 32,64,128,256] [--threads N] [--seed N]
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const sizes = arg('sizes', '32,64,128,256').split(',').map(Number);
const threads = arg('threads', '2');
const seed = arg('seed', '1234');
const here = path.dirname(fileURLToPath(import.meta.url));
const workers = path.join(here, 'workers');
const dir = path.join(os.tmpdir(), `moca-bench-embed-${seed}`);

// The model and batches come from the embed / cl-step preparation scripts.
for (const [script, extra] of [
  ['embed-prepare.js', []],
  ['cl-prepare.js', [sizes.join(',')]],
] as const) {
  const r = spawnSync(process.execPath, [path.join(workers, script), dir, seed, ...extra], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${script} failed`);
}

for (const size of sizes) {
  for (const mode of ['plain', 'gradcache']) {
    const r = spawnSync(process.execPath, [path.join(workers, 'cl-step.js')], {
      input:
        JSON.stringify({
          cmd: 'init',
          config: {
            modelDir: path.join(dir, 'model'),
            batchFile: path.join(dir, `cl-${size}.safetensors`),
            threads: Number(threads),
            lr: 1e-5,
            temperature: 0.03,
            chunkSize: 16,
          },
        }) +
        '\n' +
        JSON.stringify({ cmd: 'run', steps: 1, case: mode }) +
        '\n' +
        JSON.stringify({ cmd: 'rss' }) +
        '\n' +
        JSON.stringify({ cmd: 'exit' }) +
        '\n',
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: threads, MOCA_NUM_THREADS: threads },
    });
    const replies = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const run = replies[1] as { times_ms?: number[] };
    const rss = replies[2] as { peak_rss_mib?: number };
    process.stdout.write(
      JSON.stringify({
        bench: 'gradcache-memory',
        batch: size,
        mode,
        sequences: size * 4,
        step_ms: Math.round(run.times_ms?.[0] ?? NaN),
        peak_rss_mib: Math.round(rss.peak_rss_mib ?? NaN),
      }) + '\n',
    );
  }
}
