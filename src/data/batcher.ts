// Token-budget dynamic batching for stage 1 (spec §2.2), streaming. Every document gets a cost (sample.ts); costs
// fall into buckets with thresholds sorted(set(32·int(1.3^i) for i < 100)) = 32, 64, 96, 128, 192, …, a document
// going to the first threshold ≥ its cost; a bucket's micro-batch holds floor(tokensPerBatch / threshold) documents
// (12800 → 400, 200, 133, 100, 66, 50, 40, 30, 23, 17, 13, 10, 7), so every micro-batch costs about the same.
//
// MoCa computes all costs up front and shuffles whole buckets (polars); a stream cannot, so here documents pass
// through a seeded shuffle buffer (up to `bufferSize` documents; a random one leaves each time a new one arrives)
// into per-bucket pools, and a micro-batch is emitted as soon as a pool is full. The buffer holds documents with
// their encoded image bytes and costs, never pixels: images are decoded and processed by prepareSample when a batch
// is used.
//
// End of data (deliberate difference from the reference, which drops each bucket's remainder): when the corpus
// ends, the shuffle buffer is drained into the pools, then every non-empty pool is emitted as one last, partial
// micro-batch (`partial: true`, ascending threshold order). Nothing is silently dropped.
//
// Resume: `state()` is JSON holding the corpus position, this batcher's PRNG state, and, for each document still
// waiting (in the shuffle buffer or a pool), its locator (source, shard, offset, row, pass), id and measured cost —
// not its bytes. `restore(state)` re-reads exactly those documents from the data files (checking their ids), so
// the batches that follow are identical to the uninterrupted run's. The state is a few hundred bytes per waiting
// document (≈ bufferSize + Σ pool sizes documents).
import type { CorpusState, DocumentLocator, MixedCorpus } from './corpus.js';
import { DataError } from './errors.js';
import { Rng, type RngState } from './rng.js';
import { checkCursor } from './source.js';
import {
  DEFAULT_MAX_LENGTH,
  measureDocument,
  type MeasuredDocument,
  type MeasureOptions,
  type TextTokenizer,
} from './sample.js';

/** MoCa's micro-batch budget in equivalent tokens (`micro_batch_size=12800`). */
export const DEFAULT_TOKENS_PER_BATCH = 12800;
export const DEFAULT_BUFFER_SIZE = 2048;

/** MoCa's bucket thresholds: sorted(set(base·int(rate^i) for i < n)) (defaults 32, 1.3, 100). */
export function bucketThresholds(n = 100, base = 32, rate = 1.3): number[] {
  const set = new Set<number>();
  for (let i = 0; i < n; i++) set.add(base * Math.trunc(rate ** i));
  return [...set].sort((a, b) => a - b);
}

/** Documents per micro-batch for a bucket: floor(tokensPerBatch / threshold). */
export function microBatchSize(threshold: number, tokensPerBatch = DEFAULT_TOKENS_PER_BATCH): number {
  return Math.floor(tokensPerBatch / threshold);
}

/** Index of the first threshold ≥ cost (polars `search_sorted`); -1 when cost exceeds them all. */
export function bucketIndex(cost: number, thresholds: readonly number[]): number {
  let lo = 0;
  let hi = thresholds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (thresholds[mid]! < cost) lo = mid + 1;
    else hi = mid;
  }
  return lo < thresholds.length ? lo : -1;
}

export interface TokenBudgetBatcherOptions extends Omit<MeasureOptions, 'maxLength'> {
  /** Measures text tokens (the model's tokenizer). */
  tokenizer: TextTokenizer;
  /** Equivalent tokens per micro-batch (default 12800). */
  tokensPerBatch?: number;
  /** Cost clip (default 1280); its bucket must hold at least one document. */
  maxLength?: number;
  /** Shuffle-buffer capacity in documents (default 2048; 0 = no shuffling). */
  bufferSize?: number;
  /** Seed of the shuffle buffer (default 0). */
  seed?: number;
  /** Bucket thresholds (default {@link bucketThresholds}()). */
  thresholds?: readonly number[];
}

