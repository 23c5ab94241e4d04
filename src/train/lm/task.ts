// Causal language modelling as a trainer task: token-budget micro-batches of interleaved documents → next-token
// cross-entropy with causal attention. The exported model is a causal VLM checkpoint in the HF layout.
import { loadQwen25VL, type Qwen25VLModel } from '../../models/index.js';
import { Qwen2VLImageProcessor } from '../../processing/image/index.js';
import { imageTokenIds } from '../../processing/sequence.js';
import { Tokenizer } from '../../processing/tokenizer.js';
import { autocast, type DTypeLike, type Parameter, type Tensor } from '../../torch/index.js';
import type { SourceSpec } from '../../data/index.js';
import { type DocumentBatch, DocumentBatches } from '../document-batches.js';
import { exportEmbeddingModel } from '../export.js';
import type { TrainTask } from '../trainer.js';
import { CausalLmObjective } from './objective.js';

export interface CausalLmTaskOptions {
  modelDir: string;
  sources: (SourceSpec | string)[];
  dtype?: DTypeLike;
  tokensPerBatch?: number;
  maxLength?: number;
  bufferSize?: number;
  epochs?: number;
  seed?: number;
  errorsFile: string;
  strict?: boolean;
  minPixels?: number;
  maxPixels?: number;
  autocast?: 'bfloat16';
  /**
   * Which vision parameters train: 'all' (default), 'merger' (the patch encoder frozen, only the merger that
   * projects into the language model trains — LLaVA's alignment recipe, for a vision encoder that is pretrained
   * or, as in the demo, random: a random encoder still preserves the pixels' information, whereas training it from
   * scratch on a language loss tends to collapse it to a constant output), or 'none'.
   */
  trainVision?: 'all' | 'merger' | 'none';
}

export class CausalLmTask implements TrainTask<DocumentBatch> {
  readonly summedMetrics = ['tokens', 'predicted_tokens', 'documents'];

  private constructor(
    readonly model: Qwen25VLModel,
    readonly objective: CausalLmObjective,
    readonly batches: DocumentBatches,
    private readonly options: CausalLmTaskOptions,
  ) {}

  static async create(options: CausalLmTaskOptions): Promise<CausalLmTask> {
    const tokenizer = Tokenizer.fromDir(options.modelDir);
    const { model } = loadQwen25VL(options.modelDir, {
      withLmHead: true,
      attention: 'causal',
      dtype: options.dtype ?? 'float32',
    });
    const trainVision = options.trainVision ?? 'all';
    if (trainVision !== 'all') {
      model.visual.requiresGrad_(false);
      if (trainVision === 'merger') model.visual.merger.requiresGrad_(true);
    }
    const imageProcessor = await Qwen2VLImageProcessor.fromDir(options.modelDir, options);
    const ids = imageTokenIds(tokenizer);
    const objective = new CausalLmObjective(model, { ignoreTargetIds: [ids.imageTokenId] });
    const batches = DocumentBatches.forModel(model, tokenizer, imageProcessor, options);
    return new CausalLmTask(model, objective, batches, options);
  }

  /** The trainable parameters (frozen vision parameters are neither updated nor checkpointed; they are saved with
   * the exported model). */
  namedParameters(): [string, Parameter][] {
    return this.model.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  nextBatch(): Promise<DocumentBatch | null> {
    return this.batches.next();
  }

  loss(batch: DocumentBatch): { loss: Tensor; metrics: Record<string, number> } {
    const dtype = this.options.autocast;
    const out = dtype ? autocast(dtype, () => this.objective.loss(batch)) : this.objective.loss(batch);
    return { loss: out.loss, metrics: { ...out.metrics, documents: batch.documents } };
  }

  dataState(): unknown {
    return this.batches.state();
  }

  async restoreDataState(state: unknown): Promise<void> {
    await this.batches.restore(state);
  }

  /** The deliverable: the model in the HF layout (its config does not say causal: loaders choose the attention). */
  async exportModel(dir: string): Promise<void> {
    await exportEmbeddingModel(dir, this.model, this.batches.tokenizer, this.batches.imageProcessor);
  }

  errorCount(): number {
    return this.batches.errorCount;
  }

  close(): void {
    this.batches.close();
  }
}
