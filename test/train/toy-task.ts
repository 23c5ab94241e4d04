// A toy TrainTask for the trainer tests: a small MLP (with optional dropout, so libtorch's RNG matters) regressing a
// fixed function of its input, on a seeded synthetic stream where sample j depends only on (seed, j) — so k
// micro-batches of b samples cover exactly the samples of one batch of k·b.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import * as torch from '../../src/torch/index.js';
import { F, Linear, Module, type Parameter, type Tensor } from '../../src/torch/index.js';
import type { TrainTask } from '../../src/train/trainer.js';

export interface ToyOptions {
  /** Data seed (default 7). */
  seed?: number;
  batchSize?: number;
  /** Length of the data in samples (default: endless). */
  numSamples?: number;
  inDim?: number;
  hidden?: number;
  dropout?: number;
  dtype?: 'float32' | 'float64';
  /** Wait this long (ms, asynchronously) in every nextBatch (child-process signal tests). */
  delayMs?: number;
  /** Batch indices whose targets are NaN (non-finite loss). */
  nanAtBatches?: readonly number[];
  /** Every batch has NaN targets. */
  nanAll?: boolean;
  /** Prefix of parameter names (to provoke name mismatches). */
  prefix?: string;
  /** Data parallelism: this rank takes the batches whose index is rank modulo worldSize. */
  shard?: { rank: number; worldSize: number };
}

export class ToyMlp extends Module {
  fc1: Linear;
  fc2: Linear;

  constructor(
    inDim: number,
    hidden: number,
    dtype: 'float32' | 'float64',
    readonly p: number,
  ) {
    super();
    this.fc1 = new Linear(inDim, hidden, { dtype });
    this.fc2 = new Linear(hidden, 1, { dtype });
  }

  forward(x: Tensor): Tensor {
    const h = F.dropout(this.fc1.forward(x).relu(), this.p, this.training);
    return this.fc2.forward(h).squeeze(1);
  }
}

/** mulberry32 seeded from (seed, j): the j-th sample's generator. */
function sampleRng(seed: number, j: number): () => number {
  let a = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(j + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function target(x: readonly number[]): number {
  return Math.sin(2 * x[0]!) + 0.5 * x[1]! * x[2]! - 0.3 * x[3]!;
}

export interface ToyBatch {
  index: number;
  x: Tensor;
  y: Tensor;
  size: number;
}

export class ToyTask implements TrainTask<ToyBatch> {
  readonly model: ToyMlp;
  /** Index of the next batch. */
  next = 0;
  readonly opts: Required<Omit<ToyOptions, 'numSamples'>> & { numSamples: number };

  /** Builds the model from libtorch's current generator state (seed it first for a reproducible init). */
  constructor(options: ToyOptions = {}) {
    this.opts = {
      seed: 7,
      batchSize: 8,
      numSamples: Infinity,
      inDim: 4,
      hidden: 16,
      dropout: 0,
      dtype: 'float32',
      delayMs: 0,
      nanAtBatches: [],
      nanAll: false,
      prefix: '',
      shard: { rank: 0, worldSize: 1 },
      ...options,
    };
    this.model = new ToyMlp(this.opts.inDim, this.opts.hidden, this.opts.dtype, this.opts.dropout);
  }

  namedParameters(): [string, Parameter][] {
    return this.model.namedParameters().map(([n, p]) => [this.opts.prefix + n, p]);
  }

  async nextBatch(): Promise<ToyBatch | null> {
    const { batchSize, numSamples, inDim, seed, dtype, shard } = this.opts;
    while (this.next % shard.worldSize !== shard.rank) this.next++;
    const start = this.next * batchSize;
    if (start >= numSamples) return null;
    if (this.opts.delayMs > 0) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    const end = Math.min(start + batchSize, numSamples);
    const xs: number[] = [];
    const ys: number[] = [];
    const nan = this.opts.nanAll || this.opts.nanAtBatches.includes(this.next);
    for (let j = start; j < end; j++) {
      const rng = sampleRng(seed, j);
      const x = Array.from({ length: inDim }, () => 2 * rng() - 1);
      xs.push(...x);
      ys.push(nan ? NaN : target(x));
    }
    const n = end - start;
    const batch = {
      index: this.next,
      x: torch.tensor(Float64Array.from(xs), { shape: [n, inDim], dtype }),
      y: torch.tensor(Float64Array.from(ys), { dtype }),
      size: n,
    };
    this.next++;
    return batch;
  }

  loss(batch: ToyBatch): { loss: Tensor; metrics: Record<string, number> } {
    const pred = this.model.forward(batch.x);
    const loss = F.mseLoss(pred, batch.y);
    const mae = pred.sub(batch.y).abs().mean().item();
    return { loss, metrics: { mae, tokens: batch.size } };
  }

  dataState(): unknown {
    return { next: this.next };
  }

  restoreDataState(state: unknown): void {
    this.next = (state as { next: number }).next;
  }

  exportModel(dir: string): void {
    torch.saveSafetensors(path.join(dir, 'model.safetensors'), this.model.stateDict());
  }
}

/** Raw bytes of every tensor in a safetensors file, by name. */
export function tensorBytes(file: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const loaded = torch.loadSafetensors(file);
  for (const [n, t] of loaded) {
    out.set(n, Buffer.from(t.toBytes()));
    t.dispose();
  }
  return out;
}

/** Copies of the task's parameter values (float64 arrays), by name. */
export function paramValues(task: ToyTask): Map<string, number[]> {
  return new Map(task.namedParameters().map(([n, p]) => [n, p.toArray()]));
}

export function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
