// The MMEB harness end to end with a tiny model: JSONL and Parquet inputs give the same results, and its P@1
// equals an independent computation from `moca embed` outputs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Embedder, initModelDirectory } from '../../src/embed/index.js';
import { EmbeddingCache } from '../../src/eval/cache.js';
import { evaluateMmebDataset } from '../../src/eval/mmeb.js';

const fixture = fileURLToPath(new URL('../../../test/fixtures/mmeb', import.meta.url));
const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'moca-eval-mmeb-'));
const modelDir = path.join(dir, 'model');
const PIXELS = { minPixels: 28 * 28 * 4, maxPixels: 28 * 28 * 4 };
let embedder: Embedder;

before(async () => {
  await initModelDirectory(modelDir, { preset: 'tiny', seed: 8, initializerRange: 0.2 });
  embedder = await Embedder.load(modelDir, PIXELS);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const options = (cache: EmbeddingCache | null) => ({ imageRoot: fixture, cache, ties: 'wrong' as const, batchSize: 4 });

describe('MMEB harness', () => {
  test('JSONL and Parquet inputs give the same results', async () => {
    const a = await evaluateMmebDataset(
      'N24News',
      path.join(fixture, 'jsonl', 'N24News.jsonl'),
      embedder,
      options(null),
    );
    const b = await evaluateMmebDataset('N24News', path.join(fixture, 'parquet', 'N24News'), embedder, options(null));
    assert.equal(a.count, 8);
    assert.deepEqual(b, a);
  });

  test('P@1 equals an independent computation from `moca embed` outputs; the cache serves a second run', async () => {
    const rows = readFileSync(path.join(fixture, 'jsonl', 'N24News.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { qry_text: string; qry_img_path: string; tgt_text: string[]; tgt_img_path: string[] },
      );
    // Embed every query and candidate with the CLI (raw input form; the MMEB placeholder rewritten by hand).
    const ph = '<|vision_start|><|image_pad|><|vision_end|>';
    const input = (id: string, text: string, image: string) =>
      JSON.stringify(
        image
          ? { id, text: text.replace('<|image_1|>', ph), images: [path.join(fixture, image)] }
          : { id, text: text.replace('<|image_1|>', '') },
      );
    const lines: string[] = [];
    rows.forEach((r, i) => {
      lines.push(input(`q${i}`, r.qry_text, r.qry_img_path));
      r.tgt_text.forEach((t, j) => lines.push(input(`c${i}-${j}`, t, r.tgt_img_path[j]!)));
    });
    writeFileSync(path.join(dir, 'inputs.jsonl'), lines.join('\n') + '\n');
    const run = spawnSync(
      process.execPath,
      [
        bin,
        'embed',
        '--model',
        modelDir,
        '--input',
        path.join(dir, 'inputs.jsonl'),
        '--output',
        path.join(dir, 'out.jsonl'),
        '--min-pixels',
        String(PIXELS.minPixels),
        '--max-pixels',
        String(PIXELS.maxPixels),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const vec = new Map(
      readFileSync(path.join(dir, 'out.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string; embedding: number[] })
        .map((o) => [o.id, o.embedding]),
    );
    const dot = (a: number[], b: number[]) => a.reduce((s, x, k) => s + x * b[k]!, 0);
    let correct = 0;
    rows.forEach((r, i) => {
      const q = vec.get(`q${i}`)!;
      const scores = r.tgt_text.map((_, j) => dot(q, vec.get(`c${i}-${j}`)!));
      if (scores.slice(1).every((s) => scores[0]! > s)) correct++;
    });
    const cache = new EmbeddingCache(path.join(dir, 'cache'), 'tiny');
    const harness = await evaluateMmebDataset(
      'N24News',
      path.join(fixture, 'jsonl', 'N24News.jsonl'),
      embedder,
      options(cache),
    );
    assert.equal(harness.metrics.precision_at_1, correct / rows.length);
    assert.ok(correct > 0 && correct < rows.length, `a discriminating case: ${correct}/${rows.length} correct`);
    const again = await evaluateMmebDataset(
      'N24News',
      path.join(fixture, 'parquet', 'N24News'),
      embedder,
      options(cache),
    );
    assert.deepEqual(again.metrics, harness.metrics);
    assert.ok(cache.hits >= 8, `the second run read its embeddings from the cache (${cache.hits} hits)`);
  });
});
