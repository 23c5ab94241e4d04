// A small seeded pseudo-random generator whose whole state is four 32-bit integers, so that data-pipeline
// positions (which source is drawn next, which buffered sample leaves the shuffle buffer) can be saved in a JSON
// checkpoint and continued exactly. Algorithm: xoshiro128** 1.1 (Blackman & Vigna), seeded through splitmix32.
// Not cryptographic; good statistical quality for shuffling and weighted choice, and identical on every platform
// (pure 32-bit integer arithmetic).

/** The generator's state: four unsigned 32-bit integers, not all zero. */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

function checkSeed(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new RangeError(`${what} must be an integer, got ${v}`);
  return v;
}

export class Rng {
  private s: RngState;

  /**
   * A generator for `seed` (any safe integer). `stream` selects an independent sequence for the same seed, so that
   * separate consumers (source mixing, shuffle buffer) do not share numbers.
   */
  constructor(seed = 0, stream = 0) {
    checkSeed(seed, 'seed');
    checkSeed(stream, 'stream');
    // Fold the high bits in so that seeds differing only above bit 31 give different sequences.
    const hi = Math.floor(seed / 2 ** 32);
    const mix = splitmix32((seed >>> 0) ^ Math.imul(hi >>> 0, 0x27d4eb2d) ^ Math.imul(stream >>> 0, 0x165667b1));
    this.s = [mix(), mix(), mix(), mix()];
    if (this.s.every((x) => x === 0)) this.s[0] = 1;
  }

  /** A generator continuing from a saved {@link state}. */
  static fromState(state: unknown): Rng {
    const rng = new Rng(0);
    rng.setState(state);
    return rng;
  }

  /** A copy of the state (JSON-serialisable). */
  state(): RngState {
    return [...this.s];
  }

  setState(state: unknown): void {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff) ||
      state.every((x) => x === 0)
    ) {
      throw new TypeError('Rng state must be four unsigned 32-bit integers, not all zero');
    }
    this.s = [state[0], state[1], state[2], state[3]];
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n) (unbiased, by rejection), for 1 ≤ n ≤ 2³². */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`Rng.int: n must be in [1, 2^32], got ${n}`);
    if (n === 1) return 0;
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Index drawn with probability ∝ weights[i] (weights ≥ 0, finite, at least one > 0). */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) {
      if (!(w >= 0 && Number.isFinite(w))) throw new RangeError(`Rng.weighted: bad weight ${w}`);
      total += w;
    }
    if (!(total > 0)) throw new RangeError('Rng.weighted: all weights are 0');
    let r = this.float() * total;
    let last = -1;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i]! <= 0) continue;
      last = i;
      if (r < weights[i]!) return i;
      r -= weights[i]!;
    }
    return last; // rounding left r ≥ the last weight
  }

  /** Fisher–Yates shuffle in place; returns `items`. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}
