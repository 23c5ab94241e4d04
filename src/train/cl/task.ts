// Stage 2 as a trainer task: task-aware (or mixed) batches of pairs → InfoNCE, plain or with GradCache.
//
// Data parallelism (a process group of W > 1 ranks): `batchSize` is per rank. Every rank runs the same sampler over
// global batches of batchSize · W pairs — so in task mode all ranks are on the same subset at every step — and
// takes its contiguous slice (rank r: rows [r·n/W, (r+1)·n/W) of an n-row batch). The loss is InfoNCE over the
// GLOBAL batch: each rank embeds its slice, the embeddings of all ranks are gathered (crossRankEmbeddings: the local
// slice keeps its autograd graph, the others are constants) and every query is scored against all W·B positives
// (and hard negatives). Every rank thus computes the same loss value L and, by backward, its own share ∂L/∂θ
// through its slice; the true gradient of L is the SUM of the shares, which the trainer forms
// (gradientReduction 'sum'). The reference averages these shares over the ranks (DDP's default), i.e. divides the
// gradient by the world size; we don't: W ranks × batch B train exactly like one process with batch W·B.
// GradCache composes: the cached embeddings are gathered the same way, the loss gradient w.r.t. the local
// embeddings is back-propagated chunk by chunk, and the shares are summed after backward.
// A global batch is skipped (on every rank) when some rank has no usable row or fewer than 2 rows remain in all.
import path from 'node:path';

import { loadPairDataset, type PairDataset, type PairSide, TaskBatchSampler } from '../../data/pairs/index.js';
import { type AttentionMode, loadQwen25VL, type Pooling, type Qwen25VLModel } from '../../models/index.js';
import { Qwen2VLImageProcessor } from '../../processing/image/index.js';
import { imageTokenIds, type SequenceItem } from '../../processing/sequence.js';
import { Tokenizer } from '../../processing/tokenizer.js';
import { autocast, distributed, type DTypeLike, type Parameter, type Tensor } from '../../torch/index.js';
import { ErrorLog } from '../../util/output.js';
import { exportEmbeddingModel } from '../export.js';
import type { TrainTask } from '../trainer.js';
import { gradCache } from './grad-cache.js';
import { embedItems, type PairImage, prepareSide, type Preprocessor } from './inputs.js';
import { crossRankEmbeddings } from './cross-rank.js';
import { infoNce, type InfoNceOptions } from './loss.js';

export interface ClTaskOptions {
  modelDir: string;
  /** `NAME=PATH[@WEIGHT][#CAP]` specifications (see src/data/pairs/reader.ts). */
  subsets: string[];
  /** Pairs per batch (MoCa: 24 per device). */
  batchSize: number;
  /** Hard negatives per query (MoCa: 2; 0: in-batch negatives only). */
  hardNegatives: number;
  /** `task`: each batch from one subset (the paper's intent); `mixed`: the reference code's global shuffle. */
  batching: 'task' | 'mixed';
  loss: InfoNceOptions;
  /** GradCache chunk size (rows per forward); null: plain backward. */
  gradCacheChunk: number | null;
  maxLength?: number;
  epochs?: number;
  /** Row cap for subsets whose specification has none (MoCa: 50,000). */
  maxSamplesPerSubset?: number | null;
  seed?: number;
  errorsFile: string;
  strict?: boolean;
  dtype?: DTypeLike;
  autocast?: 'bfloat16';
  minPixels?: number;
  maxPixels?: number;
  /** Attention of the model being fine-tuned (default bidirectional, as MoCa; causal for a causal-embedding
   * baseline, usually with last-token pooling). */
  attention?: AttentionMode;
  /** Pooling of the embeddings (default mean, as MoCa). */
  pooling?: Pooling;
  /** Data parallelism: the process group whose ranks share each global batch (default: the default group when it
   * has more than one rank; null: none). */
  group?: distributed.ProcessGroup | null;
}

export interface ClBatch {
  queries: SequenceItem[];
  positives: SequenceItem[];
  /** Row i·k + j is hard negative j of query i. */
  negatives: SequenceItem[];
  k: number;
  subset: string | null;
  /** Data parallelism: the rows of every rank's slice of the global batch (in rank order). */
  rankRows?: number[];
}

