// Both training stages data-parallel through the CLI launcher (`moca train … --nproc-per-node 2`), on loopback with
// the tiny model: 2 processes × batch B train like 1 process × batch 2B (stage 1: bit for bit; stage 2 with
// cross-rank in-batch negatives, plain and GradCache: within float32 rounding); a worker killed mid-run stops the
// job with a clear message and `--resume` continues exactly; SIGINT stops every worker after the same step.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { initModelDirectory } from '../../src/embed/index.js';
import * as torch from '../../src/torch/index.js';
import { readJsonl } from '../train/toy-task.js';
import { freePort, type ProcResult, runNode } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const moca = path.resolve(here, '..', '..', '..', 'bin', 'moca.js');
const root = mkdtempSync(path.join(tmpdir(), 'moca-ddp-stages-'));
after(() => rmSync(root, { recursive: true, force: true }));
const model = path.join(root, 'model');

before(async () => {
  await initModelDirectory(model, { preset: 'tiny', seed: 2 });
  // Stage 1: interleaved documents, half with an image.
  mkdirSync(path.join(root, 'img'));
  const PH = '<|vision_start|><|image_pad|><|vision_end|>';
  const docs: string[] = [];
  for (const [name, rgb] of [
    ['red', [220, 30, 30]],
    ['green', [30, 200, 60]],
    ['blue', [40, 60, 230]],
  ] as const) {
    await sharp({ create: { width: 56, height: 56, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
      .png()
      .toFile(path.join(root, 'img', `${name}.png`));
    for (let k = 0; k < 6; k++) {
      docs.push(JSON.stringify({ text: `the ${name} square ${PH} is ${name} ${k}.`, images: [`img/${name}.png`] }));
      docs.push(JSON.stringify({ text: `a ${name} thing is a ${name} thing, number ${k}.` }));
    }
  }
  writeFileSync(path.join(root, 'corpus.jsonl'), docs.join('\n') + '\n');
  // Stage 2: two subsets of text pairs with two hard negatives each.
  const colours = ['red', 'green', 'blue', 'yellow', 'black', 'white', 'pink', 'brown'];
  const things = ['cat', 'car', 'tree', 'lamp', 'boat', 'shoe', 'bird', 'cup'];
  const subsets: string[][] = [[], []];
  colours.forEach((c, i) =>
    things.forEach((t, j) => {
      const row = {
        query: `find the ${c} ${t}`,
        positive: `${t}: ${c}`,
        negatives: [`${t}: ${colours[(i + 1) % 8]}`, `${t}: ${colours[(i + 3) % 8]}`],
      };
      subsets[(i + j) % 2]!.push(JSON.stringify(row));
    }),
  );
  writeFileSync(path.join(root, 'a.jsonl'), subsets[0]!.join('\n') + '\n');
  writeFileSync(path.join(root, 'b.jsonl'), subsets[1]!.join('\n') + '\n');
});

function cptArgs(out: string, extra: string[]): string[] {
  return [
    ...['train', 'cpt', '--model', model, '--data', path.join(root, 'corpus.jsonl'), '--output', path.join(root, out)],
    ...['--tokens-per-batch', '500', '--max-length', '128', '--buffer-size', '8', '--epochs', '100', '--seed', '3'],
    ...[
      '--lr',
      '1e-3',
      '--warmup-ratio',
      '0',
      '--schedule',
      'constant',
      '--min-pixels',
      '3136',
      '--max-pixels',
      '3136',
    ],
    ...['--threads', '1', ...extra],
  ];
}

function clArgs(out: string, extra: string[]): string[] {
  return [
    ...['train', 'cl', '--model', model, '--output', path.join(root, out), '--threads', '1'],
    ...['--data', `a=${path.join(root, 'a.jsonl')}`, `b=${path.join(root, 'b.jsonl')}`, '--hard-negatives', '2'],
    ...['--temperature', '0.05', '--max-length', '64', '--epochs', '5', '--max-steps', '3', '--seed', '1'],
    ...['--lr', '3e-3', '--warmup-ratio', '0', '--schedule', 'constant', '--save-every', '0', ...extra],
  ];
}

async function moca_(args: string[], onStderr?: (text: string, pid: number) => void): Promise<ProcResult> {
  return runNode([moca, ...args], {}, 120_000, onStderr);
}

async function launch(args: string[], onStderr?: (text: string, pid: number) => void): Promise<ProcResult> {
  const port = await freePort();
  return moca_([...args, '--nproc-per-node', '2', '--master-port', String(port)], onStderr);
}

function ok(r: ProcResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed (${r.code ?? r.signal}):\n${r.stderr}`);
}

/** Parameters of a checkpoint, by name. */
function params(out: string, step: number): Map<string, torch.Tensor> {
  return torch.loadSafetensors(path.join(root, out, 'checkpoints', `step-${step}`, 'params.safetensors'));
}

function maxAbsDiff(a: Map<string, torch.Tensor>, b: Map<string, torch.Tensor>): number {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  let m = 0;
  for (const [n, t] of a)
    m = Math.max(
      m,
      torch.scope(() => t.sub(b.get(n)!).abs().max().item()),
    );
  return m;
}

/** Process ids whose parent is `pid` (Linux /proc). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

function rankOf(pid: number): number | null {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const rank = env.find((e) => e.startsWith('RANK='));
    return rank ? Number(rank.slice(5)) : null;
  } catch {
    return null;
  }
}

describe('data-parallel stages through the launcher (tiny model, loopback)', () => {
  const steps = 8;

  test('stage 1: 2 processes × 1 micro-batch train exactly like 1 process × 2 micro-batches', async () => {
    const ref = await moca_(cptArgs('cpt-1', ['--grad-accumulation', '2', '--max-steps', String(steps)]));
    ok(ref, 'single process');
    const two = await launch(cptArgs('cpt-2', ['--grad-accumulation', '1', '--max-steps', String(steps)]));
    ok(two, 'two processes');
    assert.match(two.stderr, /moca launch: starting 2 worker\(s\) on node 0 of 1: ranks 0…1 of 2/);
    assert.match(two.stderr, /data parallel: 2 ranks \(gloo\); 1 micro-batch\(es\) per rank and step → 2 per step/);
    assert.match(two.stderr, /gradient bucket all-reduces started during backward/);
    assert.equal(two.stderr.match(/moca train cpt: completed/g)?.length, 1, 'one final line (rank 0)');
    const d = maxAbsDiff(params('cpt-1', steps), params('cpt-2', steps));
    assert.ok(d <= 1e-6, `stage 1 max |Δ| ${d}`);
    const ma = readJsonl(path.join(root, 'cpt-1', 'metrics.jsonl'));
    const mb = readJsonl(path.join(root, 'cpt-2', 'metrics.jsonl'));
    for (const key of ['loss', 'mlm_loss', 'mae_loss', 'masked_tokens', 'masked_patches', 'tokens', 'micro_batches']) {
      mb.forEach((r, i) =>
        assert.ok(Math.abs((r[key] as number) - (ma[i]![key] as number)) <= 1e-6, `${key} @${i + 1}`),
      );
    }
    process.stderr.write(`# stage 1: 2 processes vs 1, ${steps} steps: max |Δ| of parameters = ${d}\n`);
  });

  test('stage 2: 2 processes × batch 4 with cross-rank negatives train like 1 process × batch 8 (plain, GradCache)', async () => {
    const ref = await moca_(clArgs('cl-1', ['--batch-size', '8']));
    ok(ref, 'single process');
    const two = await launch(clArgs('cl-2', ['--batch-size', '4']));
    ok(two, 'two processes');
    const gc = await launch(clArgs('cl-2gc', ['--batch-size', '4', '--grad-cache', '--chunk-size', '3']));
    ok(gc, 'two processes with GradCache');
    const ma = readJsonl(path.join(root, 'cl-1', 'metrics.jsonl'));
    for (const out of ['cl-2', 'cl-2gc']) {
      const mb = readJsonl(path.join(root, out, 'metrics.jsonl'));
      mb.forEach((r, i) => {
        assert.equal(r.pairs, 8, 'global batch of 8 pairs');
        assert.equal(r.micro_batches, 1, 'one global batch per step');
        const rel = Math.abs((r.loss as number) - (ma[i]!.loss as number)) / (ma[i]!.loss as number);
        assert.ok(rel < 1e-4, `${out} loss at step ${i + 1}: ${r.loss} vs ${ma[i]!.loss}`);
      });
    }
    // Without cross-rank negatives each rank would score 4 candidates per query instead of 8: losses would differ
    // by far more than rounding. With them, the parameters agree to float32 rounding (amplified by Adam's
    // normalisation on near-zero gradients).
    const dPlain = maxAbsDiff(params('cl-1', 3), params('cl-2', 3));
    const dGc = maxAbsDiff(params('cl-1', 3), params('cl-2gc', 3));
    assert.ok(dPlain < 1e-4, `stage 2 max |Δ| ${dPlain}`);
    assert.ok(dGc < 5e-4, `stage 2 GradCache max |Δ| ${dGc}`);
    process.stderr.write(`# stage 2: 2 × 4 vs 1 × 8, 3 steps: max |Δ| plain ${dPlain}, GradCache ${dGc}\n`);
  });

  test('a killed worker stops the job with a clear message; --resume continues exactly', async () => {
    const args = (extra: string[]) =>
      cptArgs('cpt-kill', ['--grad-accumulation', '1', '--max-steps', String(steps), '--save-every', '2', ...extra]);
    let killed: number | null = null;
    const r = await launch(args([]), (text, launcher) => {
      if (killed !== null || !/cpt: checkpoint saved: .*step-4/.test(text)) return;
      const worker = childPids(launcher).find((p) => rankOf(p) === 1);
      if (worker !== undefined) {
        killed = worker;
        process.kill(worker, 'SIGKILL');
      }
    });
    assert.notEqual(killed, null, 'a worker was killed');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`worker rank 1 \\(pid ${killed}\\) was killed by SIGKILL; stopping the job`));
    assert.match(r.stderr, /\[rank 0\/2\] .*failed on rank 0 of 2 \(gloo\): .*another worker exited or was killed/);
    assert.ok(r.ms < 60_000, `stopped after ${r.ms} ms`);

    const resumed = await launch(args(['--resume']));
    ok(resumed, 'resume');
    assert.match(resumed.stderr, /resumed from .*step-(4|6) at step (4|6)\/8/);
    assert.equal(
      maxAbsDiff(params('cpt-2', steps), params('cpt-kill', steps)),
      0,
      'bit-identical to the uninterrupted run',
    );
  });

  test('a process started by another launcher (RANK, WORLD_SIZE set) refuses to launch workers itself', async () => {
    const r = await runNode(
      [moca, ...cptArgs('cpt-nested', ['--nproc-per-node', '2'])],
      { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: String(await freePort()) },
      60_000,
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /--nproc-per-node \/ --nnodes start worker processes, but RANK and WORLD_SIZE are already set/,
    );
  });

  test('SIGINT to the launcher stops every worker after the same step with a checkpoint', async () => {
    const args = (extra: string[]) =>
      clArgs('cl-int', ['--batch-size', '4', '--max-steps', '40', '--epochs', '20', ...extra]);
    let sent = false;
    const r = await launch(args([]), (text, launcher) => {
      if (!sent && /cl: step 2\/40/.test(text)) {
        sent = true;
        process.kill(launcher, 'SIGINT');
      }
    });
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /received SIGINT: passing it on to the workers/);
    const m = /stopped at step (\d+)\/40/.exec(r.stderr);
    assert.ok(m, r.stderr);
    const stoppedAt = Number(m[1]);
    const state = JSON.parse(
      readFileSync(path.join(root, 'cl-int', 'checkpoints', `step-${stoppedAt}`, 'trainer_state.json'), 'utf8'),
    ) as { step: number; distributed: { world_size: number; data_state_per_rank: unknown[] } };
    assert.equal(state.step, stoppedAt);
    assert.equal(state.distributed.world_size, 2);
    assert.equal(state.distributed.data_state_per_rank.length, 2);
  });
});
