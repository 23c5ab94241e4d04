// Causal language modelling (the demo's base pre-training): the chunked next-token loss equals an independent
// full-logits cross-entropy with shifted, masked labels; it depends only on earlier tokens; and a short run learns.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { initModelDirectory } from '../../src/embed/index.js';
import { loadQwen25VL } from '../../src/models/index.js';
import { Qwen2VLImageProcessor } from '../../src/processing/image/index.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import { imageTokenIds } from '../../src/processing/sequence.js';
import * as torch from '../../src/torch/index.js';
import { DocumentBatches } from '../../src/train/document-batches.js';
import { CausalLmObjective } from '../../src/train/lm/objective.js';
import { CausalLmTask } from '../../src/train/lm/task.js';
import { CPT_DEFAULTS, train } from '../../src/train/trainer.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-lm-'));
const modelDir = path.join(root, 'model');
const corpus = path.join(root, 'corpus.jsonl');
after(() => rmSync(root, { recursive: true, force: true }));

const PH = '<|vision_start|><|image_pad|><|vision_end|>';

before(async () => {
  await initModelDirectory(modelDir, { preset: 'tiny', seed: 4, minPixels: 56 * 56, maxPixels: 56 * 56 });
  mkdirSync(path.join(root, 'img'));
  await sharp({ create: { width: 56, height: 56, channels: 3, background: { r: 200, g: 40, b: 40 } } })
    .png()
    .toFile(path.join(root, 'img', 'red.png'));
  const lines: string[] = [];
  for (let k = 0; k < 12; k++) {
    lines.push(
      JSON.stringify({ text: `picture ${PH} shows a red square. the square is red.`, images: ['img/red.png'] }),
    );
    lines.push(JSON.stringify({ text: 'abc abc abc abc abc abc abc abc abc abc.' }));
  }
  writeFileSync(corpus, lines.join('\n') + '\n');
});

/** A right-padded batch of two texts (the second shorter), as tensors. */
function batchOf(tokenizer: Tokenizer) {
  const ids = imageTokenIds(tokenizer);
  const a = tokenizer.encode('one two three four five six');
  const b = tokenizer.encode('seven eight');
  const len = Math.max(a.length, b.length);
  const pad = (x: number[]) => [...x, ...Array<number>(len - x.length).fill(ids.padTokenId)];
  const mask = (x: number[]) => [...x.map(() => 1), ...Array<number>(len - x.length).fill(0)];
  return {
    inputIds: torch.tensor([pad(a), pad(b)], { dtype: 'int64' }),
    attentionMask: torch.tensor([mask(a), mask(b)], { dtype: 'int64' }),
    pixelValues: null,
    imageGridThw: [],
    raw: [a, b],
    len,
  };
}

