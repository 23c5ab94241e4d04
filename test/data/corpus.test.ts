// MixedCorpus: weighted mixing, determinism, passes / end of data, exact state/restore continuation.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MixedCorpus } from '../../src/data/index.js';
import { FIXTURES, take, tempDir, writeWordCorpus } from './helpers.js';

let dir = '';
let cleanup = (): void => {};
let files: Record<string, string> = {};

before(() => {
  ({ dir, cleanup } = tempDir());
  files = {
    a: writeWordCorpus(dir, 'a', 3000, (i) => 1 + (i % 7)),
    b: writeWordCorpus(dir, 'b', 3000, (i) => 2 + (i % 5)),
    c: writeWordCorpus(dir, 'c', 3000, (i) => 3 + (i % 3)),
    small: writeWordCorpus(dir, 'small', 5, () => 2),
  };
});
after(() => cleanup());

const ids = (docs: { id: string }[]) => docs.map((d) => d.id);

describe('MixedCorpus mixing', () => {
  test('draw proportions follow the weights (2000 seeded draws)', async () => {
    const corpus = new MixedCorpus([`a=${files.a}@1`, `b=${files.b}@3`, `c=${files.c}@6`], { seed: 11 });
    const docs = await take(corpus, 2000);
    const share = (s: string) => docs.filter((d) => d.source === s).length / docs.length;
    assert.ok(Math.abs(share('a') - 0.1) < 0.02, `a ${share('a')}`);
    assert.ok(Math.abs(share('b') - 0.3) < 0.03, `b ${share('b')}`);
    assert.ok(Math.abs(share('c') - 0.6) < 0.03, `c ${share('c')}`);
    // Within a source, rows come in file order.
    const rowsA = docs.filter((d) => d.source === 'a').map((d) => d.row);
    assert.deepEqual(
      rowsA,
      rowsA.map((_, i) => i),
    );
    await corpus.close();
  });

  test('same seed → identical stream; another seed → another interleaving', async () => {
    const specs = [`a=${files.a}@1`, `b=${files.b}@1`];
    const x = ids(await take(new MixedCorpus(specs, { seed: 5 }), 300));
    const y = ids(await take(new MixedCorpus(specs, { seed: 5 }), 300));
    const z = ids(await take(new MixedCorpus(specs, { seed: 6 }), 300));
    assert.deepEqual(x, y);
    assert.notDeepEqual(x, z);
  });

  test('one pass by default: an exhausted source drops out, the corpus ends when all have', async () => {
    const corpus = new MixedCorpus([`small=${files.small}@100`, `j=${join(FIXTURES, 'docs.jsonl')}@1`], { seed: 1 });
    const docs = await take(corpus);
    assert.equal(docs.length, 5 + 4);
    assert.deepEqual(
      docs
        .filter((d) => d.source === 'small')
        .map((d) => d.row)
        .sort(),
      [0, 1, 2, 3, 4],
    );
    assert.equal(await corpus.read(), null);
    assert.equal(await corpus.read(), null);
    assert.deepEqual(corpus.stats().sources.small, { documents: 5, epoch: 0, done: true, row: 5 });
  });

  test('epochs: n passes per source; Infinity keeps cycling', async () => {
    const two = await take(new MixedCorpus([`small=${files.small}`], { epochs: 2 }));
    assert.deepEqual(
      two.map((d) => `${d.epoch}:${d.row}`),
      ['0:0', '0:1', '0:2', '0:3', '0:4', '1:0', '1:1', '1:2', '1:3', '1:4'],
    );
    const forever = new MixedCorpus([`small=${files.small}@1`, `j=${join(FIXTURES, 'docs.jsonl')}@1`], {
      epochs: Infinity,
      seed: 2,
    });
    const docs = await take(forever, 200);
    assert.equal(docs.length, 200);
    assert.ok(Math.max(...docs.map((d) => d.epoch)) >= 10);
    await forever.close();
  });

  test('a source with no valid document drops out instead of looping forever', async () => {
    const { dir: d2, cleanup: c2 } = tempDir();
    try {
      const empty = writeWordCorpus(d2, 'empty', 0, () => 1);
      const docs = await take(new MixedCorpus([`e=${empty}`, `s=${files.small}`], { epochs: Infinity }), 12);
      assert.equal(docs.length, 12);
      assert.ok(docs.every((x) => x.source === 's'));
    } finally {
      c2();
    }
  });

  test('configuration errors', () => {
    assert.throws(() => new MixedCorpus([]), /at least one/);
    assert.throws(() => new MixedCorpus([`x=${files.a}`, `x=${files.b}`]), /two data sources are named "x"/);
    assert.throws(() => new MixedCorpus([files.a], { epochs: 0 }), /epochs/);
  });
});

describe('MixedCorpus state/restore', () => {
  const specs = () => [`a=${files.a}@2`, `b=${files.b}@1`, `hf=${join(FIXTURES, 'interleaved.parquet')}@0.05`];

  test('read N, save, restore into a new corpus, read the rest == uninterrupted run', async () => {
    const full = ids(await take(new MixedCorpus(specs(), { seed: 9, epochs: 2 })));
    assert.equal(full.length, 2 * (3000 + 3000 + 5));
    for (const n of [0, 1, 2, 137, 3001, 6004, 9000, full.length - 1, full.length]) {
      const first = new MixedCorpus(specs(), { seed: 9, epochs: 2 });
      const head = ids(await take(first, n));
      const saved = JSON.parse(JSON.stringify(first.state())) as unknown;
      await first.close();
      const second = new MixedCorpus(specs(), { seed: 9, epochs: 2 });
      second.restore(saved);
      const tail = ids(await take(second));
      assert.deepEqual([...head, ...tail], full, `split at ${n}`);
      assert.equal(second.stats().documents, full.length);
    }
  });

  test('leaving a for-await loop early closes the files; reading continues where it stopped', async () => {
    const full = ids(await take(new MixedCorpus(specs(), { seed: 4 }), 40));
    const corpus = new MixedCorpus(specs(), { seed: 4 });
    const head: string[] = [];
    for await (const doc of corpus) {
      head.push(doc.id);
      if (head.length === 15) break;
    }
    const saved = corpus.state();
    const rest = ids(await take(corpus, 25));
    assert.deepEqual([...head, ...rest], full);
    const restored = new MixedCorpus(specs(), { seed: 4 });
    restored.restore(saved);
    assert.deepEqual(ids(await take(restored, 25)), rest);
  });

  test('restore checks the state and the sources', async () => {
    const c = new MixedCorpus(specs(), { seed: 1 });
    await take(c, 3);
    const saved = c.state();
    assert.throws(() => c.restore(saved), /fresh corpus/);
    await c.close();
    assert.throws(() => new MixedCorpus([`a=${files.a}`]).restore(saved), /saved data state is for sources/);
    assert.throws(() => new MixedCorpus(specs()).restore({ kind: 'other' }), /not a saved MixedCorpus state/);
  });
});
