// Stage 2 end to end on generated pairs: training accuracy (positive ranked first) rises well above chance;
// GradCache trains the same way as the plain loss.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { initModelDirectory } from '../../src/embed/index.js';
import { ClTask, type ClTaskOptions } from '../../src/train/cl/task.js';
import { CL_DEFAULTS, train, type TrainerConfig } from '../../src/train/trainer.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-cl-run-'));
const modelDir = path.join(root, 'model');
after(() => rmSync(root, { recursive: true, force: true }));

const COLOURS = ['red', 'green', 'blue', 'yellow', 'black', 'white', 'pink', 'brown'];
const THINGS = ['cat', 'car', 'tree', 'lamp', 'boat', 'shoe', 'bird', 'cup'];

before(async () => {
  await initModelDirectory(modelDir, { preset: 'tiny', seed: 4 });
  // Subset A (MMEB-style columns, negatives as Python list literals) and subset B (text pairs).
  const a: string[] = [];
  const b: string[] = [];
  COLOURS.forEach((c, i) => {
    THINGS.forEach((t, j) => {
      const wrong = COLOURS[(i + 1) % COLOURS.length]!;
      const wrong2 = COLOURS[(i + 3) % COLOURS.length]!;
      if ((i + j) % 2 === 0) {
        a.push(
          JSON.stringify({
            qry: `which ${t} is ${c}?`,
            qry_image_path: '',
            pos_text: `a ${c} ${t}`,
            pos_image_path: '',
            neg_text: `['a ${wrong} ${t}', "a ${wrong2} ${t}"]`,
            neg_image_path: "['', '']",
          }),
        );
      } else {
        b.push(
          JSON.stringify({
            query: `find the ${c} ${t}`,
            positive: `${t}: ${c}`,
            negatives: [`${t}: ${wrong}`, `${t}: ${wrong2}`],
          }),
        );
      }
    });
  });
  writeFileSync(path.join(root, 'a.jsonl'), a.join('\n') + '\n');
  writeFileSync(path.join(root, 'b.jsonl'), b.join('\n') + '\n');
});

function options(out: string, gradCacheChunk: number | null): ClTaskOptions {
  return {
    modelDir,
    subsets: [`a=${path.join(root, 'a.jsonl')}`, `b=${path.join(root, 'b.jsonl')}`],
    batchSize: 8,
    hardNegatives: 2,
    batching: 'task',
    loss: { temperature: 0.05 },
    gradCacheChunk,
    maxLength: 64,
    epochs: 20,
    seed: 1,
    errorsFile: path.join(out, 'errors.jsonl'),
  };
}

function config(out: string, steps: number): TrainerConfig {
  return {
    ...CL_DEFAULTS,
    outputDir: out,
    lr: 3e-3,
    // No warmup: runs of different lengths then share their learning rates step by step.
    warmupRatio: 0,
    schedule: 'constant',
    totalSteps: steps,
    saveEvery: 0,
    keepCheckpoints: 1,
    logEvery: 1000,
    seed: 5,
    resume: false,
  };
}

const quiet = { log: { write: () => undefined }, handleSignals: false };

function metrics(out: string): Record<string, number>[] {
  return readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

describe('stage 2 end to end (tiny model, generated pairs, task-aware batches)', () => {
  test('training accuracy rises well above chance; GradCache follows the same losses', async () => {
    const plainOut = path.join(root, 'plain');
    const task = await ClTask.create(options(plainOut, null));
    // Chance: 1 positive among 8 in-batch positives + 2 own negatives.
    const result = await train(task, config(plainOut, 30), quiet);
    task.close();
    assert.equal(result.status, 'completed');
    const m = metrics(plainOut);
    const mean = (xs: Record<string, number>[], k: string) => xs.reduce((s, x) => s + x[k]!, 0) / xs.length;
    const late = mean(m.slice(-8), 'accuracy');
    assert.ok(late > 0.5, `late accuracy ${late} (chance 0.1)`);
    assert.ok(mean(m.slice(-8), 'loss') < mean(m.slice(0, 4), 'loss'));

    const gcOut = path.join(root, 'gc');
    const gcTask = await ClTask.create(options(gcOut, 3));
    await train(gcTask, config(gcOut, 6), quiet);
    gcTask.close();
    const gcLosses = metrics(gcOut).map((r) => r.loss!);
    const plainLosses = m.slice(0, 6).map((r) => r.loss!);
    gcLosses.forEach((l, i) => {
      assert.ok(
        Math.abs(l - plainLosses[i]!) < 1e-3 * Math.max(1, plainLosses[i]!),
        `step ${i + 1}: ${l} vs ${plainLosses[i]}`,
      );
    });
  });
});
