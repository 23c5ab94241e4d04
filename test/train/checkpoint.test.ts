import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import {
  CheckpointError,
  latestCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  readTrainerState,
  resolveCheckpoint,
  writeCheckpointDir,
} from '../../src/train/checkpoint.js';
import { train, type TrainerConfig } from '../../src/train/trainer.js';
import { readJsonl, tensorBytes, ToyTask, type ToyOptions } from './toy-task.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-ckpt-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (name: string): string => path.join(root, `${name}-${dirCount++}`);

function config(outputDir: string, over: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    outputDir,
    lr: 1e-2,
    weightDecay: 0.01,
    betas: [0.9, 0.999],
    eps: 1e-8,
    warmupRatio: 0.2,
    schedule: 'linear',
    totalSteps: 10,
    gradAccumulation: 2,
    maxGradNorm: 1.0,
    saveEvery: 2,
    keepCheckpoints: 2,
    logEvery: 1000,
    seed: 3,
    resume: false,
    ...over,
  };
}

const quiet = { log: { write: () => true }, handleSignals: false };

function toy(initSeed: number, options: ToyOptions = {}): ToyTask {
  torch.manualSeed(initSeed);
  return new ToyTask({ dropout: 0.1, ...options });
}

/** Entries of a checkpoints directory other than complete step-<N> directories and the pointer. */
function strays(dir: string): string[] {
  return readdirSync(dir).filter((n) => !/^step-\d+$/.test(n) && n !== 'latest');
}

/** A fake checkpoint directory content (enough for listCheckpoints / readTrainerState's presence checks). */
function fakeWriter(step: number): (tmp: string) => void {
  return (tmp) => {
    writeFileSync(path.join(tmp, 'params.safetensors'), 'p');
    writeFileSync(path.join(tmp, 'optimizer.safetensors'), 'o');
    writeFileSync(path.join(tmp, 'trainer_state.json'), JSON.stringify({ step }));
  };
}

