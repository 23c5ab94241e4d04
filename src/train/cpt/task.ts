// Stage 1 as a trainer task: token-budget micro-batches of interleaved documents → MLM + MAE loss.
//
// Masks: before each micro-batch's forward, libtorch's generator is seeded from (seed, the micro-batch's position in
// the batch stream), so a micro-batch gets the same masks whichever rank and accumulation slot processes it, and
// a data-parallel run draws exactly the masks of a single-process run over the same micro-batches.
//
// Data parallelism: each rank keeps its share of the (identical) micro-batch stream (see DocumentBatches), so
// ranks train on distinct token-budget micro-batches of about equal cost, and `gradAccumulation · worldSize`
// micro-batches make an optimizer step.
import path from 'node:path';

import type { SourceSpec } from '../../data/index.js';
import { loadQwen25VL, type Qwen25VLModel } from '../../models/index.js';
import { Qwen2VLImageProcessor } from '../../processing/image/index.js';
import { Tokenizer } from '../../processing/tokenizer.js';
import {
  autocast,
  distributed,
  type DTypeLike,
  loadSafetensors,
  manualSeed,
  type Parameter,
  type Tensor,
} from '../../torch/index.js';
import { type DocumentBatch, DocumentBatches } from '../document-batches.js';
import { exportEmbeddingModel } from '../export.js';
import type { TrainTask } from '../trainer.js';
import { CptObjective, type CptOptions, MaeHeads } from './objective.js';

export const MASK_TOKEN = '<|mask|>';

export interface CptTaskOptions {
  modelDir: string;
  sources: (SourceSpec | string)[];
  dtype?: DTypeLike;
  objective: Omit<CptOptions, 'maskTokenId' | 'specialIds'>;
  tokensPerBatch?: number;
  maxLength?: number;
  bufferSize?: number;
  epochs?: number;
  seed?: number;
  /** Where bad rows are recorded (JSON Lines). */
  errorsFile: string;
  strict?: boolean;
  /** Pixel limits of the image processor (default: the model directory's preprocessor_config.json). */
  minPixels?: number;
  maxPixels?: number;
  /** MAE heads to start from (a stage-1 checkpoint's params), instead of MoCa's initialisation. */
  headsFile?: string;
  /** Mixed precision: run the forward under CPU autocast in this dtype (float32 master weights). */
  autocast?: 'bfloat16';
  /** Data parallelism: this rank's share of the micro-batch stream (default: from the default process group when
   * it has more than one rank, else rank 0 of 1). */
  shard?: { rank: number; worldSize: number };
}

/** The generator seed of micro-batch `index` (a 53-bit integer mixed from the run seed and the index). */
export function microBatchSeed(seed: number, index: number): number {
  const mix = (a: number, b: number): number => {
    let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    return (h ^ (h >>> 16)) >>> 0;
  };
  return (mix(seed, index) % 2 ** 21) * 2 ** 32 + mix(index, seed ^ 0x5bd1e995);
}

/**
 * Adds `<|mask|>` to the tokenizer when absent, at the next id, which must be an existing embedding row (MoCa
 * does not resize the embeddings: Qwen2.5 has 151,936 rows for 151,665 tokens).
 */
export function ensureMaskToken(tokenizer: Tokenizer, vocabRows: number): number {
  const existing = tokenizer.tokenToId(MASK_TOKEN);
  if (existing !== undefined) return existing;
  const id = tokenizer.addSpecialToken(MASK_TOKEN, 'mask_token');
  if (id >= vocabRows) {
    throw new Error(
      `adding ${MASK_TOKEN} needs embedding row ${id}, but the model has ${vocabRows} rows; ` +
        'use a checkpoint with spare rows (as Qwen2.5-VL has) or add the token beforehand',
    );
  }
  return id;
}

export class CptTask implements TrainTask<DocumentBatch> {
  readonly summedMetrics = ['tokens', 'masked_tokens', 'masked_patches', 'documents'];

  private constructor(
    readonly model: Qwen25VLModel,
    readonly heads: MaeHeads,
    readonly objective: CptObjective,
    readonly tokenizer: Tokenizer,
    readonly imageProcessor: Qwen2VLImageProcessor,
    readonly batches: DocumentBatches,
    private readonly options: CptTaskOptions,
  ) {}

  get shard(): { rank: number; worldSize: number } {
    return this.batches.shard;
  }

  static async create(options: CptTaskOptions): Promise<CptTask> {
    const tokenizer = Tokenizer.fromDir(options.modelDir);
    const { model } = loadQwen25VL(options.modelDir, {
      withLmHead: true,
      attention: 'bidirectional',
      dtype: options.dtype ?? 'float32',
    });
    const maskTokenId = ensureMaskToken(tokenizer, model.config.vocabSize);
    const imageProcessor = await Qwen2VLImageProcessor.fromDir(options.modelDir, options);
    const heads = new MaeHeads(model, imageProcessor.rowLength);
    if (options.headsFile) heads.loadStateDict(loadSafetensors(options.headsFile), { strict: false });
    else {
      // The projection's initialisation is random: seed it so that a run is reproducible from its seed.
      manualSeed(options.seed ?? 0);
      heads.initializeFrom(model);
    }
    const objective = new CptObjective(model, heads, {
      ...options.objective,
      maskTokenId,
      specialIds: [...tokenizer.specialTokenIds],
    });
    const group = distributed.dataParallelGroup();
    const batches = DocumentBatches.forModel(model, tokenizer, imageProcessor, {
      ...options,
      shard: options.shard ?? { rank: group?.rank ?? 0, worldSize: group?.size ?? 1 },
    });
    return new CptTask(model, heads, objective, tokenizer, imageProcessor, batches, options);
  }

  namedParameters(): [string, Parameter][] {
    return [...this.model.namedParameters(), ...this.heads.namedParameters()];
  }

  nextBatch(): Promise<DocumentBatch | null> {
    return this.batches.next();
  }

  loss(batch: DocumentBatch): { loss: Tensor; metrics: Record<string, number> } {
    manualSeed(microBatchSeed(this.options.seed ?? 0, batch.index));
    const dtype = this.options.autocast;
    const out = dtype ? autocast(dtype, () => this.objective.loss(batch)) : this.objective.loss(batch);
    // The trainer records the total loss itself; the task reports its parts.
    const { loss: _total, ...parts } = out.metrics;
    void _total;
    return { loss: out.loss, metrics: { ...parts, documents: batch.documents } };
  }

  dataState(): unknown {
    return this.batches.state();
  }

  /** Awaited by the trainer: the batcher re-reads the documents that were buffered at the checkpoint. */
  restoreDataState(state: unknown): Promise<void> {
    return this.batches.restore(state);
  }

  /** The deliverable: an HF-layout bidirectional embedding model (without the MAE heads), with `<|mask|>` in
   * its tokenizer, loadable by `moca embed`. */
  async exportModel(dir: string): Promise<void> {
    await exportEmbeddingModel(dir, this.model, this.tokenizer, this.imageProcessor);
  }

  /** Bad rows recorded so far (corpus and preparation). */
  errorCount(): number {
    return this.batches.errorCount;
  }

  close(): void {
    this.batches.close();
  }

  static errorsPath(outputDir: string): string {
    return path.join(outputDir, 'errors.jsonl');
  }
}
