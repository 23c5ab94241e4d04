// The generated evaluation sets through the real harness with a real (tiny, random) model: every query and
// candidate of a few rows — scenes, crops down to 28 px, document pages, text — is tokenised, decoded, resized and
// embedded without a failure, from the harness's default image roots.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { generateWorld, type WorldManifest } from '../../../src/data/synthetic/index.js';
import { Embedder, initModelDirectory } from '../../../src/embed/index.js';
import { evaluateBeirDataset, readBeirDataset } from '../../../src/eval/beir.js';
import { evaluateMmebDataset } from '../../../src/eval/mmeb.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moca-world-harness-'));
const world = path.join(dir, 'world');
let manifest: WorldManifest;
let embedder: Embedder;

before(async () => {
  manifest = await generateWorld(world, { seed: 3, scale: 'quick' });
  const model = path.join(dir, 'model');
  await initModelDirectory(model, { preset: 'tiny', seed: 8 });
  embedder = await Embedder.load(model, { minPixels: 28 * 28, maxPixels: 28 * 28 * 16 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('generated world through the evaluation harness', () => {
  test('MMEB: the first row of each dataset embeds and scores without failures', async () => {
    const mmeb = path.join(world, manifest.files.mmeb);
    for (const d of manifest.counts.eval) {
      const errors: string[] = [];
      const result = await evaluateMmebDataset(d.name, path.join(mmeb, `${d.name}.jsonl`), embedder, {
        imageRoot: mmeb,
        cache: null,
        ties: 'wrong',
        batchSize: 8,
        limit: 1,
        onError: (row, message) => errors.push(`row ${row}: ${message}`),
      });
      assert.deepEqual(errors, [], d.name);
      assert.equal(result.count, 1, d.name);
      const p = result.metrics.precision_at_1!;
      assert.ok(p >= 0 && p <= 1, `${d.name}: ${p}`);
    }
  });

  test('BEIR: page images and text queries embed; metrics are finite', async () => {
    const full = await readBeirDataset(path.join(world, manifest.files.beir));
    // Four queries against their relevant pages and four other pages (embedding is the slow part).
    const queries = full.queries.slice(0, 4);
    const relevant = new Set(queries.flatMap((q) => [...full.qrels.get(q.id)!.keys()]));
    const corpus = [
      ...full.corpus.filter((d) => relevant.has(d.id)),
      ...full.corpus.filter((d) => !relevant.has(d.id)).slice(0, 4),
    ];
    const data = { corpus, queries, qrels: new Map(queries.map((q) => [q.id, full.qrels.get(q.id)!])) };
    const result = await evaluateBeirDataset(data, embedder, { cache: null, batchSize: 8 });
    assert.deepEqual(result.failedDocuments, []);
    assert.deepEqual(result.failedQueries, []);
    assert.equal(result.queries, 4);
    assert.ok(Number.isFinite(result.metrics.ndcg_cut_5!));
  });
});
