import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'moca-cli-train-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function moca(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stderr: r.stderr };
}

before(() => {
  assert.equal(moca('init', '--preset', 'tiny', '--output', 'model').status, 0);
  const docs = Array.from({ length: 12 }, (_, i) =>
    JSON.stringify({ text: `document ${i}: the quick brown fox ${i % 3}` }),
  );
  writeFileSync(path.join(dir, 'docs.jsonl'), [...docs, 'not json'].join('\n') + '\n');
  const pairs = Array.from({ length: 8 }, (_, i) =>
    JSON.stringify({
      query: `question ${i}`,
      positive: `answer ${i}`,
      negatives: [`answer ${i + 1}`, `answer ${i + 2}`],
    }),
  );
  writeFileSync(path.join(dir, 'pairs.jsonl'), pairs.join('\n') + '\n');
});

describe('moca train', () => {
  test('cpt: trains, records the bad row, writes metrics, report, checkpoint and an embedding model', () => {
    const r = moca(
      'train',
      'cpt',
      '--model',
      'model',
      '--data',
      'docs.jsonl',
      '--output',
      'cpt',
      '--max-steps',
      '2',
      '--grad-accumulation',
      '1',
      '--tokens-per-batch',
      '1200',
      '--max-length',
      '64',
      '--buffer-size',
      '4',
      '--lr',
      '1e-3',
      '--epochs',
      '5',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /completed at step 2\/2/);
    assert.match(r.stderr, /\d+ bad rows/); // the bad line is met again on each pass over the data
    for (const f of ['metrics.jsonl', 'report.html', 'errors.jsonl', 'final/model.safetensors', 'checkpoints/latest']) {
      assert.ok(existsSync(path.join(dir, 'cpt', f)), f);
    }
    assert.equal(
      readFileSync(path.join(dir, 'cpt', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
      2,
    );
  });

  test('cl: fine-tunes the stage-1 output (GradCache) and exports a model', () => {
    const r = moca(
      'train',
      'cl',
      '--model',
      'cpt/final',
      '--data',
      'qa=pairs.jsonl',
      '--output',
      'cl',
      '--batch-size',
      '4',
      '--epochs',
      '2',
      '--grad-cache',
      '--chunk-size',
      '2',
      '--lr',
      '1e-3',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /completed at step 4\/4/);
    assert.ok(existsSync(path.join(dir, 'cl', 'final', 'model.safetensors')));
  });

  test('bad options fail with a one-line reason', () => {
    const a = moca(
      'train',
      'cl',
      '--model',
      'model',
      '--data',
      'qa=pairs.jsonl',
      '--output',
      'x',
      '--batching',
      'random',
    );
    assert.notEqual(a.status, 0);
    assert.match(a.stderr, /--batching/);
    const b = moca('train', 'cpt', '--model', 'model', '--data', 'docs.jsonl', '--output', 'y', '--no-mlm', '--no-mae');
    assert.equal(b.status, 1);
    assert.match(b.stderr, /leave nothing to train/);
  });
});