export interface MicroBatch {
  /** 0-based position in the batch stream. */
  index: number;
  /** Bucket index and its cost threshold. */
  bucket: number;
  threshold: number;
  /** floor(tokensPerBatch / threshold): the documents a full batch of this bucket holds. */
  capacity: number;
  /** True only for the remainders emitted when the data ends (fewer than `capacity` documents). */
  partial: boolean;
  samples: MeasuredDocument[];
}

type Phase = 'stream' | 'drain' | 'flush' | 'done';

/** A waiting document in the saved state. */
export interface WaitingEntry extends DocumentLocator {
  id: string;
  textTokens: number;
  imageTokens: number;
  nImages: number;
  imageSizes: [number, number][];
  cost: number;
}

export interface BatcherState {
  kind: 'moca.data.token-budget-batcher';
  version: 1;
  config: { tokensPerBatch: number; maxLength: number; bufferSize: number; seed: number; thresholds: number[] };
  corpus: CorpusState;
  rng: RngState;
  phase: Phase;
  flushBucket: number;
  emitted: number;
  counters: { partialBatches: number; samples: number; batchesByThreshold: Record<number, number> };
  buffer: WaitingEntry[];
  /** Non-empty pools only. */
  pools: { bucket: number; entries: WaitingEntry[] }[];
}

export interface BatcherStats {
  batches: number;
  partialBatches: number;
  samples: number;
  /** Documents in the shuffle buffer / in the pools right now. */
  buffered: number;
  pooled: number;
  /** Batches emitted per bucket threshold. */
  batchesByThreshold: Record<number, number>;
}

export class TokenBudgetBatcher implements AsyncIterable<MicroBatch> {
  readonly thresholds: readonly number[];
  readonly capacities: readonly number[];
  readonly tokensPerBatch: number;
  readonly maxLength: number;
  readonly bufferSize: number;
  readonly seed: number;
  private readonly tokenizer: TextTokenizer;
  private readonly measureOptions: MeasureOptions;
  private readonly rng: Rng;
  private buffer: MeasuredDocument[] = [];
  private pools: MeasuredDocument[][];
  private phase: Phase = 'stream';
  private flushBucket = 0;
  private emitted = 0;
  private partialCount = 0;
  private sampleCount = 0;
  private byThreshold: Record<number, number> = {};
  private started = false;
  private busy = false;

  constructor(
    readonly corpus: MixedCorpus,
    options: TokenBudgetBatcherOptions,
  ) {
    this.tokenizer = options.tokenizer;
    this.tokensPerBatch = options.tokensPerBatch ?? DEFAULT_TOKENS_PER_BATCH;
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    this.bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
    this.seed = options.seed ?? 0;
    this.thresholds = [...(options.thresholds ?? bucketThresholds())];
    for (const [what, v] of [
      ['tokensPerBatch', this.tokensPerBatch],
      ['maxLength', this.maxLength],
    ] as const) {
      if (!(Number.isSafeInteger(v) && v >= 1)) throw new RangeError(`${what} must be a positive integer, got ${v}`);
    }
    if (!(Number.isSafeInteger(this.bufferSize) && this.bufferSize >= 0)) {
      throw new RangeError(`bufferSize must be an integer ≥ 0, got ${this.bufferSize}`);
    }
    if (
      this.thresholds.length === 0 ||
      this.thresholds.some((t, i) => !(Number.isSafeInteger(t) && t > 0) || (i > 0 && t <= this.thresholds[i - 1]!))
    ) {
      throw new RangeError('thresholds must be increasing positive integers');
    }
    this.capacities = this.thresholds.map((t) => microBatchSize(t, this.tokensPerBatch));
    const top = bucketIndex(this.maxLength, this.thresholds);
    if (top < 0) throw new RangeError(`maxLength ${this.maxLength} exceeds the largest bucket threshold`);
    if (this.capacities[top] === 0) {
      // MoCa raises for this too ("Some groups have micro_batch_size of 0").
      throw new RangeError(
        `a document of cost ${this.maxLength} (maxLength) falls in bucket ${this.thresholds[top]}, which holds ` +
          `floor(${this.tokensPerBatch}/${this.thresholds[top]}) = 0 documents; raise tokensPerBatch or lower maxLength`,
      );
    }
    this.measureOptions = {
      maxLength: this.maxLength,
      ...(options.imageCheck !== undefined ? { imageCheck: options.imageCheck } : {}),
      ...(options.maxPixels !== undefined ? { maxPixels: options.maxPixels } : {}),
    };
    this.rng = new Rng(this.seed, 2);
    this.pools = this.thresholds.map(() => []);
  }

