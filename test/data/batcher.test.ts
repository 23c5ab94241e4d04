// Token-budget batcher: MoCa's thresholds and micro-batch sizes, bucket assignment, nothing dropped, determinism,
// and exact continuation after state/restore (in every phase: streaming, draining, flushing the remainders).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  bucketIndex,
  bucketThresholds,
  microBatchSize,
  MixedCorpus,
  TokenBudgetBatcher,
  type MicroBatch,
  type TokenBudgetBatcherOptions,
} from '../../src/data/index.js';
import { batchKey, FIXTURES, tempDir, wordTokenizer, writeWordCorpus } from './helpers.js';

/** Python: sorted(set(32 * int(1.3 ** i) for i in range(100)))[:25], and its length. */
const PY_THRESHOLDS_25 = [
  32, 64, 96, 128, 192, 256, 320, 416, 544, 736, 960, 1248, 1632, 2112, 2752, 3584, 4672, 6080, 7904, 10272, 13344,
  17344, 22560, 29344, 38144,
];
const PY_THRESHOLDS_LENGTH = 97;

describe('buckets', () => {
  test("thresholds and micro-batch sizes are MoCa's", () => {
    const t = bucketThresholds();
    assert.equal(t.length, PY_THRESHOLDS_LENGTH);
    assert.deepEqual(t.slice(0, 25), PY_THRESHOLDS_25);
    assert.deepEqual(
      t.slice(0, 13).map((x) => microBatchSize(x)),
      [400, 200, 133, 100, 66, 50, 40, 30, 23, 17, 13, 10, 7],
    );
    assert.equal(microBatchSize(t[13]!), 6);
  });

  test('a cost goes to the first threshold ≥ it', () => {
    const t = bucketThresholds();
    const cases: [number, number][] = [
      [0, 32],
      [1, 32],
      [32, 32],
      [33, 64],
      [1248, 1248],
      [1249, 1632],
      [1280, 1632], // clipped costs land in 1632 (7 per micro-batch)
    ];
    for (const [cost, threshold] of cases) assert.equal(t[bucketIndex(cost, t)], threshold, `cost ${cost}`);
    assert.equal(bucketIndex(t.at(-1)! + 1, t), -1);
  });
});

let dir = '';
let cleanup = (): void => {};
let specs: string[] = [];

before(() => {
  ({ dir, cleanup } = tempDir());
  // Costs (words) from 1 to 400, clipped at maxLength 320 below; every 9th row of "b" has a 1×1 image (+6).
  const a = writeWordCorpus(dir, 'a', 700, (i) => 1 + ((i * 37) % 400));
  const b = writeWordCorpus(dir, 'b', 500, (i) => 1 + ((i * 53) % 150), { image: (i) => i % 9 === 0 });
  specs = [`a=${a}@2`, `b=${b}@1`, `hf=${join(FIXTURES, 'interleaved.parquet')}@0.2`];
});
after(() => cleanup());

const OPTIONS: Omit<TokenBudgetBatcherOptions, 'tokenizer'> = {
  tokensPerBatch: 1280, // capacities 40, 20, 13, 10, 6, 5, 4 for thresholds 32 … 320
  maxLength: 320,
  bufferSize: 64,
  seed: 3,
};

function makeBatcher(options: Partial<TokenBudgetBatcherOptions> = {}, corpusSeed = 1): TokenBudgetBatcher {
  const corpus = new MixedCorpus(specs, { seed: corpusSeed });
  return new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, ...OPTIONS, ...options });
}

async function drain(b: TokenBudgetBatcher, n = Infinity): Promise<MicroBatch[]> {
  const out: MicroBatch[] = [];
  while (out.length < n) {
    const x = await b.next();
    if (x === null) break;
    out.push(x);
  }
  return out;
}

