// Reading pair subsets: the subset specification, JSON Lines and Parquet (string columns, list columns, HF Image
// struct, directories of shards), the per-subset row cap, bad-row records, strict mode, and the PairDataset.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  loadPairDataset,
  loadPairSubset,
  MOCA_SAMPLES_PER_SUBSET,
  PairDataError,
  parsePairSubsetSpec,
  readPairSubset,
  type PairSample,
} from '../../../src/data/pairs/index.js';
import { DATA_FIXTURES, MemorySink, PAIR_FIXTURES, QWEN } from './helpers.js';

const F = (name: string): string => join(PAIR_FIXTURES, name);

/** A sample without its position (to compare the same row read from two files). */
const content = (s: PairSample) => ({ query: s.query, positive: s.positive, negatives: s.negatives });

describe('parsePairSubsetSpec', () => {
  test('NAME=PATH[@WEIGHT][#CAP]', () => {
    const a = parsePairSubsetSpec(`coco=${F('mmeb.jsonl')}@2.5#50_000`);
    assert.deepEqual(
      { name: a.name, path: a.path, format: a.format, weight: a.weight, weightGiven: a.weightGiven, cap: a.maxSamples },
      { name: 'coco', path: F('mmeb.jsonl'), format: 'jsonl', weight: 2.5, weightGiven: true, cap: 50000 },
    );
    const b = parsePairSubsetSpec(F('mmeb.parquet'));
    assert.deepEqual(
      [b.name, b.format, b.weight, b.weightGiven, 'maxSamples' in b],
      ['mmeb', 'parquet', 1, false, false],
    );
    const c = parsePairSubsetSpec(`${F('shards')}#all`);
    assert.deepEqual([c.name, c.format, c.maxSamples], ['shards', 'parquet', null]);
    const d = parsePairSubsetSpec(`x=${F('text.jsonl')}#3`);
    assert.deepEqual([d.name, d.weightGiven, d.maxSamples], ['x', false, 3]);
    assert.equal(parsePairSubsetSpec(`w=${F('text.jsonl')}@1`).weightGiven, true);
  });

  test('a # that is not a trailing cap belongs to the path', () => {
    const s = parsePairSubsetSpec('n=data/a#b.jsonl');
    assert.deepEqual([s.path, s.format, 'maxSamples' in s], ['data/a#b.jsonl', 'jsonl', false]);
  });

  test('bad specifications', () => {
    assert.throws(() => parsePairSubsetSpec(`${F('text.jsonl')}#0`), /row cap must be a positive integer/);
    assert.throws(() => parsePairSubsetSpec(`${F('text.jsonl')}#-1`), /bad row cap "-1"/);
    assert.throws(() => parsePairSubsetSpec(`${F('text.jsonl')}#10@2`), /weight before the cap/);
    assert.throws(() => parsePairSubsetSpec(`${F('text.jsonl')}@0`), /weight must be a positive number/);
    assert.throws(() => parsePairSubsetSpec(''), /empty/);
  });

  test('MoCa cap constant', () => assert.equal(MOCA_SAMPLES_PER_SUBSET, 50000));
});