export class ClTask implements TrainTask<ClBatch> {
  readonly summedMetrics = ['pairs', 'dropped_pairs'];
  lossAndBackward?: (batch: ClBatch, gradScale: number) => { value: number; metrics: Record<string, number> };
  /** Under data parallelism each rank's loss is the global batch's, its gradient a share (see the header). */
  readonly gradientReduction: 'mean' | 'sum';

  private constructor(
    readonly model: Qwen25VLModel,
    readonly tokenizer: Tokenizer,
    readonly imageProcessor: Qwen2VLImageProcessor,
    readonly dataset: PairDataset,
    readonly sampler: TaskBatchSampler,
    private readonly errors: ErrorLog,
    private readonly options: ClTaskOptions,
    readonly group: distributed.ProcessGroup | null,
  ) {
    this.gradientReduction = group !== null ? 'sum' : 'mean';
    if (options.gradCacheChunk !== null) {
      const chunk = options.gradCacheChunk;
      this.lossAndBackward = (batch, gradScale) =>
        this.withPrecision(() => this.gradCacheStep(batch, chunk, gradScale));
    }
  }

  static async create(options: ClTaskOptions): Promise<ClTask> {
    const tokenizer = Tokenizer.fromDir(options.modelDir);
    const { model } = loadQwen25VL(options.modelDir, {
      attention: options.attention ?? 'bidirectional',
      dtype: options.dtype ?? 'float32',
    });
    const imageProcessor = await Qwen2VLImageProcessor.fromDir(options.modelDir, options);
    const errors = new ErrorLog(options.errorsFile);
    const dataset = await loadPairDataset(options.subsets, {
      negativeRatio: options.hardNegatives,
      seed: options.seed ?? 0,
      errors: { record: (entry: Record<string, unknown>) => errors.record(entry) },
      strict: options.strict ?? false,
      ...(options.maxSamplesPerSubset === undefined ? {} : { maxSamples: options.maxSamplesPerSubset }),
    });
    if (dataset.size < 2) throw new Error(`the training pairs hold ${dataset.size} usable rows; at least 2 are needed`);
    const pg = options.group === undefined ? distributed.dataParallelGroup() : options.group;
    const group = pg !== null && pg.size > 1 ? pg : null;
    const sampler = new TaskBatchSampler({
      subsets: dataset.samplerSubsets(),
      batchSize: options.batchSize * (group?.size ?? 1),
      mode: options.batching,
      weights: dataset.samplerWeights(),
      seed: options.seed ?? 0,
    });
    return new ClTask(model, tokenizer, imageProcessor, dataset, sampler, errors, options, group);
  }

  /** Optimizer steps in `epochs` passes with `gradAccumulation` (global) batches per step. */
  stepsFor(epochs: number, gradAccumulation: number): number {
    return Math.max(1, Math.ceil((this.sampler.batchesPerEpoch * epochs) / gradAccumulation));
  }

  namedParameters(): [string, Parameter][] {
    return this.model.namedParameters();
  }

  private get preprocessor(): Preprocessor {
    return { tokenizer: this.tokenizer, imageProcessor: this.imageProcessor };
  }

  async nextBatch(): Promise<ClBatch | null> {
    const epochs = this.options.epochs ?? 1;
    const world = this.group?.size ?? 1;
    const rank = this.group?.rank ?? 0;
    for (;;) {
      const ib = this.sampler.next();
      if (ib.epoch >= epochs) return null;
      // This rank's contiguous slice of the global batch.
      const n = ib.indices.length;
      const slice = ib.indices.slice(Math.floor((rank * n) / world), Math.floor(((rank + 1) * n) / world));
      const samples = this.dataset.batch(slice);
      const rows: { q: SequenceItem; p: SequenceItem; n: SequenceItem[] }[] = [];
      for (const s of samples) {
        try {
          rows.push({
            q: await prepareSide(asSide(s.query), this.preprocessor),
            p: await prepareSide(asSide(s.positive), this.preprocessor),
            n: await Promise.all(s.negatives.map((n) => prepareSide(asSide(n), this.preprocessor))),
          });
        } catch (e) {
          if (this.options.strict) throw e;
          this.errors.record({ subset: s.subset, id: s.id, row: s.row, stage: 'prepare', error: (e as Error).message });
        }
      }
      // Rows of a batch share one hard-negative count; a subset without negatives trains on in-batch ones only.
      let k = rows.length ? Math.min(...rows.map((r) => r.n.length)) : 0;
      let rankRows: number[] | undefined;
      if (this.group !== null) {
        // Every rank must agree on skipping the batch and on k (the gathered negatives have one shape).
        const all = await distributed.allGatherObject({ rows: rows.length, k }, { group: this.group });
        rankRows = all.map((a) => a.rows);
        if (rankRows.some((r) => r === 0) || rankRows.reduce((a, b) => a + b, 0) < 2) continue;
        k = Math.min(...all.map((a) => a.k));
      } else if (rows.length < 2) {
        continue; // a contrastive batch needs at least two pairs
      }
      return {
        queries: rows.map((r) => r.q),
        positives: rows.map((r) => r.p),
        negatives: rows.flatMap((r) => r.n.slice(0, k)),
        k,
        subset: ib.subset === null ? null : (this.dataset.subsets[ib.subset]?.name ?? null),
        ...(rankRows ? { rankRows } : {}),
      };
    }
  }