  /** The next micro-batch, or null at the end of the data. */
  async next(): Promise<MicroBatch | null> {
    if (this.busy) throw new Error('TokenBudgetBatcher.next: the previous call has not finished');
    this.busy = true;
    this.started = true;
    try {
      return await this.step();
    } finally {
      this.busy = false;
    }
  }

  /** Iterates with {@link next}; leaving the loop early closes the corpus's files (it can still continue). */
  async *[Symbol.asyncIterator](): AsyncGenerator<MicroBatch> {
    try {
      for (;;) {
        const b = await this.next();
        if (b === null) return;
        yield b;
      }
    } finally {
      await this.corpus.close();
    }
  }

  private async step(): Promise<MicroBatch | null> {
    for (;;) {
      if (this.phase === 'stream') {
        const doc = await this.corpus.read();
        if (doc === null) {
          this.phase = 'drain';
          continue;
        }
        let m: MeasuredDocument;
        try {
          m = await measureDocument(doc, this.tokenizer, this.measureOptions);
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
          this.corpus.recorder.record(e, 'measure');
          continue;
        }
        let out = m;
        if (this.bufferSize > 0) {
          if (this.buffer.length < this.bufferSize) {
            this.buffer.push(m);
            continue;
          }
          const j = this.rng.int(this.bufferSize);
          out = this.buffer[j]!;
          this.buffer[j] = m;
        }
        const batch = this.place(out);
        if (batch) return batch;
      } else if (this.phase === 'drain') {
        if (this.buffer.length === 0) {
          this.phase = 'flush';
          continue;
        }
        const j = this.rng.int(this.buffer.length);
        const out = this.buffer[j]!;
        this.buffer[j] = this.buffer[this.buffer.length - 1]!;
        this.buffer.pop();
        const batch = this.place(out);
        if (batch) return batch;
      } else if (this.phase === 'flush') {
        while (this.flushBucket < this.pools.length && this.pools[this.flushBucket]!.length === 0) this.flushBucket++;
        if (this.flushBucket === this.pools.length) {
          this.phase = 'done';
          continue;
        }
        const b = this.flushBucket++;
        return this.emit(b, true);
      } else {
        return null;
      }
    }
  }

  /** Puts a document into its bucket's pool; returns the batch when that fills the pool. */
  private place(m: MeasuredDocument): MicroBatch | null {
    const b = bucketIndex(m.cost, this.thresholds);
    if (b < 0) throw new Error(`document ${m.doc.id}: cost ${m.cost} exceeds every bucket threshold`);
    const pool = this.pools[b]!;
    pool.push(m);
    return pool.length >= this.capacities[b]! ? this.emit(b, false) : null;
  }

  private emit(b: number, partial: boolean): MicroBatch {
    const samples = this.pools[b]!;
    this.pools[b] = [];
    const threshold = this.thresholds[b]!;
    const isPartial = partial && samples.length < this.capacities[b]!;
    const batch: MicroBatch = {
      index: this.emitted++,
      bucket: b,
      threshold,
      capacity: this.capacities[b]!,
      partial: isPartial,
      samples,
    };
    if (isPartial) this.partialCount++;
    this.sampleCount += samples.length;
    this.byThreshold[threshold] = (this.byThreshold[threshold] ?? 0) + 1;
    return batch;
  }

  private entry(m: MeasuredDocument): WaitingEntry {
    return {
      ...this.corpus.locate(m.doc),
      id: m.doc.id,
      textTokens: m.textTokens,
      imageTokens: m.imageTokens,
      nImages: m.nImages,
      imageSizes: m.imageSizes.map(([w, h]) => [w, h]),
      cost: m.cost,
    };
  }

  private config(): BatcherState['config'] {
    return {
      tokensPerBatch: this.tokensPerBatch,
      maxLength: this.maxLength,
      bufferSize: this.bufferSize,
      seed: this.seed,
      thresholds: [...this.thresholds],
    };
  }

