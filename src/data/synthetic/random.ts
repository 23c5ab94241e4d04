// Small drawing helpers over the data layer's seeded generator (src/data/rng.ts: xoshiro128**, pure 32-bit integer
// arithmetic, identical on every platform). Every part of the world draws from its own stream of the world seed, so
// changing how one part is generated does not reshuffle the others.
import { Rng } from '../rng.js';

/** Independent streams of one world seed (stable numbers: changing them changes the world). */
export const STREAMS = {
  heldOut: 1,
  trainScenes: 2,
  trainPages: 3,
  corpusScenes: 4,
  corpusPages: 5,
  corpusText: 6,
  pairs: 7,
  eval: 8,
  beir: 9,
} as const;

export function streamRng(seed: number, stream: number, sub = 0): Rng {
  return new Rng(seed, stream * 1000 + sub);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new RangeError('pick: empty list');
  return items[rng.int(items.length)]!;
}

export function chance(rng: Rng, p: number): boolean {
  return rng.float() < p;
}

/** Uniform integer in [lo, hi]. */
export function between(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** `k` distinct items in random order. */
export function sample<T>(rng: Rng, items: readonly T[], k: number): T[] {
  if (k > items.length) throw new RangeError(`sample: ${k} of ${items.length} items`);
  return rng.shuffle([...items]).slice(0, k);
}
