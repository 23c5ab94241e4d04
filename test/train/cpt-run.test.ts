// Stage 1 end to end on generated data: the losses fall, MLM accuracy rises, and a run resumed from a
// checkpoint continues exactly like an uninterrupted one.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { initModelDirectory } from '../../src/embed/index.js';
import { CptTask, type CptTaskOptions } from '../../src/train/cpt/task.js';
import { CPT_DEFAULTS, train, type TrainerConfig } from '../../src/train/trainer.js';
import * as torch from '../../src/torch/index.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-cpt-run-'));
const modelDir = path.join(root, 'model');
const corpus = path.join(root, 'corpus.jsonl');
after(() => rmSync(root, { recursive: true, force: true }));

const PH = '<|vision_start|><|image_pad|><|vision_end|>';
const COLOURS: [string, [number, number, number]][] = [
  ['red', [220, 30, 30]],
  ['green', [30, 200, 60]],
  ['blue', [40, 60, 230]],
  ['yellow', [230, 220, 40]],
];

before(async () => {
  await initModelDirectory(modelDir, { preset: 'tiny', seed: 2 });
  mkdirSync(path.join(root, 'img'));
  const lines: string[] = [];
  for (const [name, rgb] of COLOURS) {
    const file = `img/${name}.png`;
    await sharp({ create: { width: 56, height: 56, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
      .png()
      .toFile(path.join(root, file));
    // Repetitive text: a tiny model can learn to fill in masked characters.
    for (let k = 0; k < 6; k++) {
      lines.push(
        JSON.stringify({ text: `the ${name} square ${PH} is ${name}. the ${name} square is ${name}.`, images: [file] }),
      );
      lines.push(JSON.stringify({ text: `a ${name} thing is a ${name} thing and only a ${name} thing.` }));
    }
  }
  writeFileSync(corpus, lines.join('\n') + '\n');
});

function taskOptions(outputDir: string): CptTaskOptions {
  return {
    modelDir,
    sources: [corpus],
    objective: { mlmProb: 0.4, maeProb: 0.5, maeWeight: 0.1, useMlm: true, useMae: true },
    tokensPerBatch: 1200,
    maxLength: 128,
    bufferSize: 16,
    epochs: 1000,
    seed: 3,
    errorsFile: path.join(outputDir, 'errors.jsonl'),
    minPixels: 28 * 28 * 4,
    maxPixels: 56 * 56,
  };
}

function config(outputDir: string, totalSteps: number, resume: boolean): TrainerConfig {
  return {
    ...CPT_DEFAULTS,
    outputDir,
    lr: 3e-3,
    warmupRatio: 0.05,
    schedule: 'constant',
    gradAccumulation: 1,
    totalSteps,
    saveEvery: 0,
    keepCheckpoints: 2,
    logEvery: 1000,
    seed: 11,
    resume,
  };
}

const quiet = { log: { write: () => undefined }, handleSignals: false };

function metrics(outputDir: string): Record<string, number>[] {
  return readFileSync(path.join(outputDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

describe('stage 1 end to end (tiny model, generated corpus)', () => {
  test('MLM and MAE losses fall and MLM accuracy rises', async () => {
    const out = path.join(root, 'learn');
    const task = await CptTask.create(taskOptions(out));
    try {
      const result = await train(task, config(out, 40, false), quiet);
      assert.equal(result.status, 'completed');
    } finally {
      task.close();
    }
    const m = metrics(out);
    const mean = (xs: Record<string, number>[], k: string) => xs.reduce((s, x) => s + x[k]!, 0) / xs.length;
    const first = m.slice(0, 8);
    const last = m.slice(-8);
    assert.ok(
      mean(last, 'mlm_loss') < mean(first, 'mlm_loss') - 0.5,
      `mlm ${mean(first, 'mlm_loss')} → ${mean(last, 'mlm_loss')}`,
    );
    assert.ok(
      mean(last, 'mae_loss') < mean(first, 'mae_loss'),
      `mae ${mean(first, 'mae_loss')} → ${mean(last, 'mae_loss')}`,
    );
    // From chance (the first updates) to well above it.
    assert.ok(mean(last, 'mlm_accuracy') > mean(m.slice(0, 3), 'mlm_accuracy') + 0.1, 'accuracy rises');
    // The exported model is an embedding model with <|mask|> in its tokenizer.
    const tokenizer = JSON.parse(readFileSync(path.join(out, 'final', 'tokenizer.json'), 'utf8')) as {
      added_tokens: { content: string }[];
    };
    assert.ok(tokenizer.added_tokens.some((t) => t.content === '<|mask|>'));
  });

  test('resume: N steps + resume + N steps equals 2N steps straight (losses and weights)', async () => {
    const n = 5;
    const straight = path.join(root, 'straight');
    const resumed = path.join(root, 'resumed');
    const a = await CptTask.create(taskOptions(straight));
    await train(a, config(straight, 2 * n, false), quiet);
    a.close();

    const b1 = await CptTask.create(taskOptions(resumed));
    const first = await train(b1, config(resumed, 2 * n, false), {
      ...quiet,
      onStep: (record, trainer) => {
        if (record.step === n) trainer.requestStop();
      },
    });
    b1.close();
    assert.equal(first.status, 'interrupted');
    assert.equal(first.step, n);

    const b2 = await CptTask.create(taskOptions(resumed));
    const second = await train(b2, config(resumed, 2 * n, true), quiet);
    b2.close();
    assert.equal(second.status, 'completed');

    const la = metrics(straight).map((r) => r.loss);
    const lb = metrics(resumed).map((r) => r.loss);
    assert.deepEqual(lb, la, 'identical loss sequence');
    const wa = torch.loadSafetensors(path.join(straight, 'final', 'model.safetensors'));
    const wb = torch.loadSafetensors(path.join(resumed, 'final', 'model.safetensors'));
    for (const [name, t] of wa) assert.ok(t.equal(wb.get(name)!), `${name} differs`);
  });
});
