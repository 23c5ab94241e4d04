// VectorIndex: persistence, commits that survive torn writes, quantisations, and HNSW recall against exact search.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { IndexError, type Quantization, VectorIndex } from '../../src/search/index.js';
import { tempDir } from '../serve/helpers.js';

const tmp = tempDir('moca-index-');
after(() => tmp.remove());

/** Deterministic standard normal samples (xorshift32 + Box–Muller). */
function gaussians(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const uniform = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

function row(m: Float32Array, d: number, i: number): Float32Array {
  return m.slice(i * d, (i + 1) * d);
}

/** Cosine top-k by sorting every score: the independent reference for exactSearch. */
function bruteForce(data: Float32Array, d: number, q: Float32Array, k: number): number[] {
  const n = data.length / d;
  const qn = Math.hypot(...q);
  const scores = Array.from({ length: n }, (_, i) => {
    const r = row(data, d, i);
    let dot = 0;
    for (let j = 0; j < d; j++) dot += q[j]! * r[j]!;
    return { i, s: dot / (qn * Math.hypot(...r)) };
  });
  scores.sort((a, b) => b.s - a.s || a.i - b.i);
  return scores.slice(0, k).map((x) => x.i);
}

const ids = (n: number, prefix = 'v'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('VectorIndex', () => {
  test('add, search, persist, reopen read-only', () => {
    const dir = path.join(tmp.dir, 'basic');
    const d = 16;
    const data = gaussians(200 * d, 1);
    const index = VectorIndex.create(dir, { dimensions: d, info: { model: 'm' } });
    const keys = index.add(
      ids(200),
      data,
      ids(200).map((id, i) => ({ title: `item ${id}`, n: i })),
    );
    assert.deepEqual(keys.slice(0, 3), [0, 1, 2]);
    const top = index.search(row(data, d, 42), 3);
    assert.equal(top[0]!.id, 'v42');
    assert.ok(Math.abs(top[0]!.score - 1) < 1e-5);
    assert.deepEqual(top[0]!.metadata, { title: 'item v42', n: 42 });
    assert.ok(top[0]!.score >= top[1]!.score && top[1]!.score >= top[2]!.score);
    index.close();

    const ro = VectorIndex.open(dir, { readOnly: true });
    assert.equal(ro.size, 200);
    assert.deepEqual(ro.info, { model: 'm' });
    assert.deepEqual(
      ro.search(row(data, d, 42), 3).map((h) => h.id),
      top.map((h) => h.id),
    );
    assert.deepEqual(Array.from(ro.vector(7)), Array.from(row(data, d, 7)));
    assert.throws(() => ro.add(['x'], new Float32Array(d)), /read-only/);
    ro.close();
  });

  test('refuses duplicate ids, wrong dimensions, non-finite values and a second writer', () => {
    const dir = path.join(tmp.dir, 'checks');
    const index = VectorIndex.create(dir, { dimensions: 4 });
    index.add(['a'], new Float32Array([1, 0, 0, 0]));
    assert.throws(() => index.add(['a'], new Float32Array(4)), /id 'a' is already in the index/);
    assert.throws(() => index.add(['b', 'b'], new Float32Array(8)), /appears twice/);
    assert.throws(() => index.add(['c'], new Float32Array(3)), /1 ids but 0.75 vectors of dimension 4/);
    assert.throws(() => index.add(['d'], new Float32Array([0, NaN, 0, 0])), /non-finite/);
    assert.throws(
      () => VectorIndex.open(dir),
      (e: unknown) => e instanceof IndexError && /already open for writing/.test(e.message),
    );
    assert.throws(() => VectorIndex.create(dir, { dimensions: 4 }), /already exists/);
    index.close();
    assert.equal(VectorIndex.open(dir, { readOnly: true }).size, 1);
  });

  test('a torn write after the last commit is ignored and overwritten', () => {
    const dir = path.join(tmp.dir, 'torn');
    const d = 8;
    const data = gaussians(30 * d, 2);
    const index = VectorIndex.create(dir, { dimensions: d });
    index.add(ids(20), data.slice(0, 20 * d));
    index.close();
    const committedVectors = statSync(path.join(dir, 'vectors.f32')).size;
    // A process killed mid-addition: half a vector and half a metadata line past the committed ends.
    appendFileSync(path.join(dir, 'vectors.f32'), Buffer.alloc(13, 7));
    appendFileSync(path.join(dir, 'metadata.jsonl'), '{"id":"half');
    const reopened = VectorIndex.open(dir);
    assert.equal(reopened.size, 20);
    assert.equal(statSync(path.join(dir, 'vectors.f32')).size, committedVectors);
    reopened.add(ids(10, 'w'), data.slice(20 * d));
    assert.equal(reopened.search(row(data, d, 25), 1)[0]!.id, 'w5');
    reopened.close();
    const lines = readFileSync(path.join(dir, 'metadata.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 30);
    assert.deepEqual(JSON.parse(lines[20]!), { id: 'w0', metadata: {} });
  });

  test('exact search equals an independent brute force', () => {
    const dir = path.join(tmp.dir, 'exact');
    const d = 24;
    const data = gaussians(500 * d, 3);
    const index = VectorIndex.create(dir, { dimensions: d });
    index.add(ids(500), data);
    const queries = gaussians(10 * d, 4);
    for (let q = 0; q < 10; q++) {
      const query = row(queries, d, q);
      assert.deepEqual(
        index.exactSearch(query, 10).map((h) => h.key),
        bruteForce(data, d, query, 10),
      );
    }
    index.close();
  });

  for (const quantization of ['f32', 'f16', 'i8'] as Quantization[]) {
    test(`HNSW recall@10 ≥ 0.99 against exact search (${quantization}, 3000 × 64-d Gaussian vectors)`, (t) => {
      const dir = path.join(tmp.dir, `recall-${quantization}`);
      const d = 64;
      const n = 3000;
      const data = gaussians(n * d, 11);
      const index = VectorIndex.create(dir, { dimensions: d, quantization });
      index.add(ids(n), data);
      index.save();
      index.close();
      const reopened = VectorIndex.open(dir, { readOnly: true });
      const queries = gaussians(100 * d, 12);
      let hits = 0;
      for (let q = 0; q < 100; q++) {
        const query = row(queries, d, q);
        const exact = new Set(reopened.exactSearch(query, 10).map((h) => h.key));
        const approx = reopened.search(query, 10);
        assert.equal(approx.length, 10);
        for (const h of approx) if (exact.has(h.key)) hits++;
      }
      reopened.close();
      const recall = hits / 1000;
      t.diagnostic(`recall@10 ${quantization}: ${recall.toFixed(4)}`);
      assert.ok(recall >= 0.99, `recall@10 = ${recall}`);
    });
  }

  test('the graph catches up with rows committed after it was saved, reproducibly with one thread', () => {
    const d = 32;
    const data = gaussians(1200 * d, 5);
    const build = (name: string, split: number[]): Buffer => {
      const dir = path.join(tmp.dir, name);
      let index = VectorIndex.create(dir, { dimensions: d });
      let at = 0;
      for (const n of split) {
        index.add(
          ids(n, `${at}-`).map((_, i) => `v${at + i}`),
          data.slice(at * d, (at + n) * d),
        );
        at += n;
        // Reopen between additions, as separate runs of an interrupted build would.
        index.close();
        index = VectorIndex.open(dir, { threads: 1 });
      }
      index.save();
      index.close();
      return readFileSync(path.join(dir, 'graph.usearch'));
    };
    const whole = build('graph-a', [1200]);
    const pieces = build('graph-b', [500, 300, 400]);
    assert.ok(whole.equals(pieces), 'the same rows give the same graph file');
    // A saved graph extended later: search sees the new rows.
    const dir = path.join(tmp.dir, 'graph-a');
    const extra = gaussians(5 * d, 6);
    const index = VectorIndex.open(dir, { threads: 1 });
    index.add(ids(5, 'new'), extra);
    assert.equal(index.search(row(extra, d, 3), 1)[0]!.id, 'new3');
    index.close();
    const again = VectorIndex.open(dir, { readOnly: true });
    assert.equal(again.search(row(extra, d, 4), 1)[0]!.id, 'new4');
    again.close();
  });
});