  private embed(items: readonly SequenceItem[]): Tensor {
    return embedItems(
      this.model,
      items,
      imageTokenIds(this.tokenizer),
      this.options.maxLength ?? 1280,
      this.options.pooling ?? 'mean',
    );
  }

  private withPrecision<T>(fn: () => T): T {
    return this.options.autocast ? autocast(this.options.autocast, fn) : fn();
  }

  /** InfoNCE of the batch from its local embeddings (queries, positives[, negatives]); under data parallelism
   * over the global batch (the other ranks' embeddings gathered). */
  private lossOf(batch: ClBatch, e: Tensor[]): ReturnType<typeof infoNce> {
    if (this.group !== null && batch.rankRows) {
      const rows = batch.rankRows;
      const total = rows.reduce((a, b) => a + b, 0);
      const q = crossRankEmbeddings(e[0]!, rows, this.group);
      const p = crossRankEmbeddings(e[1]!, rows, this.group);
      const n =
        batch.k > 0
          ? crossRankEmbeddings(
              e[2]!,
              rows.map((r) => r * batch.k),
              this.group,
            ).view(total, batch.k, -1)
          : null;
      return infoNce(q, p, n, this.options.loss);
    }
    const b = batch.queries.length;
    return infoNce(e[0]!, e[1]!, batch.k > 0 ? e[2]!.view(b, batch.k, -1) : null, this.options.loss);
  }

  loss(batch: ClBatch): { loss: Tensor; metrics: Record<string, number> } {
    return this.withPrecision(() => {
      const groups = [batch.queries, batch.positives, ...(batch.k > 0 ? [batch.negatives] : [])];
      const r = this.lossOf(
        batch,
        groups.map((g) => this.embed(g)),
      );
      return { loss: r.loss, metrics: { accuracy: r.accuracy, pairs: batch.queries.length } };
    });
  }

  private gradCacheStep(
    batch: ClBatch,
    chunk: number,
    gradScale: number,
  ): { value: number; metrics: Record<string, number> } {
    const groups = [batch.queries, batch.positives, ...(batch.k > 0 ? [batch.negatives] : [])];
    const out = gradCache(
      groups.map((items) => ({
        size: items.length,
        embed: (idx: readonly number[]) => this.embed(idx.map((i) => items[i]!)),
      })),
      (e) => {
        const r = this.lossOf(batch, e);
        return { loss: r.loss, extra: r.accuracy };
      },
      { chunkSize: chunk, gradScale },
    );
    return { value: out.value, metrics: { accuracy: out.extra, pairs: batch.queries.length } };
  }

  dataState(): unknown {
    return this.sampler.state();
  }

  restoreDataState(state: unknown): void {
    this.sampler.restore(state);
  }

  async exportModel(dir: string): Promise<void> {
    await exportEmbeddingModel(dir, this.model, this.tokenizer, this.imageProcessor);
  }

  errorCount(): number {
    return this.errors.count;
  }

  close(): void {
    this.errors.close();
  }

  static errorsPath(outputDir: string): string {
    return path.join(outputDir, 'errors.jsonl');
  }
}

function asSide(side: PairSide): { text: string; image: PairImage } {
  const img = side.image;
  if (img === null) return { text: side.text, image: null };
  if (img.kind === 'bytes') return { text: side.text, image: img.bytes };
  return { text: side.text, image: img };
}
