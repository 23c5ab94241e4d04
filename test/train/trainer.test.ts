import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as torch from '../../src/torch/index.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { reportChartNames } from '../../src/train/plot.js';
import { readMetrics } from '../../src/train/metrics.js';
import { train, Trainer, TrainerError, type TrainerConfig, type TrainResult } from '../../src/train/trainer.js';
import { paramValues, readJsonl, tensorBytes, ToyTask, type ToyOptions } from './toy-task.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-trainer-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (name: string): string => path.join(root, `${name}-${dirCount++}`);

function config(outputDir: string, over: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    outputDir,
    lr: 1e-2,
    weightDecay: 0,
    betas: [0.9, 0.999],
    eps: 1e-8,
    warmupRatio: 0.1,
    schedule: 'linear',
    totalSteps: 20,
    gradAccumulation: 1,
    maxGradNorm: 1.0,
    saveEvery: 0,
    keepCheckpoints: 2,
    logEvery: 1000,
    seed: 0,
    resume: false,
    ...over,
  };
}

/** A log sink that keeps the lines (tests stay quiet). */
function sink(): { write(text: string): boolean; text: () => string } {
  const parts: string[] = [];
  return { write: (t: string) => parts.push(t) > 0, text: () => parts.join('') };
}

const quiet = () => ({ log: sink(), handleSignals: false });