describe('reading subsets', () => {
  test('MMEB JSON Lines: good rows in order, bad rows recorded with subset, row id, field and reason', async () => {
    const sink = new MemorySink();
    const sub = await loadPairSubset(`mmeb=${F('mmeb.jsonl')}`, { errors: sink });
    assert.equal(sub.samples.length, 12);
    assert.deepEqual([sub.rowsRead, sub.badRows], [22, 10]);
    assert.deepEqual(
      sub.samples.map((s) => s.id),
      [...Array.from({ length: 10 }, (_, i) => `mmeb:${i}`), 'mmeb:row-ten', 'mmeb:11'],
    );
    assert.deepEqual(sub.samples[0]!.query, {
      text: `${QWEN}\nRepresent the given image for binary classification\n`,
      image: { kind: 'path', path: F('img/red.png') },
    });
    const summary = sink.entries.map((e) => [e.subset, e.row, e.id, e.line, e.field, e.reason, e.stage]);
    assert.deepEqual(summary, [
      ['mmeb', 12, 'mmeb:12', 13, 'pos_text', 'bad_field', 'read'],
      ['mmeb', 13, 'mmeb:13', 14, 'neg_text', 'bad_field', 'read'],
      ['mmeb', 14, 'mmeb:14', 15, 'pos_text', 'placeholder_mismatch', 'read'],
      ['mmeb', 15, 'mmeb:15', 16, 'neg_image_path', 'bad_field', 'read'],
      ['mmeb', 16, 'mmeb:16', 17, 'row', 'invalid_json', 'read'],
      ['mmeb', 17, 'mmeb:17', 18, 'neg_text', 'bad_field', 'read'],
      ['mmeb', 18, 'mmeb:18', 19, 'qry_image_path', 'bad_field', 'read'],
      ['mmeb', 19, 'mmeb:19', 20, 'row', 'bad_field', 'read'],
      ['mmeb', 20, 'mmeb:20', 21, 'qry', 'bad_field', 'read'],
      ['mmeb', 21, 'mmeb:21', 22, 'qry', 'bad_field', 'read'],
    ]);
    assert.ok(sink.entries.every((e) => e.source === 'mmeb' && e.file === F('mmeb.jsonl')));
    assert.match(String(sink.entries[1]!.error), /neg_text: malformed list literal: unterminated list .* at offset 0/);
    assert.match(String(sink.entries[4]!.error), /invalid JSON/);
  });

  test('MMEB Parquet (string columns, row groups of 4) gives the same samples as the JSON Lines rows', async () => {
    const sink = new MemorySink();
    const [pq, jl] = await Promise.all([
      loadPairSubset(`mmeb=${F('mmeb.parquet')}`, { errors: sink, seed: 3 }),
      loadPairSubset(`mmeb=${F('mmeb.jsonl')}`, { seed: 3 }),
    ]);
    assert.equal(pq.samples.length, 12);
    // Parquet rows have no id column: row 10 is mmeb:10 there
    assert.deepEqual(pq.samples.map(content), jl.samples.map(content));
    assert.deepEqual(
      sink.entries.map((e) => [e.row, e.field, e.reason, e.line]),
      [
        [12, 'neg_text', 'bad_field', undefined],
        [13, 'pos_text', 'placeholder_mismatch', undefined],
      ],
    );
  });

  test('Parquet list<string> negatives, int64 id, HF Image struct with bytes / path / null', async () => {
    const sub = await loadPairSubset(`lists=${F('mmeb_lists.parquet')}`);
    assert.deepEqual(
      sub.samples.map((s) => s.id),
      ['lists:100', 'lists:101', 'lists:102'],
    );
    const [a, b, c] = sub.samples as [PairSample, PairSample, PairSample];
    assert.equal(a.query.image?.kind, 'bytes');
    const bytes = (a.query.image as { bytes: Uint8Array }).bytes;
    assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.deepEqual(
      a.negatives.map((n) => n.text),
      ['blue', 'green'],
    );
    assert.deepEqual(b.query.image, { kind: 'path', path: F('img/green.png') });
    assert.deepEqual(
      b.negatives.map((n) => n.text),
      ['only', 'only'],
    );
    assert.deepEqual([c.query, c.negatives], [{ text: 'text query', image: null }, []]);
  });

  test('imageRoot option applies to every file', async () => {
    const sub = await loadPairSubset(`mmeb=${F('mmeb.jsonl')}#1`, { imageRoot: '/imgs' });
    assert.deepEqual(sub.samples[0]!.query.image, { kind: 'path', path: '/imgs/img/red.png' });
  });

  test('text-only JSON Lines', async () => {
    const sink = new MemorySink();
    const sub = await loadPairSubset(`text=${F('text.jsonl')}`, { errors: sink });
    assert.deepEqual(
      sub.samples.map((s) => [s.query.text, s.positive.text, s.negatives.map((n) => n.text)]),
      [
        ['what is nq?', 'natural questions', ['n1', 'n2']],
        ['q1', 'p1', ['single', 'single']],
        ['a2', 'p2', ['n2', 'n2']],
        ['q3', 'p3a', ['x', 'x']],
        ['q4', 'p4', []],
      ],
    );
    assert.deepEqual(
      sink.entries.map((e) => [e.row, e.field, e.reason]),
      [
        [5, 'positive', 'bad_field'],
        [6, 'query/qry', 'bad_field'],
        [7, 'query/qry/anchor', 'bad_field'],
      ],
    );
  });

  test('a directory of Parquet shards, capped across the shard boundary (first N rows)', async () => {
    const sub = await loadPairSubset(`st=${F('shards')}#4`);
    assert.deepEqual(
      sub.samples.map((s) => [s.id, s.query.text, s.positive.text, s.negatives.map((n) => n.text)]),
      [
        ['st:0', 'a00', 'p00', ['n00', 'n00']],
        ['st:1', 'a01', 'p01', ['n01', 'n01']],
        ['st:2', 'a02', 'p02', ['n02', 'n02']],
        ['st:3', 'a10', 'p10', ['n10', 'n10']],
      ],
    );
    assert.equal(sub.rowsRead, 4);
    assert.equal((await loadPairSubset(F('shards'))).samples.length, 6);
  });

  test('the cap counts rows, bad ones included (train[:N]); the spec cap beats options.maxSamples', async () => {
    const capped = await loadPairSubset(`mmeb=${F('mmeb.jsonl')}`, { maxSamples: 14 });
    assert.deepEqual([capped.rowsRead, capped.samples.length, capped.badRows], [14, 12, 2]);
    const spec = await loadPairSubset(`mmeb=${F('mmeb.jsonl')}#2`, { maxSamples: 14 });
    assert.equal(spec.samples.length, 2);
    const all = await loadPairSubset(`mmeb=${F('mmeb.jsonl')}#all`, { maxSamples: 1 });
    assert.equal(all.rowsRead, 22);
    const pq = await loadPairSubset(`mmeb=${F('mmeb.parquet')}#5`);
    assert.equal(pq.samples.length, 5);
  });

  test('streaming: readPairSubset yields samples one by one and can stop early', async () => {
    const stats = { rowsRead: 0, badRows: 0 };
    const got: string[] = [];
    for await (const s of readPairSubset(`mmeb=${F('mmeb.parquet')}`, {}, stats)) {
      got.push(s.id);
      if (got.length === 3) break;
    }
    assert.deepEqual(got, ['mmeb:0', 'mmeb:1', 'mmeb:2']);
    assert.equal(stats.rowsRead, 3);
  });

  test('strict mode throws the PairDataError of the first bad row', async () => {
    await assert.rejects(loadPairSubset(`text=${F('text.jsonl')}`, { strict: true }), (e: unknown) => {
      assert.ok(e instanceof PairDataError);
      assert.deepEqual([e.subset, e.location.row, e.field, e.reason], ['text', 5, 'positive', 'bad_field']);
      return true;
    });
  });

  test('files that are not pair data are refused as a whole', async () => {
    await assert.rejects(
      loadPairSubset(`x=${join(DATA_FIXTURES, 'notext.parquet')}`),
      /no pair columns \(columns: caption, n\)/,
    );
    await assert.rejects(
      loadPairSubset(`x=${F('mmeb_nonegs.parquet')}`),
      /MMEB-style pair file without column\(s\) neg_text, neg_image_path/,
    );
    const noNegs = await loadPairSubset(`x=${F('mmeb_nonegs.parquet')}`, { negativeRatio: 0 });
    assert.equal(noNegs.samples.length, 3);
  });
});

