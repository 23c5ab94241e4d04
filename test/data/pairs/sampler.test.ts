// Task-aware batch sampling: single-subset batches, every sample exactly once per epoch, subset proportions that
// follow the weights, mixed mode, partial / dropped batches, and exact continuation from a saved state.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  loadPairDataset,
  TaskBatchSampler,
  type IndexBatch,
  type TaskBatchSamplerOptions,
} from '../../../src/data/pairs/index.js';
import { PAIR_FIXTURES } from './helpers.js';

const SUBSETS = [
  { name: 'a', size: 25 },
  { name: 'b', size: 10 },
  { name: 'empty', size: 0 },
  { name: 'c', size: 7 },
];

function epoch(sampler: TaskBatchSampler): IndexBatch[] {
  return [...sampler.restOfEpoch()];
}

function take(sampler: TaskBatchSampler, n: number): IndexBatch[] {
  return Array.from({ length: n }, () => sampler.next());
}

/** Checks that `batches` use every index in [0, total) exactly once. */
function assertExactlyOnce(batches: IndexBatch[], total: number): void {
  const all = batches.flatMap((b) => b.indices).sort((x, y) => x - y);
  assert.deepEqual(
    all,
    Array.from({ length: total }, (_, i) => i),
  );
}

describe('TaskBatchSampler, task mode', () => {
  test('every batch from one subset; every sample exactly once per epoch; partial last batches kept', () => {
    const s = new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, seed: 1 });
    assert.equal(s.batchesPerEpoch, 7 + 3 + 0 + 2);
    assert.deepEqual(s.offsets, [0, 25, 35, 35, 42]);
    for (let e = 0; e < 3; e++) {
      const batches = epoch(s);
      assert.equal(batches.length, 12);
      assert.ok(batches.every((b, i) => b.epoch === e && b.step === i));
      for (const b of batches) {
        assert.notEqual(b.subset, null);
        const lo = s.offsets[b.subset!]!;
        const hi = s.offsets[b.subset! + 1]!;
        assert.ok(
          b.indices.every((i) => i >= lo && i < hi),
          `batch ${b.step} mixes subsets`,
        );
        assert.ok(b.indices.every((i) => s.locate(i).subset === b.subset));
      }
      assertExactlyOnce(batches, 42);
      // per subset: full batches plus one partial (25 = 6·4 + 1, 10 = 2·4 + 2, 7 = 4 + 3)
      const sizes = (sub: number) =>
        batches
          .filter((b) => b.subset === sub)
          .map((b) => b.indices.length)
          .sort();
      assert.deepEqual(sizes(0), [1, 4, 4, 4, 4, 4, 4]);
      assert.deepEqual(sizes(1), [2, 4, 4]);
      assert.deepEqual(sizes(3), [3, 4]);
      s.next(); // start the next epoch …
      s.restore({ ...s.state(), position: 0 }); // … and rewind to its beginning
    }
  });

  test('epochs differ; the same seed gives the same batches, another seed others', () => {
    const opts: TaskBatchSamplerOptions = { subsets: SUBSETS, batchSize: 4, seed: 5 };
    const a = take(new TaskBatchSampler(opts), 36);
    const b = take(new TaskBatchSampler(opts), 36);
    const c = take(new TaskBatchSampler({ ...opts, seed: 6 }), 36);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.notDeepEqual(
      a.slice(0, 12).map((x) => x.indices),
      a.slice(12, 24).map((x) => x.indices),
    );
    assert.deepEqual(
      a.map((x) => x.epoch),
      [...Array(12).fill(0), ...Array(12).fill(1), ...Array(12).fill(2)],
    );
  });

  test("subset proportions follow the sizes ('size')", () => {
    const subsets = [
      { name: 'big', size: 600 },
      { name: 'mid', size: 300 },
      { name: 'small', size: 100 },
    ];
    const counts = [0, 0, 0];
    let n = 0;
    for (let seed = 0; seed < 40; seed++) {
      const s = new TaskBatchSampler({ subsets, batchSize: 10, seed });
      for (const b of take(s, 20)) {
        counts[b.subset!]!++;
        n++;
      }
    }
    const p = counts.map((c) => c / n);
    [0.6, 0.3, 0.1].forEach((want, i) => assert.ok(Math.abs(p[i]! - want) < 0.04, `subset ${i}: ${p[i]} vs ${want}`));
  });

  test('subset proportions follow given weights while every subset still has batches', () => {
    const subsets = [
      { name: 'x', size: 500 },
      { name: 'y', size: 200 },
      { name: 'z', size: 500 },
    ];
    const counts = [0, 0, 0];
    let n = 0;
    for (let seed = 0; seed < 40; seed++) {
      const s = new TaskBatchSampler({ subsets, batchSize: 10, seed, weights: [1, 1, 2] });
      for (const b of take(s, 30)) {
        counts[b.subset!]!++;
        n++;
      }
    }
    const p = counts.map((c) => c / n);
    [0.25, 0.25, 0.5].forEach((want, i) => assert.ok(Math.abs(p[i]! - want) < 0.04, `subset ${i}: ${p[i]} vs ${want}`));
    // still exactly once per epoch
    const s = new TaskBatchSampler({ subsets, batchSize: 10, seed: 0, weights: [1, 1, 2] });
    assertExactlyOnce(epoch(s), 1200);
  });

  test('dropLast leaves each subset’s partial batch out', () => {
    const s = new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, seed: 2, dropLast: true });
    assert.equal(s.batchesPerEpoch, 6 + 2 + 1);
    const batches = epoch(s);
    assert.ok(batches.every((b) => b.indices.length === 4));
    assert.equal(new Set(batches.flatMap((b) => b.indices)).size, 36);
  });
});

