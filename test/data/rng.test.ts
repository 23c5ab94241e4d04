// The serialisable PRNG: reference values, determinism, state round trip, distributions.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Rng } from '../../src/data/index.js';

describe('Rng', () => {
  test('xoshiro128** reference outputs from state [1, 2, 3, 4]', () => {
    const rng = Rng.fromState([1, 2, 3, 4]);
    // Hand-derived from the reference C code (first outputs: rotl(s1·5, 7)·9 …).
    assert.deepEqual([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()], [11520, 0, 5927040]);
  });

  test('same seed → same sequence; other seed or stream → different', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const seqA = Array.from({ length: 20 }, () => a.nextUint32());
    assert.deepEqual(
      Array.from({ length: 20 }, () => b.nextUint32()),
      seqA,
    );
    const c = new Rng(43);
    assert.notDeepEqual(
      Array.from({ length: 20 }, () => c.nextUint32()),
      seqA,
    );
    const d = new Rng(42, 1);
    assert.notDeepEqual(
      Array.from({ length: 20 }, () => d.nextUint32()),
      seqA,
    );
    // Seeds that differ only above bit 31.
    assert.notEqual(new Rng(2 ** 32 + 5).nextUint32(), new Rng(5).nextUint32());
  });

  test('state() round-trips through JSON and continues the sequence', () => {
    const rng = new Rng(7);
    for (let i = 0; i < 13; i++) rng.float();
    const saved = JSON.parse(JSON.stringify(rng.state())) as unknown;
    const rest = Array.from({ length: 10 }, () => rng.float());
    const again = Rng.fromState(saved);
    assert.deepEqual(
      Array.from({ length: 10 }, () => again.float()),
      rest,
    );
    assert.throws(() => Rng.fromState([0, 0, 0, 0]), /not all zero/);
    assert.throws(() => Rng.fromState([1, 2, 3]), /four unsigned/);
  });

  test('float in [0, 1), int in range and roughly uniform, weighted ∝ weights', () => {
    const rng = new Rng(1);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 50000; i++) {
      const f = rng.float();
      assert.ok(f >= 0 && f < 1);
      counts[rng.int(5)]!++;
    }
    for (const c of counts) assert.ok(Math.abs(c / 50000 - 0.2) < 0.01, `int(5) frequencies ${counts}`);
    const w = [1, 0, 3, 6];
    const hits = [0, 0, 0, 0];
    for (let i = 0; i < 50000; i++) hits[rng.weighted(w)]!++;
    assert.equal(hits[1], 0);
    for (const i of [0, 2, 3]) assert.ok(Math.abs(hits[i]! / 50000 - w[i]! / 10) < 0.01, `weighted ${hits}`);
    assert.throws(() => rng.weighted([0, 0]), /all weights are 0/);
  });

  test('shuffle is a permutation and deterministic', () => {
    const a = new Rng(3).shuffle(Array.from({ length: 50 }, (_, i) => i));
    const b = new Rng(3).shuffle(Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(a, b);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      a,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });
});