describe('PairDataset', () => {
  test('global indices, locate / get / batch, bad-row counters, sampler subsets and weights', async () => {
    const sink = new MemorySink();
    const data = await loadPairDataset([`mmeb=${F('mmeb.jsonl')}`, `text=${F('text.jsonl')}`, `st=${F('shards')}#4`], {
      errors: sink,
    });
    assert.deepEqual(data.offsets, [0, 12, 17, 21]);
    assert.equal(data.size, 21);
    assert.deepEqual(data.locate(12), { subset: 1, local: 0 });
    assert.deepEqual(data.locate(20), { subset: 2, local: 3 });
    assert.equal(data.get(13).id, 'text:1');
    assert.deepEqual(
      data.batch([0, 17]).map((s) => s.id),
      ['mmeb:0', 'st:0'],
    );
    assert.throws(() => data.get(21), RangeError);
    assert.deepEqual(data.samplerSubsets(), [
      { name: 'mmeb', size: 12 },
      { name: 'text', size: 5 },
      { name: 'st', size: 4 },
    ]);
    assert.equal(data.samplerWeights(), 'size');
    assert.equal(data.badRows.total, 13);
    assert.deepEqual(data.badRows.bySource, { mmeb: 10, text: 3 });
    assert.equal(sink.entries.length, 13);

    const weighted = await loadPairDataset([`a=${F('text.jsonl')}@3`, `b=${F('shards')}`]);
    assert.deepEqual(weighted.samplerWeights(), [3, 1]);
  });

  test('subset names must be unique', async () => {
    await assert.rejects(loadPairDataset([F('text.jsonl'), F('text.jsonl')]), /two data sources are named "text"/);
  });
});