describe('causal LM objective', () => {
  test('equals full-logits cross-entropy over shifted labels with padding ignored', () => {
    const tokenizer = Tokenizer.fromDir(modelDir);
    const { model } = loadQwen25VL(modelDir, { withLmHead: true, attention: 'causal' });
    const objective = new CausalLmObjective(model, { ignoreTargetIds: [], chunkElements: 64 });
    const batch = batchOf(tokenizer);
    torch.scope(() => {
      const ours = objective.loss(batch);
      // Reference: every logit, labels shifted by one, −100 where the target is padding.
      const hidden = model.hiddenStates(batch);
      const logits = model.lm_head!.forward(hidden).narrow(1, 0, batch.len - 1);
      const labels: number[] = [];
      let expectedRows = 0;
      for (const seq of batch.raw) {
        for (let t = 0; t < batch.len - 1; t++) {
          const ok = t + 1 < seq.length;
          labels.push(ok ? seq[t + 1]! : -100);
          if (ok) expectedRows++;
        }
      }
      const ref = torch.F.crossEntropy(logits.reshape(-1, logits.size(-1)), torch.tensor(labels, { dtype: 'int64' }), {
        ignoreIndex: -100,
      });
      assert.equal(ours.metrics.predicted_tokens, expectedRows);
      assert.ok(Math.abs(ours.loss.item() - ref.item()) < 1e-5, `${ours.loss.item()} vs ${ref.item()}`);
      // Same gradient w.r.t. the (tied) embedding matrix.
      const w = model.model.embed_tokens.weight;
      const [gOurs] = torch.grad([ours.loss], [w]);
      const [gRef] = torch.grad([ref], [w]);
      assert.ok(gOurs!.sub(gRef!).abs().max().item() < 1e-6);
    });
  });

  test('the loss at a position does not see later tokens; causal attention is required', () => {
    const tokenizer = Tokenizer.fromDir(modelDir);
    const { model } = loadQwen25VL(modelDir, { withLmHead: true, attention: 'causal' });
    const a = tokenizer.encode('one two three four five');
    const changed = [...a.slice(0, -1), (a.at(-1)! + 7) % 200];
    torch.noGrad(() =>
      torch.scope(() => {
        const h = (ids: number[]) =>
          model.hiddenStates({
            inputIds: torch.tensor([ids], { dtype: 'int64' }),
            attentionMask: torch.ones([1, ids.length], { dtype: 'int64' }),
            pixelValues: null,
            imageGridThw: [],
          });
        const x = h(a).narrow(1, 0, a.length - 1);
        const y = h(changed).narrow(1, 0, a.length - 1);
        assert.ok(x.sub(y).abs().max().item() < 1e-6, 'earlier positions unaffected by the last token');
      }),
    );
    const bidirectional = loadQwen25VL(modelDir, { withLmHead: true, attention: 'bidirectional' }).model;
    assert.throws(() => new CausalLmObjective(bidirectional, { ignoreTargetIds: [] }), /causal attention/);
  });

  test('a short run on interleaved documents learns (loss falls, accuracy rises) and exports a model', async () => {
    const out = path.join(root, 'run');
    const task = await CausalLmTask.create({
      modelDir,
      sources: [corpus],
      tokensPerBatch: 800,
      maxLength: 96,
      bufferSize: 8,
      epochs: 1000,
      seed: 5,
      errorsFile: path.join(out, 'errors.jsonl'),
    });
    try {
      const result = await train(
        task,
        {
          ...CPT_DEFAULTS,
          outputDir: out,
          lr: 5e-3,
          warmupRatio: 0,
          schedule: 'constant',
          gradAccumulation: 1,
          totalSteps: 30,
          saveEvery: 0,
          keepCheckpoints: 1,
          logEvery: 1000,
          seed: 1,
          resume: false,
        },
        { log: { write: () => undefined }, handleSignals: false },
      );
      assert.equal(result.status, 'completed');
    } finally {
      task.close();
    }
    const m = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>);
    const mean = (xs: Record<string, number>[], k: string) => xs.reduce((s, x) => s + x[k]!, 0) / xs.length;
    assert.ok(mean(m.slice(-5), 'lm_loss') < mean(m.slice(0, 5), 'lm_loss') - 1, 'loss falls by more than 1 nat');
    assert.ok(mean(m.slice(-5), 'lm_accuracy') > mean(m.slice(0, 5), 'lm_accuracy') + 0.2, 'accuracy rises');
    // Image pads are never targets: fewer predicted tokens than real tokens minus one per document.
    assert.ok(m.every((r) => r.predicted_tokens! < r.tokens!));
    assert.ok(readFileSync(path.join(out, 'final', 'config.json'), 'utf8').includes('"model_type"'));
  });
});

describe('DocumentBatches (shared by the causal LM and MoCa stage 1)', () => {
  async function readAll(shard?: { rank: number; worldSize: number }) {
    const tokenizer = Tokenizer.fromDir(modelDir);
    const imageProcessor = await Qwen2VLImageProcessor.fromDir(modelDir);
    const batches = new DocumentBatches(tokenizer, imageProcessor, {
      sources: [corpus],
      errorsFile: path.join(root, `errors-${shard?.rank ?? 'all'}.jsonl`),
      tokensPerBatch: 64,
      maxLength: 32,
      seed: 7,
      mergeSize: 2,
      device: 'cpu',
      pixelDtype: 'float32',
      ...(shard ? { shard } : {}),
    });
    const out = new Map<number, number[]>();
    try {
      for (let b = await batches.next(); b !== null; b = await batches.next()) {
        out.set(b.index, b.inputIds.flatten().toArray() as number[]);
        b.inputIds.dispose();
        b.attentionMask.dispose();
        b.pixelValues?.dispose();
      }
    } finally {
      batches.close();
    }
    return out;
  }

  test('two shards read disjoint micro-batches (even / odd stream indices) that together are the whole stream', async () => {
    const all = await readAll();
    assert.ok(all.size >= 4, `${all.size} micro-batches`);
    const [r0, r1] = [await readAll({ rank: 0, worldSize: 2 }), await readAll({ rank: 1, worldSize: 2 })];
    assert.ok([...r0.keys()].every((i) => i % 2 === 0));
    assert.ok([...r1.keys()].every((i) => i % 2 === 1));
    assert.equal(r0.size + r1.size, all.size);
    for (const [i, ids] of [...r0, ...r1]) assert.deepEqual(ids, all.get(i), `micro-batch ${i}`);
  });

  test('a rank outside the world is refused', async () => {
    await assert.rejects(readAll({ rank: 2, worldSize: 2 }), /shard rank 2 is outside a world of 2/);
  });
});