function toy(initSeed: number, options: ToyOptions = {}): ToyTask {
  torch.manualSeed(initSeed);
  return new ToyTask(options);
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('Trainer', () => {
  test('loss decreases; metrics, checkpoint, export and report are written', async () => {
    const dir = newDir('basic');
    const task = toy(1, { batchSize: 32 });
    const live = torch.liveTensorStats().handles;
    const result = await train(task, config(dir, { totalSteps: 80, gradAccumulation: 2, lr: 1e-2 }), quiet());
    assert.equal(torch.liveTensorStats().handles, live, 'no tensor handle leaked (batches, grads, optimizer state)');
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 80);
    const records = readMetrics(path.join(dir, 'metrics.jsonl'));
    assert.equal(records.length, 80);
    assert.deepEqual(
      records.map((r) => r.step),
      Array.from({ length: 80 }, (_, i) => i + 1),
    );
    const losses = records.map((r) => r.loss as number);
    assert.ok(mean(losses.slice(-10)) < 0.5 * mean(losses.slice(0, 10)), `loss did not decrease: ${losses}`);
    const r0 = records[0]!;
    assert.equal(r0.micro_batches, 2);
    assert.equal(r0.tokens, 64, 'tokens are summed over the micro-batches');
    assert.equal(typeof r0.mae, 'number');
    assert.equal(typeof r0.grad_norm, 'number');
    assert.ok((r0.tokens_per_s as number) > 0);
    assert.equal(result.lastLoss, losses[79]);
    // Final checkpoint, export, report.
    assert.deepEqual(
      listCheckpoints(path.join(dir, 'checkpoints')).map((c) => c.step),
      [80],
    );
    assert.ok(existsSync(path.join(dir, 'final', 'model.safetensors')));
    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    const charts = reportChartNames(records);
    assert.deepEqual(charts, ['loss', 'mae', 'tokens', 'lr', 'grad_norm', 'tokens_per_s']);
    assert.equal(html.match(/<svg /g)?.length, charts.length);
    assert.ok(!/<script|\ssrc=|\shref=/i.test(html), 'report is self-contained');
  });

  test('k micro-batches of b samples equal one batch of k·b (incl. a partial accumulation at the end of data)', async () => {
    // 28 samples: micro-batches of 4 with k = 3 → steps of 3, 3 and 1 micro-batches; batches of 12 → 12, 12, 4.
    const micro = toy(3, { batchSize: 4, numSamples: 28 });
    const big = toy(3, { batchSize: 12, numSamples: 28 });
    const over = { totalSteps: 10, lr: 1e-2, maxGradNorm: null, warmupRatio: 0 };
    const a = await train(micro, config(newDir('accum-micro'), { ...over, gradAccumulation: 3 }), quiet());
    const b = await train(big, config(newDir('accum-big'), { ...over, gradAccumulation: 1 }), quiet());
    assert.equal(a.status, 'data_exhausted');
    assert.equal(b.status, 'data_exhausted');
    assert.equal(a.step, 3);
    assert.equal(b.step, 3);
    const pa = paramValues(micro);
    const pb = paramValues(big);
    let maxDiff = 0;
    for (const [n, va] of pa) {
      const vb = pb.get(n)!;
      va.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - vb[i]!))));
    }
    assert.ok(maxDiff < 1e-6, `parameters differ by ${maxDiff}`);
    const ra = readMetrics(path.join(a.metricsFile));
    assert.deepEqual(
      ra.map((r) => r.micro_batches),
      [3, 3, 1],
    );
    // The two runs did not merely both stay at their (identical) initial values.
    const init = paramValues(toy(3, { batchSize: 4 }));
    const moved = [...init].some(([n, v]) => v.some((x, i) => Math.abs(x - pa.get(n)![i]!) > 1e-4));
    assert.ok(moved);
  });

  test('learning rates follow warmup then linear / cosine / constant decay, as recorded in metrics.jsonl', async () => {
    const lr = 0.01;
    const warm = 3; // ceil(0.25 · 10)
    const expected = {
      linear: (t: number) => (t < warm ? t / warm : (10 - t) / (10 - warm)),
      cosine: (t: number) => (t < warm ? t / warm : 0.5 * (1 + Math.cos((Math.PI * (t - warm)) / (10 - warm)))),
      constant: (t: number) => (t < warm ? t / warm : 1),
    };
    for (const schedule of ['linear', 'cosine', 'constant'] as const) {
      const dir = newDir(`lr-${schedule}`);
      await train(toy(1), config(dir, { totalSteps: 10, warmupRatio: 0.25, schedule, lr }), quiet());
      const lrs = readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => r.lr);
      assert.equal(lrs.length, 10);
      lrs.forEach((got, i) => {
        const want = lr * expected[schedule](i); // step i+1 uses the multiplier at scheduler step i
        assert.ok(Math.abs(got - want) <= 1e-15, `${schedule} step ${i + 1}: lr ${got}, expected ${want}`);
      });
    }
  });

  test('exact resume: N steps + stop + resume in a fresh task + N steps = 2N steps straight (bit-identical)', async () => {
    const toyOpts: ToyOptions = { dropout: 0.2, batchSize: 8 };
    const over: Partial<TrainerConfig> = {
      totalSteps: 12,
      gradAccumulation: 2,
      schedule: 'cosine',
      warmupRatio: 0.2,
      weightDecay: 0.01,
      maxGradNorm: 0.5,
      saveEvery: 4,
    };
    const straightDir = newDir('straight');
    const straight = await train(toy(5, toyOpts), config(straightDir, over), quiet());
    assert.equal(straight.status, 'completed');

    const resumedDir = newDir('resumed');
    const first = await new Trainer(toy(5, toyOpts), config(resumedDir, over), {
      ...quiet(),
      onStep: (r, t) => {
        if (r.step === 6) t.requestStop();
      },
    }).run();
    assert.equal(first.status, 'interrupted');
    assert.equal(first.step, 6);
    assert.equal(first.exportDir, null);
    assert.ok(!existsSync(path.join(resumedDir, 'final')), 'nothing exported on a stop');
    assert.ok(existsSync(path.join(resumedDir, 'checkpoints', 'step-6', 'trainer_state.json')));

    // A "new process": different model init, data stream at its start, generator state scrambled.
    const fresh = toy(999, toyOpts);
    torch.manualSeed(12345);
    const log = sink();
    const second = await train(fresh, config(resumedDir, { ...over, resume: true }), { log, handleSignals: false });
    assert.equal(second.status, 'completed');
    assert.equal(second.startStep, 6);
    assert.equal(second.step, 12);
    assert.match(log.text(), /resumed from .*step-6 at step 6\/12/);
    assert.match(log.text(), /schedule continues/);

    const ma = readJsonl(straight.metricsFile);
    const mb = readJsonl(second.metricsFile);
    assert.equal(mb.length, 12);
    for (const key of ['step', 'loss', 'mae', 'lr', 'grad_norm']) {
      assert.deepEqual(
        mb.map((r) => r[key]),
        ma.map((r) => r[key]),
        key,
      );
    }
    const fa = tensorBytes(path.join(straightDir, 'final', 'model.safetensors'));
    const fb = tensorBytes(path.join(resumedDir, 'final', 'model.safetensors'));
    assert.deepEqual([...fb.keys()].sort(), [...fa.keys()].sort());
    for (const [n, bytes] of fa) assert.ok(bytes.equals(fb.get(n)!), `${n} differs`);
    const oa = tensorBytes(path.join(straightDir, 'checkpoints', 'step-12', 'optimizer.safetensors'));
    const ob = tensorBytes(path.join(resumedDir, 'checkpoints', 'step-12', 'optimizer.safetensors'));
    for (const [n, bytes] of oa) assert.ok(bytes.equals(ob.get(n)!), `optimizer ${n} differs`);
  });

  test('resume with a longer run starts a new schedule segment; resumeData false restarts the data', async () => {
    const dir = newDir('segment');
    const lr = 0.01;
    await train(toy(2), config(dir, { totalSteps: 10, warmupRatio: 0.2, lr }), quiet());
    const task = toy(2);
    const log = sink();
    const r = await train(
      task,
      config(dir, { totalSteps: 20, warmupRatio: 0.2, lr, resume: true, resumeData: false }),
      {
        log,
        handleSignals: false,
      },
    );
    assert.equal(r.step, 20);
    assert.equal(task.next, 10, 'data restarted from batch 0');
    assert.match(log.text(), /new learning-rate schedule segment: linear from step 10 to 20, warmup 2 steps/);
    assert.match(log.text(), /totalSteps 10 → 20/);
    const lrs = readMetrics(path.join(dir, 'metrics.jsonl')).map((x) => x.lr);
    assert.equal(lrs.length, 20);
    // Segment: start 10, span 10, warmup ceil(0.2·10) = 2; step s uses the multiplier at t = s − 1 − 10.
    for (let s = 11; s <= 20; s++) {
      const t = s - 1 - 10;
      const want = lr * (t < 2 ? t / 2 : (10 - t) / 8);
      assert.ok(Math.abs(lrs[s - 1]! - want) < 1e-15, `step ${s}: ${lrs[s - 1]} vs ${want}`);
    }
    // Default resumeData: the data position is restored.
    const task2 = toy(2);
    await train(task2, config(dir, { totalSteps: 25, warmupRatio: 0.2, lr, resume: true }), quiet());
    assert.equal(task2.next, 15);
  });

  test('a non-finite loss skips the update and is counted; too many in a row stop with an error after a checkpoint', async () => {
    const dir = newDir('nan');
    const task = toy(4, { nanAtBatches: [3] });
    const snapshots = new Map<number, Map<string, number[]>>();
    const log = sink();
    const r = await new Trainer(task, config(dir, { totalSteps: 8 }), {
      log,
      handleSignals: false,
      onStep: (rec) => {
        snapshots.set(rec.step, paramValues(task));
      },
    }).run();
    assert.equal(r.status, 'completed');
    assert.equal(r.skippedSteps, 1);
    const recs = readMetrics(r.metricsFile);
    assert.equal(recs[3]!.skipped, true);
    assert.equal(recs[3]!.loss, null);
    assert.equal(recs[2]!.skipped, undefined);
    assert.deepEqual(snapshots.get(4), snapshots.get(3), 'no update at the skipped step');
    assert.notDeepEqual(snapshots.get(5), snapshots.get(4));
    assert.match(log.text(), /warning: step 4: non-finite loss \(nan\) — update skipped/);
    assert.ok(Number.isFinite(r.lastLoss));

    const dir2 = newDir('nan-all');
    await assert.rejects(
      train(toy(4, { nanAll: true }), config(dir2, { totalSteps: 20, maxBadSteps: 3 }), quiet()),
      (e: unknown) => e instanceof TrainerError && /4 consecutive steps had a non-finite loss/.test(e.message),
    );
    assert.deepEqual(
      listCheckpoints(path.join(dir2, 'checkpoints')).map((c) => c.step),
      [4],
    );
  });

  test('refuses to start over an earlier run unless resume or overwrite; resume: true in an empty dir starts fresh', async () => {
    const dir = newDir('refuse');
    const first = await train(toy(1), config(dir, { totalSteps: 3, resume: true }), quiet());
    assert.equal(first.status, 'completed');
    await assert.rejects(
      train(toy(1), config(dir, { totalSteps: 3 }), quiet()),
      /already holds a training run \(checkpoints up to step 3\); resume it \(resume: true\) or start over \(overwrite: true\)/,
    );
    const again = await train(toy(1), config(dir, { totalSteps: 2, overwrite: true }), quiet());
    assert.equal(again.step, 2);
    assert.equal(readMetrics(again.metricsFile).length, 2);
    assert.deepEqual(
      listCheckpoints(path.join(dir, 'checkpoints')).map((c) => c.step),
      [2],
    );
  });

  test('signal handlers are installed only while training', async () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const during: number[][] = [];
    await new Trainer(toy(1), config(newDir('handlers'), { totalSteps: 2 }), {
      log: sink(),
      onStep: () => {
        during.push([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]);
      },
    }).run();
    assert.deepEqual(during[0], [before[0]! + 1, before[1]! + 1]);
    assert.deepEqual([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], before);
  });

  test('rejects bad configs and bad task output with clear errors', async () => {
    assert.throws(
      () => new Trainer(toy(1), config(newDir('bad'), { gradAccumulation: 0 })),
      /gradAccumulation must be an integer ≥ 1/,
    );
    assert.throws(
      () => new Trainer(toy(1), config(newDir('bad'), { warmupRatio: 2 })),
      /warmupRatio must lie in \[0, 1\]/,
    );
    const task = toy(1);
    task.loss = (b) => ({ loss: task.model.forward(b.x), metrics: {} });
    await assert.rejects(train(task, config(newDir('bad')), quiet()), /the loss must be a scalar, got shape \[8\]/);
    const task2 = toy(1);
    const orig = task2.loss.bind(task2);
    task2.loss = (b) => ({ loss: orig(b).loss, metrics: { loss: 1 } });
    await assert.rejects(train(task2, config(newDir('bad')), quiet()), /task metric 'loss' clashes/);
  });
});

