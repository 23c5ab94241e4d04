// c10d collectives through the binding, between real processes on loopback: values of every collective against
// hand-derived expectations, the gradient reducer against the analytic gradient of a two-layer model, and the
// failure modes (a peer that exits, a peer that stays silent past the timeout) as prompt DistributedErrors.
// Plus the pure helpers (torchrun environment, launcher argument handling).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { validateLaunch, workerArgs } from '../../src/cli/launch.js';
import { distributed } from '../../src/torch/index.js';
import type { CollectivesSpec } from './fixtures/collectives-worker.js';
import { runRanks } from './helpers.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'collectives-worker.js');

async function scenario(spec: CollectivesSpec, world = 2, timeoutMs = 60_000): Promise<Record<string, unknown>[]> {
  const results = await runRanks([worker, '--run', JSON.stringify(spec)], world, timeoutMs);
  return results.map((r, rank) => {
    assert.equal(r.code, 0, `rank ${rank} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  });
}

describe('collectives between processes (gloo, loopback)', () => {
  test('allReduce (sum, avg, max, min, product), allGather, broadcast, coalesced broadcast, barrier, objects', async () => {
    const world = 3;
    const out = await scenario({ scenario: 'values' }, world);
    // Σ_r (r+1) = 6 for three ranks.
    const s = (world * (world + 1)) / 2;
    out.forEach((o, rank) => {
      assert.equal(o.rank, rank);
      assert.equal(o.rankFromApi, rank);
      assert.equal(o.worldFromApi, world);
      assert.equal(o.backend, 'gloo');
      assert.deepEqual(o.sum, [s, 2 * s, 3 * s]);
      assert.deepEqual(o.avg, [s / world, (2 * s) / world, (3 * s) / world]);
      assert.deepEqual(o.ops, {
        max: [world, 10],
        min: [1, 10 - (world - 1)],
        product: [
          Array.from({ length: world }, (_, r) => r + 1).reduce((a, b) => a * b, 1),
          Array.from({ length: world }, (_, r) => 10 - r).reduce((a, b) => a * b, 1),
        ],
      });
      assert.deepEqual(
        o.gathered,
        Array.from({ length: world }, (_, r) => [r, 10 * r]),
      );
      assert.deepEqual(o.broadcast, [(world - 1) * 7, (world - 1) * 7 + 1]);
      // Rank 0's values everywhere, through flat buffers of two dtypes.
      assert.deepEqual(o.coalesced, [Array(6).fill(0.5), Array(4).fill(1), [2]]);
      assert.deepEqual(o.asyncCompleted, [true, true]);
      assert.deepEqual(o.async, [world, world, world]);
      assert.deepEqual(
        o.objects,
        Array.from({ length: world }, (_, r) => ({ rank: r, text: 'x'.repeat(r * 5), nested: [r, { r }] })),
      );
      assert.deepEqual(o.object, { from: 0, list: [1, 2, 3] });
      assert.equal(o.anyFalse, false);
      assert.equal(o.anyTrue, true);
      assert.equal(o.groupString, `rank ${rank} of ${world} (gloo)`);
      const errors = o.errors as string[];
      assert.match(errors[0]!, /^DistributedError: allReduce failed .*contiguous/);
      assert.match(errors[1]!, /^DistributedError: allReduce failed .*'avg' needs a floating-point tensor/);
      assert.match(errors[2]!, /^DistributedError: allGather failed .*expected 3 output tensors/);
      assert.match(errors[3]!, /^DistributedError: broadcast failed .*root 6 is outside a group of 3/);
    });
  });

  test('gradient reducer: bucketed all-reduce from autograd hooks equals the analytic gradient', async () => {
    const out = await scenario({ scenario: 'reducer' }, 2);
    type R = {
      buckets: number[];
      stats: { buckets: number; launchedDuringBackward: number; launched: number };
      launchedDuringBackward: number;
      x: number[][];
      weights: { l1w: number[][]; l1b: number[]; l2w: number[][]; l2b: number[] };
      grads: (number[] | number[][] | null)[];
    };
    const [r0, r1] = out as unknown as [R, R];
    const w = r0.weights;
    assert.deepEqual(r1.weights, w, 'identical weights');
    // d/dθ of Σ_rows w2·relu(W1 x + b1) + b2, for one rank's rows.
    const local = (x: number[][]) => {
      const gW1 = w.l1w.map((row) => row.map(() => 0));
      const gb1 = w.l1b.map(() => 0);
      const gw2 = w.l2w[0]!.map(() => 0);
      for (const xi of x) {
        const h = w.l1w.map((row, j) => row.reduce((acc, wj, k) => acc + wj * xi[k]!, w.l1b[j]!));
        h.forEach((hj, j) => {
          if (hj > 0) {
            gb1[j]! += w.l2w[0]![j]!;
            xi.forEach((xk, k) => (gW1[j]![k]! += w.l2w[0]![j]! * xk));
            gw2[j]! += hj;
          }
        });
      }
      return { gW1, gb1, gw2, gb2: x.length };
    };
    const g0 = local(r0.x);
    const g1 = local(r1.x);
    // Two accumulated passes per rank, scale 0.5: 0.5 · Σ_ranks 2 · g = g0 + g1.
    const expected = [
      null, // nobody uses this layer: no gradient, as in a single process
      null,
      g0.gW1.map((row, j) => row.map((v, k) => v + g1.gW1[j]![k]!)),
      g0.gb1.map((v, j) => v + g1.gb1[j]!),
      [g0.gw2.map((v, j) => v + g1.gw2[j]!)],
      [g0.gb2 + g1.gb2],
      // Only rank 1 uses this layer: 0.5 · 2 · Σ_rows x (rank 1's rows) on both ranks.
      [r1.x[0]!.map((_, k) => r1.x.reduce((acc, row) => acc + row[k]!, 0))],
      [r1.x.length],
    ];
    for (const r of [r0, r1]) {
      assert.equal(r.grads.length, expected.length);
      r.grads.forEach((g, i) => {
        const e = expected[i];
        if (e === null) {
          assert.equal(g, null, `param ${i} should have no gradient`);
          return;
        }
        const flatG = (g as number[] | number[][]).flat();
        const flatE = (e as number[] | number[][]).flat();
        assert.equal(flatG.length, flatE.length);
        flatG.forEach((v, k) => assert.ok(Math.abs(v - flatE[k]!) < 1e-5, `param ${i}[${k}]: ${v} vs ${flatE[k]}`));
      });
      assert.ok(r.stats.buckets >= 3, `several buckets (${r.stats.buckets})`);
      assert.equal(r.stats.launched, r.stats.buckets, 'every bucket reduced once');
      assert.deepEqual(r.buckets, r0.buckets, 'same bucket assignment on every rank');
    }
    // Rank 1 makes every used gradient ready during backward: its first buckets start before backward ends.
    assert.ok(r1.launchedDuringBackward > 0, 'all-reduce started inside backward');
  });

  test('a peer that exits fails the pending collective at once with a clear error', async () => {
    const [r0] = await runRanks(
      [worker, '--run', JSON.stringify({ scenario: 'peer-exits', timeoutMs: 60_000 })],
      2,
      60_000,
    );
    assert.equal(r0!.code, 0, r0!.stderr);
    const o = JSON.parse(r0!.stdout) as { error: string; ms: number };
    assert.match(
      o.error,
      /^DistributedError: allReduce failed on rank 0 of 2 \(gloo\): .*another worker exited or was killed/,
    );
    assert.ok(o.ms < 10_000, `error after ${o.ms} ms, well before the 60 s timeout`);
  });

  test('a peer that stays silent fails the collective after the timeout', async () => {
    const timeoutMs = 2000;
    const [r0] = await runRanks([worker, '--run', JSON.stringify({ scenario: 'peer-silent', timeoutMs })], 2, 60_000);
    const o = JSON.parse(r0!.stdout) as { error: string; ms: number };
    assert.match(o.error, /^DistributedError: allReduce failed on rank 0 of 2 \(gloo\): .*time/i);
    assert.ok(o.ms >= timeoutMs - 200 && o.ms < timeoutMs + 8000, `error after ${o.ms} ms (timeout ${timeoutMs})`);
  });
});

describe('distributed environment and launcher arguments', () => {
  test('distributedEnv reads the torchrun variables and rejects inconsistent ones', () => {
    assert.equal(distributed.distributedEnv({}), null);
    assert.deepEqual(distributed.distributedEnv({ WORLD_SIZE: '4', RANK: '2', LOCAL_RANK: '0', MASTER_PORT: '1234' }), {
      rank: 2,
      worldSize: 4,
      localRank: 0,
      localWorldSize: 4,
      masterAddr: '127.0.0.1',
      masterPort: 1234,
    });
    assert.throws(() => distributed.distributedEnv({ WORLD_SIZE: '2' }), /RANK is not/);
    assert.throws(() => distributed.distributedEnv({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 is outside WORLD_SIZE=2/);
    assert.throws(() => distributed.distributedEnv({ WORLD_SIZE: 'two', RANK: '0' }), /WORLD_SIZE="two" must be/);
    assert.throws(() => distributed.distributedEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '70000' }), /TCP port/);
  });

  test('the workers get the command line without the launcher flags', () => {
    assert.deepEqual(
      workerArgs([
        'bin/moca.js',
        'train',
        'cpt',
        '--nproc-per-node',
        '2',
        '--lr',
        '1e-3',
        '--nnodes=2',
        '--node-rank',
        '1',
        '--master-addr',
        '10.0.0.1',
        '--master-port=29501',
        '--threads',
        '1',
      ]),
      ['bin/moca.js', 'train', 'cpt', '--lr', '1e-3', '--threads', '1'],
    );
    const ok = { nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: 'a', masterPort: 29500 };
    validateLaunch(ok);
    assert.throws(() => validateLaunch({ ...ok, nodeRank: 2 }), /--node-rank 2 is outside 0…1/);
    assert.throws(() => validateLaunch({ ...ok, masterPort: 0 }), /--master-port/);
  });

  test('collectives without a process group say so', () => {
    assert.equal(distributed.isInitialized(), false);
    assert.equal(distributed.dataParallelGroup(), null);
    assert.throws(() => distributed.getRank(), /not initialised; call initProcessGroup/);
    assert.equal(distributed.isBackendAvailable('gloo'), true);
  });
});
