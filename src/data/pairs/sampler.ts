// Batch sampling for stage 2 (spec §3.3, §6.3): which samples form each training batch, epoch after epoch, as global
// sample indices (subset 0's samples first, then subset 1's, … — PairDataset's numbering).
//
// - `task` (task-aware batching, what the MoCa paper and the log message of its `TaskBatchDataset` describe, but
//   the released code never implements): every batch holds samples of ONE subset. Per epoch each subset's samples
//   are shuffled and cut into batches of `batchSize`; the subsets' batches are then interleaved at random, the next
//   batch coming from subset s with probability ∝ its remaining (not yet batched) samples (`weights: 'size'`, the
//   default: a uniformly random order of all batches) or ∝ a given weight among the subsets that still have
//   batches (`weights: number[]`; a heavily weighted subset then runs out early and the end of the epoch belongs to
//   the others). Every sample is used exactly once per epoch. A subset's last, smaller batch is still emitted (a
//   batch of fewer samples is harmless for the contrastive loss, and no sample is lost or counted twice); MoCa
//   instead pads every subset to a multiple of the batch size by repeating its last row, which counts that row up
//   to batchSize−1 extra times — we don't. With `dropLast` a subset's partial batch is left out of the epoch.
// - `mixed` (the released code's actual behaviour: HF Trainer's RandomSampler over the concatenated subsets): one
//   global shuffle per epoch, cut into batches; batches mix subsets. (MoCa's per-subset padding rows are not
//   reproduced here either.) `dropLast` drops the one last partial batch. Weights do not apply.
//
// Resumable: `state()` is a small JSON value (epoch, position in the epoch, the generator state the epoch's plan was
// drawn from, and the configuration); `restore()` rebuilds the epoch's plan from it and continues with exactly the
// batches an uninterrupted run would have produced. The configuration (subset names and sizes, batch size, mode,
// weights) must be the same as when the state was saved — a changed data set is refused, not silently re-planned.
import { Rng, type RngState } from '../rng.js';

export type BatchMode = 'task' | 'mixed';

export interface SamplerSubset {
  name: string;
  /** Number of samples. */
  size: number;
}

export interface TaskBatchSamplerOptions {
  subsets: readonly SamplerSubset[];
  /** Samples per batch (MoCa: 24 per device). */
  batchSize: number;
  /** Default 'task'. */
  mode?: BatchMode;
  /** Task mode: how the next batch's subset is drawn (default 'size'; numbers: one positive weight per subset). */
  weights?: 'size' | readonly number[];
  /** Default 0. */
  seed?: number;
  /** Leave out partial batches (default false). */
  dropLast?: boolean;
}

/** One batch of sample indices. */
export interface IndexBatch {
  /** 0-based epoch. */
  epoch: number;
  /** 0-based position of the batch within its epoch. */
  step: number;
  /** The subset all samples are from (task mode); null in mixed mode. */
  subset: number | null;
  /** Global sample indices (subset offset + index within the subset). */
  indices: number[];
}

export interface TaskBatchSamplerState {
  kind: 'task-batch-sampler';
  version: 1;
  mode: BatchMode;
  batchSize: number;
  dropLast: boolean;
  weights: 'size' | number[];
  seed: number;
  subsets: SamplerSubset[];
  /** The epoch of the next batch … */
  epoch: number;
  /** … and its position in that epoch (may equal batchesPerEpoch: the epoch is done, the next one not started). */
  position: number;
  /** Generator state the current epoch's plan is drawn from. */
  rng: RngState;
}

/** An epoch's batches: `order[starts[b] … starts[b+1])` are batch b's global indices. */
interface Plan {
  order: Uint32Array;
  starts: Uint32Array;
  subsetOf: Int32Array;
  /** Generator state after drawing this plan (the next epoch's start). */
  after: RngState;
}

/** Independent random stream of the sampler (other consumers of the same seed use other streams). */
const SAMPLER_STREAM = 0x7a5b;