// ------------------------------------------------------------------------------------------------ signals

const toyScript = fileURLToPath(new URL('./fixtures/toy-train.js', import.meta.url));

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the toy training script; `onStderr` sees the accumulated stderr and the process (to send signals). */
function runChild(
  spec: { config: TrainerConfig; toy: ToyOptions; initSeed: number },
  onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void,
): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [toyScript, '--run', JSON.stringify(spec)], {
      env: { ...process.env, MOCA_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, (s) => child.kill(s));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('Trainer signals (child process)', () => {
  const toyOpts: ToyOptions = { dropout: 0.1, batchSize: 8 };
  const over: Partial<TrainerConfig> = { totalSteps: 30, gradAccumulation: 2, logEvery: 1, saveEvery: 10 };

  test('SIGINT finishes the step, saves a checkpoint and exits cleanly; the resume matches an uninterrupted run', async () => {
    const refDir = newDir('sig-ref');
    const ref = await runChild({ config: config(refDir, over), toy: toyOpts, initSeed: 11 });
    assert.equal(ref.code, 0, ref.stderr);

    const dir = newDir('sig');
    let sent = false;
    const interrupted = await runChild(
      { config: config(dir, over), toy: { ...toyOpts, delayMs: 15 }, initSeed: 11 },
      (text, kill) => {
        const last = [...text.matchAll(/step (\d+)\/30/g)].pop();
        if (!sent && last !== undefined && Number(last[1]) >= 4) {
          sent = true;
          kill('SIGINT');
        }
      },
    );
    assert.equal(interrupted.code, 0, interrupted.stderr);
    assert.match(interrupted.stderr, /received SIGINT: finishing the current step and saving a checkpoint/);
    const r1 = JSON.parse(interrupted.stdout) as TrainResult;
    assert.equal(r1.status, 'interrupted');
    assert.equal(r1.signal, 'SIGINT');
    assert.ok(r1.step >= 4 && r1.step < 30, `stopped at step ${r1.step}`);
    assert.equal(r1.checkpoint, path.join(dir, 'checkpoints', `step-${r1.step}`));
    assert.ok(!existsSync(path.join(dir, 'final')));
    assert.ok(existsSync(path.join(dir, 'report.html')), 'report written for the partial run');

    const resumed = await runChild({ config: config(dir, { ...over, resume: true }), toy: toyOpts, initSeed: 99 });
    assert.equal(resumed.code, 0, resumed.stderr);
    const r2 = JSON.parse(resumed.stdout) as TrainResult;
    assert.equal(r2.status, 'completed');
    assert.equal(r2.startStep, r1.step);

    const ma = readJsonl(path.join(refDir, 'metrics.jsonl'));
    const mb = readJsonl(path.join(dir, 'metrics.jsonl'));
    assert.equal(mb.length, 30);
    assert.deepEqual(
      mb.map((r) => r.loss),
      ma.map((r) => r.loss),
    );
    const fa = tensorBytes(path.join(refDir, 'final', 'model.safetensors'));
    const fb = tensorBytes(path.join(dir, 'final', 'model.safetensors'));
    for (const [n, bytes] of fa) assert.ok(bytes.equals(fb.get(n)!), `${n} differs`);
  });

  test('a second signal terminates at once', async () => {
    const dir = newDir('sig2');
    let stage = 0;
    const r = await runChild(
      { config: config(dir, { ...over, gradAccumulation: 1 }), toy: { ...toyOpts, delayMs: 1000 }, initSeed: 1 },
      (text, kill) => {
        if (stage === 0 && /step 1\/30/.test(text)) {
          stage = 1;
          kill('SIGINT');
        } else if (stage === 1 && /received SIGINT/.test(text)) {
          stage = 2;
          kill('SIGINT');
        }
      },
    );
    assert.equal(stage, 2);
    assert.equal(r.signal, 'SIGINT', `exit code ${r.code}; ${r.stderr}`);
    assert.equal(r.stdout, '');
  });
});
