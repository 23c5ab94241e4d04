// The data-parallel trainer on a toy task, with real worker processes on loopback: W ranks × k micro-batches equal
// one process × W·k micro-batches (also at a partial end of data, with and without overlap); a killed worker stops
// the others promptly with a clear error, and the job resumes from the last checkpoint exactly as if uninterrupted;
// ranks that disagree on the configuration refuse to start.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CPT_DEFAULTS, type TrainerConfig, type TrainResult } from '../../src/train/trainer.js';
import { readJsonl } from '../train/toy-task.js';
import type { ToyWorkerSpec } from './fixtures/toy-ddp-worker.js';
import { type ProcResult, runNode, runRanks } from './helpers.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'toy-ddp-worker.js');
const root = mkdtempSync(path.join(tmpdir(), 'moca-ddp-toy-'));
after(() => rmSync(root, { recursive: true, force: true }));

function config(dir: string, over: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    ...CPT_DEFAULTS,
    outputDir: path.join(root, dir),
    lr: 1e-2,
    warmupRatio: 0,
    schedule: 'constant',
    gradAccumulation: 2,
    maxGradNorm: 1.0,
    totalSteps: 8,
    saveEvery: 0,
    keepCheckpoints: 0,
    logEvery: 1,
    seed: 1,
    resume: false,
    ...over,
  };
}

interface WorkerOutput {
  result: TrainResult;
  params: Record<string, number[]>;
}

function parse(r: ProcResult, who: string): WorkerOutput {
  assert.equal(r.code, 0, `${who} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as WorkerOutput;
}

async function single(spec: ToyWorkerSpec): Promise<WorkerOutput> {
  return parse(await runNode([worker, '--run', JSON.stringify(spec)], { MOCA_NUM_THREADS: '1' }, 60_000), 'single');
}

async function ranks(spec: ToyWorkerSpec, world: number): Promise<WorkerOutput[]> {
  const out = await runRanks([worker, '--run', JSON.stringify(spec)], world, 60_000);
  return out.map((r, i) => parse(r, `rank ${i}`));
}

function maxAbsDiff(a: Record<string, number[]>, b: Record<string, number[]>): number {
  let m = 0;
  for (const [k, xs] of Object.entries(a)) {
    const ys = b[k]!;
    assert.equal(ys.length, xs.length, k);
    xs.forEach((x, i) => (m = Math.max(m, Math.abs(x - ys[i]!))));
  }
  return m;
}

describe('data-parallel trainer (toy task, loopback processes)', () => {
  // 82 samples in batches of 4: 21 batches, the last one partial; 8 steps × 4 micro-batches would need 32, so the
  // data ends inside step 6, which has 1 micro-batch — on rank 0 only (rank 1's stream is empty): the partial step is
  // the mean over the micro-batches it has, on every rank.
  const toy = { batchSize: 4, numSamples: 82 };

  test('2 ranks × 2 micro-batches equal 1 process × 4 micro-batches (weights, losses, partial end of data)', async () => {
    const ref = await single({ config: config('ref', { gradAccumulation: 4 }), toy, initSeed: 5 });
    const two = await ranks({ config: config('two', { gradAccumulation: 2 }), toy, initSeed: 5 }, 2);
    const noOverlap = await ranks(
      { config: config('two-no-overlap', { gradAccumulation: 2 }), toy, initSeed: 5, noOverlap: true },
      2,
    );
    assert.equal(ref.result.status, 'data_exhausted');
    assert.equal(two[0]!.result.status, 'data_exhausted');
    assert.equal(two[0]!.result.step, ref.result.step);
    // Every rank ends with rank 0's weights (each rank initialised its model from a different seed).
    assert.equal(maxAbsDiff(two[0]!.params, two[1]!.params), 0);
    // Same micro-batches, gradients averaged over them: equal up to float32 summation order.
    const d = maxAbsDiff(ref.params, two[0]!.params);
    assert.ok(d < 1e-6, `max |Δ| ${d}`);
    assert.ok(maxAbsDiff(two[0]!.params, noOverlap[0]!.params) < 1e-7, 'overlap does not change the result');
    // Rank 0's metrics are global: losses and token counts of all ranks' micro-batches.
    const ma = readJsonl(path.join(root, 'ref', 'metrics.jsonl'));
    const mb = readJsonl(path.join(root, 'two', 'metrics.jsonl'));
    assert.equal(mb.length, ma.length);
    mb.forEach((r, i) => {
      assert.equal(r.micro_batches, ma[i]!.micro_batches);
      assert.equal(r.tokens, ma[i]!.tokens);
      assert.ok(Math.abs((r.loss as number) - (ma[i]!.loss as number)) < 1e-6, `loss at step ${i + 1}`);
    });
    assert.equal(ma.length, 6);
    assert.equal(ma.at(-1)!.micro_batches, 1, 'the last step is partial');
    assert.equal(two[1]!.result.exportDir, null, 'only rank 0 exports');
  });

  test('a killed worker stops the job at once; resuming from the last checkpoint equals the uninterrupted run', async () => {
    const over = { totalSteps: 10, saveEvery: 2 };
    const toyD = { batchSize: 4, dropout: 0.2 }; // dropout: each rank's generator must be restored too
    const ref = await ranks({ config: config('kill-ref', over), toy: toyD, initSeed: 5 }, 2);

    const killed = await runRanks(
      [
        worker,
        '--run',
        JSON.stringify({
          config: config('kill', over),
          toy: { ...toyD, delayMs: 10 },
          initSeed: 5,
          dieAt: { rank: 1, step: 5 },
          timeoutMs: 120_000,
        } satisfies ToyWorkerSpec),
      ],
      2,
      60_000,
    );
    assert.equal(killed[1]!.signal, 'SIGKILL');
    assert.equal(killed[0]!.code, 1, 'the surviving rank fails');
    assert.match(killed[0]!.stderr, /failed on rank 0 of 2 \(gloo\): .*another worker exited or was killed/);
    // Detected through the closed connection, far sooner than the 120 s collective timeout.
    assert.ok(killed[0]!.ms < 30_000, `rank 0 exited after ${killed[0]!.ms} ms`);

    const resumed = await ranks({ config: config('kill', { ...over, resume: true }), toy: toyD, initSeed: 77 }, 2);
    assert.equal(resumed[0]!.result.status, 'completed');
    assert.equal(resumed[0]!.result.startStep, 4, 'resumed from the last checkpoint before the kill');
    assert.equal(maxAbsDiff(resumed[0]!.params, ref[0]!.params), 0, 'bit-identical to the uninterrupted run');
    assert.equal(maxAbsDiff(resumed[1]!.params, ref[0]!.params), 0);
    const mr = readJsonl(path.join(root, 'kill', 'metrics.jsonl'));
    const mf = readJsonl(path.join(root, 'kill-ref', 'metrics.jsonl'));
    assert.deepEqual(
      mr.map((r) => r.loss),
      mf.map((r) => r.loss),
    );
  });

  test('ranks that disagree on the configuration refuse to start, naming the difference', async () => {
    const out = await runRanks(
      (rank) => [
        worker,
        '--run',
        JSON.stringify({
          config: config('mismatch', { totalSteps: 8 + rank }),
          toy,
          initSeed: 5,
        } satisfies ToyWorkerSpec),
      ],
      2,
      60_000,
    );
    for (const r of out) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /data-parallel ranks disagree on totalSteps: rank 0 has 8, rank 1 has 9/);
    }
  });
});