describe('TokenBudgetBatcher', () => {
  let full: MicroBatch[] = [];

  before(async () => {
    const b = makeBatcher();
    full = await drain(b);
    await b.corpus.close();
  });

  test('every good document lands in exactly one batch; full batches, remainders only at the end', () => {
    const ids = full.flatMap((b) => b.samples.map((s) => s.doc.id));
    assert.equal(ids.length, 700 + 500 + 4); // the Parquet fixture's corrupt-image row is skipped
    assert.equal(new Set(ids).size, ids.length);
    const firstPartial = full.findIndex((b) => b.partial);
    assert.ok(firstPartial > 0);
    full.forEach((b, i) => {
      assert.equal(b.index, i);
      if (i < firstPartial) assert.equal(b.samples.length, b.capacity, `batch ${i} is full`);
      else {
        assert.ok(b.partial && b.samples.length > 0 && b.samples.length < b.capacity, `batch ${i} is a remainder`);
      }
    });
    const tail = full.slice(firstPartial).map((b) => b.threshold);
    assert.deepEqual(
      tail,
      [...new Set(tail)].sort((x, y) => x - y),
      'one remainder per bucket, ascending',
    );
  });

  test('batch sizes follow the bucket, costs fit their bucket', () => {
    const t = bucketThresholds();
    for (const b of full) {
      assert.equal(b.threshold, t[b.bucket]);
      assert.equal(b.capacity, Math.floor(1280 / b.threshold));
      for (const s of b.samples) {
        assert.ok(s.cost <= b.threshold && (b.bucket === 0 || s.cost > t[b.bucket - 1]!), `${s.doc.id} ${s.cost}`);
        assert.ok(s.cost <= 320);
      }
    }
    assert.deepEqual(
      [...new Set(full.map((b) => b.threshold))].sort((x, y) => x - y),
      [32, 64, 96, 128, 192, 256, 320],
    );
  });

  test('deterministic for a seed; the shuffle buffer reorders; another seed differs', async () => {
    const again = await drain(makeBatcher());
    assert.deepEqual(again.map(batchKey), full.map(batchKey));
    const other = await drain(makeBatcher({ seed: 4 }));
    assert.notDeepEqual(other.map(batchKey), full.map(batchKey));
    // Without a buffer, documents stay in stream order inside each bucket.
    const plain = await drain(makeBatcher({ bufferSize: 0 }));
    const rowsA = plain.flatMap((b) => b.samples.filter((s) => s.doc.source === 'a').map((s) => s.doc.row));
    const shuffledA = full.flatMap((b) => b.samples.filter((s) => s.doc.source === 'a').map((s) => s.doc.row));
    for (const bt of plain) {
      const rows = bt.samples.filter((s) => s.doc.source === 'a').map((s) => s.doc.row);
      assert.deepEqual(
        rows,
        [...rows].sort((x, y) => x - y),
      );
    }
    assert.equal(rowsA.length, shuffledA.length);
    assert.notDeepEqual(rowsA, shuffledA);
  });

  test('state/restore at any point continues with exactly the same batches', async () => {
    const n = full.length;
    const splits = [0, 1, 2, Math.floor(n / 3), Math.floor(n / 2), n - 12, n - 8, n - 5, n - 3, n - 2, n - 1, n];
    for (const k of splits) {
      const first = makeBatcher();
      const head = await drain(first, k);
      const saved = JSON.parse(JSON.stringify(first.state())) as unknown;
      await first.corpus.close();
      const second = makeBatcher();
      await second.restore(saved);
      const tail = await drain(second);
      await second.corpus.close();
      assert.deepEqual([...head, ...tail].map(batchKey), full.map(batchKey), `split after ${k} batches`);
      // Measured costs survive the round trip.
      assert.deepEqual(
        tail.map((b) => b.samples.map((s) => s.cost)),
        full.slice(k).map((b) => b.samples.map((s) => s.cost)),
      );
      const stats = second.stats();
      assert.equal(stats.batches, n);
      assert.equal(stats.samples, 700 + 500 + 4);
    }
  });

  test('the saved state holds locators, not document bytes', async () => {
    const b = makeBatcher();
    await drain(b, 5);
    const state = b.state();
    await b.corpus.close();
    const waiting = state.buffer.length + state.pools.reduce((s, p) => s + p.entries.length, 0);
    assert.equal(state.buffer.length, 64);
    assert.ok(waiting > 64);
    assert.ok(JSON.stringify(state).length < waiting * 400, `${JSON.stringify(state).length} bytes`);
    assert.deepEqual(Object.keys(state.buffer[0]!).sort(), [
      'cost',
      'cursor',
      'epoch',
      'id',
      'imageSizes',
      'imageTokens',
      'nImages',
      'source',
      'textTokens',
    ]);
  });

  test('restore refuses other settings and changed data', async () => {
    const b = makeBatcher();
    await drain(b, 3);
    const saved = b.state();
    await b.corpus.close();
    await assert.rejects(makeBatcher({ bufferSize: 32 }).restore(saved), /same settings are needed/);
    const fresh = makeBatcher();
    await fresh.restore(saved);
    await fresh.next();
    await assert.rejects(fresh.restore(saved), /fresh batcher/);
    await fresh.corpus.close();

    // Same source name, different content: the waiting documents' ids no longer match.
    const { dir: d2, cleanup: c2 } = tempDir();
    try {
      const a2 = join(d2, 'a.jsonl');
      writeFileSync(
        a2,
        Array.from({ length: 700 }, (_, i) => JSON.stringify({ id: `other-${i}`, text: 'x y z' })).join('\n') + '\n',
      );
      const corpus = new MixedCorpus([`a=${a2}@2`, specs[1]!, specs[2]!], { seed: 1 });
      const changed = new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, ...OPTIONS });
      await assert.rejects(changed.restore(saved), /data files changed/);
    } finally {
      c2();
    }
  });

  test("configuration: maxLength's bucket must hold a document", () => {
    const corpus = new MixedCorpus(specs);
    assert.throws(
      () => new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, tokensPerBatch: 1000 }),
      /falls in bucket 1632, which holds floor\(1000\/1632\) = 0 documents/,
    );
    assert.doesNotThrow(() => new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer }));
    assert.throws(() => new TokenBudgetBatcher(corpus, { tokenizer: wordTokenizer, bufferSize: -1 }), /bufferSize/);
  });
});