function shuffleInPlace(a: Uint32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

function iota(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

export class TaskBatchSampler {
  readonly subsets: readonly SamplerSubset[];
  readonly batchSize: number;
  readonly mode: BatchMode;
  readonly weights: 'size' | readonly number[];
  readonly seed: number;
  readonly dropLast: boolean;
  /** Start index of each subset, plus the total at the end. */
  readonly offsets: readonly number[];
  /** Batches in every epoch. */
  readonly batchesPerEpoch: number;

  private epochStart: RngState;
  private currentEpoch = 0;
  private currentPosition = 0;
  private plan: Plan | undefined;

  constructor(options: TaskBatchSamplerOptions) {
    const { subsets, batchSize } = options;
    if (!Array.isArray(subsets) || subsets.length === 0) throw new Error('TaskBatchSampler: no subsets');
    for (const s of subsets) {
      if (!Number.isSafeInteger(s.size) || s.size < 0 || s.size >= 2 ** 32) {
        throw new RangeError(`TaskBatchSampler: subset "${s.name}" has a bad size ${s.size}`);
      }
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`TaskBatchSampler: batchSize must be a positive integer, got ${batchSize}`);
    }
    this.subsets = subsets.map((s) => ({ name: s.name, size: s.size }));
    this.batchSize = batchSize;
    this.mode = options.mode ?? 'task';
    if (this.mode !== 'task' && this.mode !== 'mixed') {
      throw new Error(`TaskBatchSampler: mode must be 'task' or 'mixed', got ${String(this.mode)}`);
    }
    const weights = options.weights ?? 'size';
    if (weights !== 'size') {
      if (this.mode === 'mixed') throw new Error("TaskBatchSampler: subset weights only apply to mode 'task'");
      if (!Array.isArray(weights) || weights.length !== subsets.length) {
        throw new Error(`TaskBatchSampler: weights must be 'size' or one number per subset (${subsets.length})`);
      }
      weights.forEach((w, i) => {
        if (!(typeof w === 'number' && w > 0 && Number.isFinite(w))) {
          throw new RangeError(`TaskBatchSampler: the weight of subset "${subsets[i]!.name}" must be > 0, got ${w}`);
        }
      });
    }
    this.weights = weights === 'size' ? 'size' : [...weights];
    this.seed = options.seed ?? 0;
    this.dropLast = options.dropLast ?? false;
    const offsets = [0];
    for (const s of this.subsets) offsets.push(offsets.at(-1)! + s.size);
    this.offsets = offsets;
    const total = offsets.at(-1)!;
    if (total >= 2 ** 32) throw new RangeError('TaskBatchSampler: more than 2^32 samples');
    this.batchesPerEpoch =
      this.mode === 'mixed' ? this.batchCount(total) : this.subsets.reduce((n, s) => n + this.batchCount(s.size), 0);
    if (this.batchesPerEpoch === 0) {
      throw new Error(
        `TaskBatchSampler: no batches in an epoch (${total} samples${this.dropLast ? `, dropLast with batchSize ${batchSize}` : ''})`,
      );
    }
    this.epochStart = new Rng(this.seed, SAMPLER_STREAM).state();
  }

  private batchCount(size: number): number {
    return this.dropLast ? Math.floor(size / this.batchSize) : Math.ceil(size / this.batchSize);
  }

  /** Total number of samples. */
  get size(): number {
    return this.offsets.at(-1)!;
  }

  /** The epoch of the next batch. */
  get epoch(): number {
    return this.currentEpoch;
  }

  /** Position of the next batch in its epoch (batches consumed in the current epoch). */
  get position(): number {
    return this.currentPosition;
  }

  /** Batches left in the current epoch. */
  get remainingInEpoch(): number {
    return this.batchesPerEpoch - this.currentPosition;
  }

  /** Subset index and index within it of a global sample index. */
  locate(index: number): { subset: number; local: number } {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`sample index ${index} out of range [0, ${this.size})`);
    }
    let s = 0;
    while (this.offsets[s + 1]! <= index) s++;
    return { subset: s, local: index - this.offsets[s]! };
  }

  /** The next batch; after the last batch of an epoch, the first batch of the next one. */
  next(): IndexBatch {
    let plan = (this.plan ??= this.build(this.epochStart));
    if (this.currentPosition >= this.batchesPerEpoch) {
      this.epochStart = plan.after;
      this.currentEpoch++;
      this.currentPosition = 0;
      plan = this.plan = this.build(this.epochStart);
    }
    const b = this.currentPosition++;
    const indices = Array.from(plan.order.subarray(plan.starts[b]!, plan.starts[b + 1]!));
    const subset = plan.subsetOf[b]!;
    return { epoch: this.currentEpoch, step: b, subset: subset < 0 ? null : subset, indices };
  }

  /** The remaining batches of the current epoch (none when it is done; call next() to start the next epoch). */
  *restOfEpoch(): Generator<IndexBatch> {
    while (this.currentPosition < this.batchesPerEpoch) yield this.next();
  }

  /** Draws an epoch's plan from the generator state `start`. */
  private build(start: RngState): Plan {
    const rng = Rng.fromState(start);
    const B = this.batchSize;
    const count = this.batchesPerEpoch;
    const starts = new Uint32Array(count + 1);
    const subsetOf = new Int32Array(count);
    let order: Uint32Array;
    if (this.mode === 'mixed') {
      const perm = iota(this.size);
      shuffleInPlace(perm, rng);
      order = this.dropLast ? perm.subarray(0, count * B) : perm;
      for (let b = 0; b < count; b++) starts[b + 1] = Math.min((b + 1) * B, order.length);
      subsetOf.fill(-1);
    } else {
      const n = this.subsets.length;
      const perms = this.subsets.map((s, i) => {
        const p = iota(s.size);
        shuffleInPlace(p, rng);
        const off = this.offsets[i]!;
        for (let k = 0; k < p.length; k++) p[k] = p[k]! + off;
        return p;
      });
      const used = this.subsets.map((s) => (this.dropLast ? Math.floor(s.size / B) * B : s.size));
      order = new Uint32Array(used.reduce((a, b) => a + b, 0));
      const taken = new Array<number>(n).fill(0);
      const w = new Array<number>(n).fill(0);
      let at = 0;
      for (let b = 0; b < count; b++) {
        for (let s = 0; s < n; s++) {
          const left = used[s]! - taken[s]!;
          w[s] = left <= 0 ? 0 : this.weights === 'size' ? left : this.weights[s]!;
        }
        const s = rng.weighted(w);
        const from = taken[s]!;
        const to = Math.min(from + B, used[s]!);
        order.set(perms[s]!.subarray(from, to), at);
        at += to - from;
        taken[s] = to;
        starts[b + 1] = at;
        subsetOf[b] = s;
      }
    }
    return { order, starts, subsetOf, after: rng.state() };
  }

  /** The sampler's position and configuration (JSON-serialisable). */
  state(): TaskBatchSamplerState {
    return {
      kind: 'task-batch-sampler',
      version: 1,
      mode: this.mode,
      batchSize: this.batchSize,
      dropLast: this.dropLast,
      weights: this.weights === 'size' ? 'size' : [...this.weights],
      seed: this.seed,
      subsets: this.subsets.map((s) => ({ ...s })),
      epoch: this.currentEpoch,
      position: this.currentPosition,
      rng: [...this.epochStart],
    };
  }

  /** Continues from a saved {@link state}; throws when it is malformed or was saved for another configuration. */
  restore(state: unknown): void {
    const s = state as TaskBatchSamplerState;
    if (typeof s !== 'object' || s === null || s.kind !== 'task-batch-sampler' || s.version !== 1) {
      throw new TypeError('not a saved TaskBatchSampler state (version 1)');
    }
    const differs = (what: string, saved: unknown, now: unknown): never => {
      throw new Error(
        `TaskBatchSampler: the saved state was made with ${what} ${JSON.stringify(saved)}, now ${JSON.stringify(now)} ` +
          '— the data or the batching options changed since it was saved',
      );
    };
    if (s.mode !== this.mode) differs('mode', s.mode, this.mode);
    if (s.batchSize !== this.batchSize) differs('batch size', s.batchSize, this.batchSize);
    if (s.dropLast !== this.dropLast) differs('dropLast', s.dropLast, this.dropLast);
    if (JSON.stringify(s.weights) !== JSON.stringify(this.weights)) differs('weights', s.weights, this.weights);
    const subsets = Array.isArray(s.subsets) ? s.subsets : [];
    const now = this.subsets;
    if (subsets.length !== now.length || subsets.some((x, i) => x?.name !== now[i]!.name || x?.size !== now[i]!.size)) {
      differs('subsets', subsets, now);
    }
    if (!Number.isSafeInteger(s.epoch) || s.epoch < 0)
      throw new TypeError(`saved sampler epoch is malformed: ${s.epoch}`);
    if (!Number.isSafeInteger(s.position) || s.position < 0 || s.position > this.batchesPerEpoch) {
      throw new TypeError(`saved sampler position ${s.position} is outside the epoch (0…${this.batchesPerEpoch})`);
    }
    const rng = Rng.fromState(s.rng); // validates
    this.epochStart = rng.state();
    this.currentEpoch = s.epoch;
    this.currentPosition = s.position;
    this.plan = undefined;
  }
}