describe('checkpoint directories', () => {
  test('the newest keepCheckpoints are kept; latest points at the newest; the state file describes the run', async () => {
    const dir = newDir('keep');
    await train(toy(1), config(dir), quiet);
    const ck = path.join(dir, 'checkpoints');
    assert.deepEqual(
      listCheckpoints(ck).map((c) => c.name),
      ['step-8', 'step-10'],
    );
    assert.equal(readFileSync(path.join(ck, 'latest'), 'utf8'), 'step-10\n');
    assert.deepEqual(strays(ck), []);
    const st = readTrainerState(path.join(ck, 'step-10'));
    assert.equal(st.step, 10);
    assert.equal(st.micro_batches, 20);
    assert.deepEqual(st.data_state, { next: 20 });
    assert.deepEqual(st.param_names, ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    assert.deepEqual(st.schedule, {
      kind: 'linear',
      base_lr: 0.01,
      warmup_ratio: 0.2,
      warmup_steps: 2,
      start_step: 0,
      total_steps: 10,
    });
    assert.equal(st.scheduler.lastStep, 10);
    assert.equal(Buffer.from(st.rng.torch_cpu, 'base64').length, torch.getRngState().numel());
    assert.equal(st.config.gradAccumulation, 2);
    assert.equal(st.metrics_summary.steps, 10);
    const params = tensorBytes(path.join(ck, 'step-10', 'params.safetensors'));
    assert.deepEqual([...params.keys()].sort(), ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']);
  });

  test('a crash in the middle of a checkpoint write leaves the previous checkpoint intact and no half checkpoint', async () => {
    const straightDir = newDir('crash-ref');
    await train(toy(2), config(straightDir, { totalSteps: 6 }), quiet);

    const dir = newDir('crash');
    let optimizerWrites = 0;
    await assert.rejects(
      train(toy(2), config(dir, { totalSteps: 6 }), {
        ...quiet,
        checkpointFault: (stage) => {
          if (stage === 'optimizer' && ++optimizerWrites === 2) throw new Error('injected: disk full');
        },
      }),
      /injected: disk full/,
    );
    const ck = path.join(dir, 'checkpoints');
    assert.deepEqual(
      listCheckpoints(ck).map((c) => c.step),
      [2],
    );
    assert.deepEqual(strays(ck), [], 'no temporary directory left behind');
    assert.equal(latestCheckpoint(ck)!.name, 'step-2');
    assert.equal(readJsonl(path.join(dir, 'metrics.jsonl')).length, 4);

    // Resuming from the surviving checkpoint redoes steps 3-4 and ends exactly where a run without the crash did.
    const r = await train(toy(77), config(dir, { totalSteps: 6, resume: true }), quiet);
    assert.equal(r.startStep, 2);
    assert.equal(r.step, 6);
    assert.deepEqual(
      readJsonl(path.join(dir, 'metrics.jsonl')).map((x) => x.loss),
      readJsonl(path.join(straightDir, 'metrics.jsonl')).map((x) => x.loss),
    );
    const a = tensorBytes(path.join(straightDir, 'final', 'model.safetensors'));
    const b = tensorBytes(path.join(dir, 'final', 'model.safetensors'));
    for (const [n, bytes] of a) assert.ok(bytes.equals(b.get(n)!), `${n} differs`);
  });

  test('writeCheckpointDir: a failure at any stage before the rename keeps the old state; after it, the new dir is whole', () => {
    const ck = path.join(newDir('stages'), 'checkpoints');
    writeCheckpointDir(ck, 1, fakeWriter(1));
    for (const stage of ['rename', 'write'] as const) {
      assert.throws(
        () =>
          writeCheckpointDir(
            ck,
            2,
            (tmp) => {
              writeFileSync(path.join(tmp, 'params.safetensors'), 'half');
              if (stage === 'write') throw new Error('boom');
            },
            {
              fault: (s) => {
                if (s === stage) throw new Error('boom');
              },
            },
          ),
        /boom/,
      );
      assert.deepEqual(
        listCheckpoints(ck).map((c) => c.step),
        [1],
      );
      assert.deepEqual(strays(ck), []);
      assert.equal(latestCheckpoint(ck)!.step, 1);
    }
    // Failing to move the pointer: the new directory is complete, the pointer still names the old one.
    assert.throws(
      () =>
        writeCheckpointDir(ck, 2, fakeWriter(2), {
          fault: (s) => {
            if (s === 'latest') throw new Error('boom');
          },
        }),
      /boom/,
    );
    assert.deepEqual(
      listCheckpoints(ck).map((c) => c.step),
      [1, 2],
    );
    assert.equal(latestCheckpoint(ck)!.step, 1);
    // Rewriting an existing step replaces it.
    writeCheckpointDir(ck, 2, (tmp) => {
      fakeWriter(2)(tmp);
      writeFileSync(path.join(tmp, 'marker'), 'new');
    });
    assert.ok(existsSync(path.join(ck, 'step-2', 'marker')));
    assert.equal(latestCheckpoint(ck)!.step, 2);
    assert.deepEqual(strays(ck), []);
  });

  test('temporaries of a killed writer are ignored and cleaned; a stale pointer falls back to the highest step', async () => {
    const dir = newDir('killed');
    await train(toy(3), config(dir, { totalSteps: 4 }), quiet);
    const ck = path.join(dir, 'checkpoints');
    // What a process killed mid-write leaves: a hidden temporary with a partial file, and a half-swapped old dir.
    mkdirSync(path.join(ck, '.tmp-step-6-4242-1'));
    writeFileSync(path.join(ck, '.tmp-step-6-4242-1', 'params.safetensors'), 'partial');
    mkdirSync(path.join(ck, '.old-step-2-4242-1'));
    assert.deepEqual(
      listCheckpoints(ck).map((c) => c.step),
      [2, 4],
    );
    const r = await train(toy(9), config(dir, { totalSteps: 6, resume: true }), quiet);
    assert.equal(r.startStep, 4);
    assert.deepEqual(strays(ck), []);

    writeFileSync(path.join(ck, 'latest'), 'step-99\n');
    assert.equal(latestCheckpoint(ck)!.step, 6);
  });

  test('pruning never deletes checkpoints of later steps (an abandoned branch)', () => {
    const ck = path.join(newDir('prune'), 'checkpoints');
    for (const s of [1, 2, 3, 10]) writeCheckpointDir(ck, s, fakeWriter(s));
    assert.deepEqual(pruneCheckpoints(ck, 1, 3), ['step-1', 'step-2']);
    assert.deepEqual(
      listCheckpoints(ck).map((c) => c.step),
      [3, 10],
    );
    assert.deepEqual(pruneCheckpoints(ck, 0, 10), []);
  });

  test('resolveCheckpoint accepts a step directory, a checkpoints directory or a run directory', async () => {
    const dir = newDir('resolve');
    await train(toy(1), config(dir, { totalSteps: 4 }), quiet);
    const step4 = path.join(dir, 'checkpoints', 'step-4');
    assert.equal(resolveCheckpoint(dir).dir, step4);
    assert.equal(resolveCheckpoint(path.join(dir, 'checkpoints')).dir, step4);
    assert.equal(resolveCheckpoint(path.join(dir, 'checkpoints', 'step-2')).step, 2);
    assert.throws(() => resolveCheckpoint(path.join(dir, 'nope')), /is not a directory/);
    assert.throws(() => resolveCheckpoint(path.join(dir, 'final')), /no checkpoint found at/);

    // Resume from an explicit checkpoint into a new output directory.
    const other = newDir('resolve-other');
    const r = await train(toy(1), config(other, { totalSteps: 6, resume: step4 }), quiet);
    assert.equal(r.startStep, 4);
    assert.deepEqual(
      listCheckpoints(path.join(other, 'checkpoints')).map((c) => c.step),
      [6],
    );
  });

  test('resuming into a task whose parameters differ fails with the names and shapes', async () => {
    const dir = newDir('mismatch');
    await train(toy(1), config(dir, { totalSteps: 2 }), quiet);
    await assert.rejects(
      train(toy(1, { hidden: 12 }), config(dir, { totalSteps: 4, resume: true }), quiet),
      (e: unknown) =>
        e instanceof CheckpointError &&
        /fc1\.weight: checkpoint shape \[16, 4\] vs parameter \[12, 4\]/.test(e.message) &&
        /fc2\.bias/.test(e.message) === false,
    );
    await assert.rejects(
      train(toy(1, { prefix: 'model.' }), config(dir, { totalSteps: 4, resume: true }), quiet),
      (e: unknown) =>
        e instanceof CheckpointError &&
        /missing in the checkpoint \(4\): model\.fc1\.weight/.test(e.message) &&
        /not parameters of the task \(4\): fc1\.bias, fc1\.weight/.test(e.message),
    );
    await assert.rejects(
      train(toy(1, { dtype: 'float64' }), config(dir, { totalSteps: 4, resume: true }), quiet),
      /fc1\.weight: checkpoint dtype float32 vs parameter float64/,
    );
  });
});
