// Bad rows: recorded in the ErrorLog with source, row, id, reason; skipped and counted; good rows unaffected;
// strict mode throws.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { DataError, MixedCorpus, TokenBudgetBatcher } from '../../src/data/index.js';
import { ErrorLog } from '../../src/util/output.js';
import { FIXTURES, take, tempDir, wordTokenizer } from './helpers.js';

interface Entry {
  source: string;
  row: number;
  id: string;
  line?: number;
  file: string;
  stage: string;
  reason: string;
  error: string;
}

describe('bad rows', () => {
  test('JSON Lines: every kind is logged with source/row/reason and skipped; good rows come through', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const log = new ErrorLog(join(dir, 'errors.jsonl'));
      const corpus = new MixedCorpus([`bad=${join(FIXTURES, 'bad.jsonl')}`], { errors: log });
      const batcher = new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, bufferSize: 4 });
      const batches = [];
      for await (const b of batcher) batches.push(b);
      log.close();
      const kept = batches.flatMap((b) => b.samples.map((s) => s.doc));
      assert.deepEqual(kept.map((d) => d.id).sort(), ['bad:0', 'bad:8']);
      const good = kept.find((d) => d.id === 'bad:8')!;
      assert.equal(good.images.length, 1);
      assert.equal(good.cursor.line, 10);

      const entries = readFileSync(join(dir, 'errors.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Entry);
      const summary = entries.map((e) => [e.source, e.row, e.id, e.line, e.stage, e.reason]);
      assert.deepEqual(summary, [
        ['bad', 1, 'bad:1', 2, 'read', 'invalid_json'],
        ['bad', 2, 'bad:2', 3, 'read', 'bad_field'],
        ['bad', 3, 'bad:3', 4, 'read', 'placeholder_mismatch'],
        ['bad', 4, 'bad:4', 5, 'measure', 'bad_image'],
        ['bad', 5, 'bad:5', 7, 'measure', 'bad_image'],
        ['bad', 6, 'bad:6', 8, 'read', 'bad_field'],
        ['bad', 7, 'bad:7', 9, 'read', 'bad_field'],
      ]);
      assert.ok(entries.every((e) => e.file === join(FIXTURES, 'bad.jsonl')));
      assert.match(entries[1]!.error, /text must be a string, got number 42/);
      assert.match(entries[2]!.error, /text has 1 image placeholder\(s\).* but there are 0 image\(s\)/);
      assert.match(entries[3]!.error, /image 0: Cannot read image file ".*does_not_exist.png": ENOENT/);
      assert.match(entries[4]!.error, /image 0: Cannot decode image/);
      assert.match(entries[5]!.error, /images must be a list, got the string/);

      const stats = corpus.stats();
      assert.equal(stats.documents, 4); // rows 0, 4, 5, 8 pass the read checks
      assert.deepEqual(stats.bad.byReason, {
        invalid_json: 1,
        bad_field: 3,
        placeholder_mismatch: 1,
        bad_image: 2,
      });
      assert.equal(stats.bad.total, 7);
      assert.deepEqual(stats.bad.bySource, { bad: 7 });
      assert.equal(log.count, 7);
    } finally {
      cleanup();
    }
  });

  test('Parquet: a corrupt image row is skipped by the batcher, the rest batched', async () => {
    const corpus = new MixedCorpus([`hf=${join(FIXTURES, 'interleaved.parquet')}`]);
    const batcher = new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, bufferSize: 0 });
    const ids = [];
    for await (const b of batcher) ids.push(...b.samples.map((s) => s.doc.id));
    assert.deepEqual(ids.sort(), ['hf:0', 'hf:1', 'hf:2', 'hf:3']);
    assert.deepEqual(corpus.stats().bad.byReason.bad_image, 1);
  });

  test('strict: the first bad row throws a DataError naming it', async () => {
    const corpus = new MixedCorpus([`bad=${join(FIXTURES, 'bad.jsonl')}`], { strict: true });
    assert.equal((await corpus.read())!.id, 'bad:0');
    await assert.rejects(corpus.read(), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.equal(e.reason, 'invalid_json');
      assert.equal(e.location?.row, 1);
      assert.match(e.message, /^source "bad" row 1 \(id bad:1, .*bad\.jsonl:2\): invalid JSON/);
      return true;
    });
    await corpus.close();
  });

  test('without an error sink bad rows are still counted and skipped', async () => {
    const docs = await take(new MixedCorpus([`bad=${join(FIXTURES, 'bad.jsonl')}`]));
    assert.deepEqual(
      docs.map((d) => d.row),
      [0, 4, 5, 8],
    );
  });
});