  /** Everything needed to continue after the last batch returned (JSON). Not valid while next() is pending. */
  state(): BatcherState {
    if (this.busy) throw new Error('TokenBudgetBatcher.state: a next() call is in progress');
    return {
      kind: 'moca.data.token-budget-batcher',
      version: 1,
      config: this.config(),
      corpus: this.corpus.state(),
      rng: this.rng.state(),
      phase: this.phase,
      flushBucket: this.flushBucket,
      emitted: this.emitted,
      counters: {
        partialBatches: this.partialCount,
        samples: this.sampleCount,
        batchesByThreshold: { ...this.byThreshold },
      },
      buffer: this.buffer.map((m) => this.entry(m)),
      pools: this.pools.flatMap((p, bucket) => (p.length ? [{ bucket, entries: p.map((m) => this.entry(m)) }] : [])),
    };
  }

  /**
   * Continues from a saved state: restores the corpus position and re-reads the waiting documents from the data
   * files. The batcher and its corpus must be fresh and configured as when the state was saved.
   */
  async restore(state: unknown): Promise<void> {
    if (this.started) throw new Error('TokenBudgetBatcher.restore: restore into a fresh batcher, before next()');
    const s = state as BatcherState;
    if (typeof s !== 'object' || s === null || s.kind !== 'moca.data.token-budget-batcher' || s.version !== 1) {
      throw new TypeError('not a saved TokenBudgetBatcher state (kind moca.data.token-budget-batcher, version 1)');
    }
    const mine = JSON.stringify(this.config());
    if (JSON.stringify(s.config) !== mine) {
      throw new Error(
        `the saved batcher state was made with ${JSON.stringify(s.config)}, this batcher has ${mine}; ` +
          'the same settings are needed to continue the same batch sequence',
      );
    }
    if (
      !['stream', 'drain', 'flush', 'done'].includes(s.phase) ||
      !Array.isArray(s.buffer) ||
      !Array.isArray(s.pools)
    ) {
      throw new TypeError('malformed batcher state');
    }
    this.corpus.restore(s.corpus);
    const entries = [...s.buffer, ...s.pools.flatMap((p) => p.entries)];
    const docs = await this.corpus.fetch(
      entries.map((e) => ({ source: e.source, cursor: checkCursor(e.cursor, `document ${e.id}`), epoch: e.epoch })),
    );
    const measured = entries.map((e, i): MeasuredDocument => {
      const doc = docs[i]!;
      if (doc.id !== e.id) {
        throw new Error(
          `saved document ${e.id} now reads as ${doc.id}: the data files changed since the state was saved`,
        );
      }
      return {
        doc,
        textTokens: e.textTokens,
        imageTokens: e.imageTokens,
        nImages: e.nImages,
        imageSizes: e.imageSizes.map(([w, h]) => [w, h]),
        cost: e.cost,
      };
    });
    this.buffer = measured.slice(0, s.buffer.length);
    this.pools = this.thresholds.map(() => []);
    let k = s.buffer.length;
    for (const p of s.pools) {
      if (!Number.isInteger(p.bucket) || p.bucket < 0 || p.bucket >= this.pools.length) {
        throw new TypeError(`malformed batcher state: bucket ${p.bucket}`);
      }
      this.pools[p.bucket] = measured.slice(k, k + p.entries.length);
      k += p.entries.length;
    }
    this.rng.setState(s.rng);
    this.phase = s.phase;
    this.flushBucket = s.flushBucket;
    this.emitted = s.emitted;
    this.partialCount = s.counters?.partialBatches ?? 0;
    this.sampleCount = s.counters?.samples ?? 0;
    this.byThreshold = { ...(s.counters?.batchesByThreshold ?? {}) };
  }

  stats(): BatcherStats {
    return {
      batches: this.emitted,
      partialBatches: this.partialCount,
      samples: this.sampleCount,
      buffered: this.buffer.length,
      pooled: this.pools.reduce((s, p) => s + p.length, 0),
      batchesByThreshold: { ...this.byThreshold },
    };
  }
}
