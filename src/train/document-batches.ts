// Micro-batches of interleaved documents for the document-level objectives (causal LM, and MoCa's MLM + MAE):
// weighted mixing of the sources, MoCa's token-budget buckets, tokenisation and image processing, bad rows
// recorded and skipped, a resumable position, and a rank's share of the stream for data parallelism.
import { MixedCorpus, prepareSample, TokenBudgetBatcher, type SourceSpec } from '../data/index.js';
import type { Qwen25VLModel } from '../models/index.js';
import type { Qwen2VLImageProcessor } from '../processing/image/index.js';
import { batchToTensors, buildBatch, imageTokenIds } from '../processing/sequence.js';
import type { Tokenizer } from '../processing/tokenizer.js';
import type { DType, Tensor } from '../torch/index.js';
import { ErrorLog } from '../util/output.js';
import type { CptBatch } from './cpt/objective.js';

export interface DocumentBatchOptions {
  sources: (SourceSpec | string)[];
  /** Where bad rows are recorded (JSON Lines). */
  errorsFile: string;
  strict?: boolean;
  tokensPerBatch?: number;
  maxLength?: number;
  bufferSize?: number;
  epochs?: number;
  seed?: number;
  /** The vision tower's spatial merge size (2 for Qwen2.5-VL). */
  mergeSize: number;
  device: string;
  /** dtype the pixel values are cast to (the model's). */
  pixelDtype: DType;
  /**
   * Data parallelism: every rank reads the whole (seeded, identical) micro-batch stream — documents are only
   * measured for bucketing, which is cheap — and keeps the micro-batches whose stream index is its rank modulo the
   * world size; only those are tokenised into tensors and have their images decoded. Default: rank 0 of 1.
   */
  shard?: { rank: number; worldSize: number };
}

/** `index`: the micro-batch's position in the whole stream (the same on every rank). */
export type DocumentBatch = CptBatch & { documents: number; index: number };

export class DocumentBatches {
  readonly batcher: TokenBudgetBatcher;
  private readonly corpus: MixedCorpus;
  private readonly errors: ErrorLog;

  readonly shard: { rank: number; worldSize: number };

  /** Batches shaped for `model`: its vision merge size, its device, pixel values in its dtype. */
  static forModel(
    model: Qwen25VLModel,
    tokenizer: Tokenizer,
    imageProcessor: Qwen2VLImageProcessor,
    options: Omit<DocumentBatchOptions, 'mergeSize' | 'device' | 'pixelDtype'>,
  ): DocumentBatches {
    return new DocumentBatches(tokenizer, imageProcessor, {
      ...options,
      mergeSize: model.config.vision.spatialMergeSize,
      device: model.device,
      pixelDtype: model.dtype,
    });
  }

  constructor(
    readonly tokenizer: Tokenizer,
    readonly imageProcessor: Qwen2VLImageProcessor,
    private readonly options: DocumentBatchOptions,
  ) {
    this.shard = options.shard ?? { rank: 0, worldSize: 1 };
    const { rank, worldSize } = this.shard;
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new RangeError(`DocumentBatches: shard rank ${rank} is outside a world of ${worldSize}`);
    }
    this.errors = new ErrorLog(options.errorsFile);
    this.corpus = new MixedCorpus(options.sources, {
      seed: options.seed ?? 0,
      epochs: options.epochs ?? 1,
      errors: { record: (entry: Record<string, unknown>) => this.errors.record(entry) },
      strict: options.strict ?? false,
    });
    this.batcher = new TokenBudgetBatcher(this.corpus, {
      tokenizer,
      tokensPerBatch: options.tokensPerBatch ?? 12800,
      maxLength: options.maxLength ?? 1280,
      bufferSize: options.bufferSize ?? 2048,
      seed: options.seed ?? 0,
    });
  }

  /** This rank's next micro-batch as tensors, or null at the end of the data. A document that cannot be prepared
   * is recorded and left out (the batch goes on with the others). */
  async next(): Promise<DocumentBatch | null> {
    const maxLength = this.options.maxLength ?? 1280;
    const { rank, worldSize } = this.shard;
    for (;;) {
      const micro = await this.batcher.next();
      if (micro === null) return null;
      if (micro.index % worldSize !== rank) continue; // another rank's micro-batch
      const items = [];
      for (const s of micro.samples) {
        try {
          items.push((await prepareSample(s.doc, this.tokenizer, this.imageProcessor, { maxLength })).item);
        } catch (e) {
          if (this.options.strict) throw e;
          this.errors.record({ source: s.doc.source, id: s.doc.id, stage: 'prepare', error: (e as Error).message });
        }
      }
      if (items.length === 0) continue;
      const batch = buildBatch(items, {
        ...imageTokenIds(this.tokenizer),
        mergeSize: this.options.mergeSize,
        maxLength,
      });
      const t = batchToTensors(batch, { device: this.options.device });
      return {
        inputIds: t.inputIds,
        attentionMask: t.attentionMask,
        pixelValues: t.pixelValues === null ? null : (t.pixelValues.to(this.options.pixelDtype) as Tensor),
        imageGridThw: batch.imageGridThw.map((g) => [g[0], g[1], g[2]] as const),
        documents: items.length,
        index: micro.index,
      };
    }
  }

  state(): ReturnType<TokenBudgetBatcher['state']> {
    return this.batcher.state();
  }

  /** The batcher re-reads the documents that were buffered at the checkpoint. */
  async restore(state: unknown): Promise<void> {
    await this.batcher.restore(state as Parameters<TokenBudgetBatcher['restore']>[0]);
  }

  /** Bad rows recorded so far (sources and preparation). */
  get errorCount(): number {
    return this.errors.count;
  }

  close(): void {
    this.errors.close();
    this.corpus.close();
  }
}