describe('TaskBatchSampler, mixed mode', () => {
  test('a global shuffle: batches mix subsets; every sample once; only the last batch is partial', () => {
    const s = new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, seed: 1, mode: 'mixed' });
    assert.equal(s.batchesPerEpoch, 11);
    const batches = epoch(s);
    assert.ok(batches.every((b) => b.subset === null));
    assert.ok(batches.some((b) => new Set(b.indices.map((i) => s.locate(i).subset)).size >= 2));
    assertExactlyOnce(batches, 42);
    assert.deepEqual(
      batches.map((b) => b.indices.length),
      [...Array(10).fill(4), 2],
    );
    const dropped = new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, mode: 'mixed', dropLast: true });
    assert.equal(dropped.batchesPerEpoch, 10);
  });

  test('weights are refused in mixed mode', () => {
    assert.throws(
      () => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, mode: 'mixed', weights: [1, 1, 1, 1] }),
      /only apply to mode 'task'/,
    );
  });
});

describe('TaskBatchSampler state', () => {
  for (const mode of ['task', 'mixed'] as const) {
    test(`${mode}: restore continues exactly (mid-epoch, at an epoch end, at the start)`, () => {
      const opts: TaskBatchSamplerOptions = { subsets: SUBSETS, batchSize: 4, seed: 9, mode };
      const reference = take(new TaskBatchSampler(opts), 40);
      const per = new TaskBatchSampler(opts).batchesPerEpoch;
      for (const cut of [0, 5, per, per + 3, 2 * per]) {
        const first = new TaskBatchSampler(opts);
        take(first, cut);
        const saved = JSON.parse(JSON.stringify(first.state())) as unknown;
        const resumed = new TaskBatchSampler({ ...opts, seed: 12345 }); // the state carries the generator
        resumed.restore(saved);
        assert.deepEqual(take(resumed, 40 - cut), reference.slice(cut), `cut at ${cut}`);
      }
    });
  }

  test('weighted task mode resumes exactly too', () => {
    const opts: TaskBatchSamplerOptions = { subsets: SUBSETS, batchSize: 3, seed: 4, weights: [3, 1, 1, 2] };
    const reference = take(new TaskBatchSampler(opts), 50);
    const first = new TaskBatchSampler(opts);
    take(first, 23);
    const resumed = new TaskBatchSampler(opts);
    resumed.restore(first.state());
    assert.deepEqual(take(resumed, 27), reference.slice(23));
  });

  test('a state from another configuration or a malformed one is refused', () => {
    const s = new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4 });
    s.next();
    const state = s.state();
    const changed = new TaskBatchSampler({ subsets: [...SUBSETS.slice(0, 3), { name: 'c', size: 8 }], batchSize: 4 });
    assert.throws(() => changed.restore(state), /subsets .* the data or the batching options changed/);
    assert.throws(() => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 5 }).restore(state), /batch size 4, now 5/);
    assert.throws(
      () => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, mode: 'mixed' }).restore(state),
      /mode "task", now "mixed"/,
    );
    assert.throws(() => s.restore({ ...state, position: 99 }), /outside the epoch/);
    assert.throws(() => s.restore({ ...state, rng: [0, 0, 0, 0] }), /Rng state/);
    assert.throws(() => s.restore({ kind: 'other' }), /not a saved TaskBatchSampler state/);
  });

  test('configuration errors', () => {
    assert.throws(() => new TaskBatchSampler({ subsets: [], batchSize: 4 }), /no subsets/);
    assert.throws(() => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 0 }), /batchSize/);
    assert.throws(
      () => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, weights: [1, 1] }),
      /one number per subset/,
    );
    assert.throws(() => new TaskBatchSampler({ subsets: SUBSETS, batchSize: 4, weights: [1, 0, 1, 1] }), /must be > 0/);
    assert.throws(() => new TaskBatchSampler({ subsets: [{ name: 'e', size: 0 }], batchSize: 4 }), /no batches/);
    assert.throws(
      () => new TaskBatchSampler({ subsets: [{ name: 's', size: 3 }], batchSize: 4, dropLast: true }),
      /no batches/,
    );
  });
});

test('with a PairDataset: every task batch is a batch of one subset’s samples', async () => {
  const data = await loadPairDataset([
    `mmeb=${join(PAIR_FIXTURES, 'mmeb.jsonl')}`,
    `text=${join(PAIR_FIXTURES, 'text.jsonl')}`,
    `st=${join(PAIR_FIXTURES, 'shards')}`,
  ]);
  const sampler = new TaskBatchSampler({
    subsets: data.samplerSubsets(),
    weights: data.samplerWeights(),
    batchSize: 4,
    seed: 0,
  });
  const seen = new Set<string>();
  for (const b of sampler.restOfEpoch()) {
    const samples = data.batch(b.indices);
    assert.equal(new Set(samples.map((x) => x.subset)).size, 1);
    assert.equal(samples[0]!.subset, data.subsets[b.subset!]!.name);
    for (const x of samples) seen.add(x.id);
  }
  assert.equal(seen.size, data.size);
});
