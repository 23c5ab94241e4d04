// The demo's stages as resumable steps: each finished stage leaves a `stage.json` record (what it produced, how
// long it took, what compute it used), so running the demo again continues where it stopped; training stages
// additionally resume from their own checkpoints inside a stage.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { initModelDirectory } from '../embed/index.js';
import { trainByteLevelBpe } from '../processing/bpe-builder.js';
import { readMetrics } from '../train/metrics.js';
import { CptTask } from '../train/cpt/task.js';
import { ClTask } from '../train/cl/task.js';
import { CausalLmTask } from '../train/lm/task.js';
import { CL_DEFAULTS, CPT_DEFAULTS, train, type TrainerConfig, type TrainTask } from '../train/trainer.js';
import { writeJsonAtomic } from '../train/checkpoint.js';
import { readJsonl } from '../util/jsonl.js';
import type { DemoSettings, StageBudget } from './config.js';

export const STAGE_FILE = 'stage.json';

export interface StageRecord {
  stage: string;
  /** Wall-clock seconds of the stage (of its last session when it was resumed). */
  seconds: number;
  /** Optimizer steps (training stages). */
  steps?: number;
  /** Sequence tokens processed (document stages) or pairs seen (contrastive stage). */
  tokens?: number;
  pairs?: number;
  /** The stage's product (a model directory, a file). */
  output: string;
  /** Anything else worth keeping (vocabulary size, counts of generated files…). */
  details?: Record<string, unknown>;
}

export type StageProduct = Omit<StageRecord, 'stage' | 'seconds'>;

/** Runs `fn` unless `dir` already holds a finished stage; returns the stage's record either way. */
export async function runStage(
  dir: string,
  stage: string,
  fn: () => Promise<StageProduct>,
  log: (line: string) => void,
): Promise<StageRecord & { reused: boolean }> {
  const file = path.join(dir, STAGE_FILE);
  if (existsSync(file)) {
    const record = JSON.parse(readFileSync(file, 'utf8')) as StageRecord;
    log(`${stage}: done earlier (${path.relative(process.cwd(), dir) || dir}), reused`);
    return { ...record, reused: true };
  }
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const result = await fn();
  const record: StageRecord = { stage, seconds: (performance.now() - t0) / 1000, ...result };
  writeJsonAtomic(file, record);
  return { ...record, reused: false };
}

/** Texts of a JSON Lines file's `text` field (and of pair files' text fields), for tokenizer training. */
export async function collectTexts(files: readonly string[], fields: readonly string[]): Promise<string[]> {
  const texts: string[] = [];
  for (const file of files) {
    for await (const rec of readJsonl(file)) {
      if (!('value' in rec) || typeof rec.value !== 'object' || rec.value === null) continue;
      const row = rec.value as Record<string, unknown>;
      for (const f of fields) {
        const v = row[f];
        if (typeof v === 'string') texts.push(v);
        else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') texts.push(x);
      }
    }
  }
  return texts;
}

/** Trains the byte-level BPE on the world's texts and writes the randomly initialised base model directory. */
export async function initBaseModel(
  dir: string,
  texts: readonly string[],
  settings: DemoSettings,
  seed: number,
): Promise<{ merges: number; vocabSize: number }> {
  // Image placeholders and instruction markers are special tokens: keep them out of the merges.
  const clean = texts.map((t) => t.replace(/<\|[a-z_0-9]+\|>/g, ' '));
  const bpe = trainByteLevelBpe(clean, { vocabSize: settings.bpeVocabSize, minFrequency: 2 });
  const config = await initModelDirectory(dir, {
    preset: 'tiny',
    seed,
    merges: bpe.merges,
    configOverrides: settings.model,
    minPixels: settings.minPixels,
    maxPixels: settings.maxPixels,
  });
  return { merges: bpe.merges.length, vocabSize: config.vocabSize };
}

function trainerConfig(
  outputDir: string,
  defaults: typeof CPT_DEFAULTS | typeof CL_DEFAULTS,
  budget: StageBudget,
  seed: number,
  gradAccumulation: number,
): TrainerConfig {
  return {
    ...defaults,
    outputDir,
    lr: budget.lr,
    warmupRatio: budget.warmupRatio,
    schedule: 'cosine',
    gradAccumulation,
    totalSteps: budget.steps,
    saveEvery: Math.max(10, Math.ceil(budget.steps / 4)),
    keepCheckpoints: 1,
    logEvery: Math.max(1, Math.floor(budget.steps / 10)),
    seed,
    // An interrupted demo continues from the stage's latest checkpoint.
    resume: true,
  };
}

function sumMetric(metricsFile: string, name: string): number {
  let total = 0;
  for (const r of readMetrics(metricsFile)) {
    const v = (r as unknown as Record<string, unknown>)[name];
    if (typeof v === 'number' && Number.isFinite(v)) total += v;
  }
  return total;
}

async function runTraining<B>(
  task: TrainTask<B> & { close(): void },
  config: TrainerConfig,
  label: string,
): Promise<{ steps: number; metricsFile: string; exportDir: string }> {
  try {
    const result = await train(task, config, { label, reportTitle: `moca demo — ${label}` });
    if (result.status === 'interrupted') throw new DemoInterrupted(label);
    if (result.exportDir === null) throw new Error(`${label}: training ended without a model`);
    return { steps: result.step, metricsFile: result.metricsFile, exportDir: result.exportDir };
  } finally {
    task.close();
  }
}

/** Raised when a signal stopped a training stage (its checkpoint is saved; a re-run continues). */
export class DemoInterrupted extends Error {
  constructor(readonly stage: string) {
    super(`${stage}: interrupted; run the same command again to continue from the last checkpoint`);
  }
}

export interface DocumentStageOptions {
  modelDir: string;
  sources: string[];
  outputDir: string;
  settings: DemoSettings;
  budget: StageBudget & { tokensPerBatch: number };
  seed: number;
  label: string;
  /** Vision parameters trained by the causal LM stage (see CausalLmTask). */
  trainVision?: 'all' | 'merger' | 'none';
}

/** Causal next-token pre-training (the base "causal VLM", or more of it for the matched-compute arm). */
export async function causalLmStage(o: DocumentStageOptions): Promise<StageProduct> {
  const task = await CausalLmTask.create({
    modelDir: o.modelDir,
    sources: o.sources,
    tokensPerBatch: o.budget.tokensPerBatch,
    maxLength: o.settings.maxLength,
    bufferSize: 256,
    // Epochs are not the budget here: steps are. Enough passes that the data never runs out first.
    epochs: 1000,
    seed: o.seed,
    errorsFile: path.join(o.outputDir, 'errors.jsonl'),
    trainVision: o.trainVision ?? 'all',
  });
  const run = await runTraining(task, trainerConfig(o.outputDir, CPT_DEFAULTS, o.budget, o.seed, 1), o.label);
  return { steps: run.steps, tokens: sumMetric(run.metricsFile, 'tokens'), output: run.exportDir };
}

/** MoCa's continual pre-training: MLM + MAE with bidirectional attention (or one of the two for ablations). */
export async function cptStage(o: DocumentStageOptions & { useMlm: boolean; useMae: boolean }): Promise<StageProduct> {
  const task = await CptTask.create({
    modelDir: o.modelDir,
    sources: o.sources,
    objective: { mlmProb: 0.4, maeProb: 0.5, maeWeight: 0.1, useMlm: o.useMlm, useMae: o.useMae },
    tokensPerBatch: o.budget.tokensPerBatch,
    maxLength: o.settings.maxLength,
    bufferSize: 256,
    epochs: 1000,
    seed: o.seed,
    errorsFile: path.join(o.outputDir, 'errors.jsonl'),
  });
  const run = await runTraining(task, trainerConfig(o.outputDir, CPT_DEFAULTS, o.budget, o.seed, 1), o.label);
  return { steps: run.steps, tokens: sumMetric(run.metricsFile, 'tokens'), output: run.exportDir };
}

export interface ContrastiveStageOptions {
  modelDir: string;
  /** `NAME=PATH` subsets. */
  subsets: string[];
  outputDir: string;
  settings: DemoSettings;
  seed: number;
  label: string;
  attention?: 'bidirectional' | 'causal';
  pooling?: 'mean' | 'last';
  batching?: 'task' | 'mixed';
}

/** Heterogeneous contrastive fine-tuning: InfoNCE with in-batch and hard negatives, task-aware batches. */
export async function contrastiveStage(o: ContrastiveStageOptions): Promise<StageProduct> {
  const cl = o.settings.cl;
  const task = await ClTask.create({
    modelDir: o.modelDir,
    subsets: o.subsets,
    batchSize: cl.batchSize,
    hardNegatives: cl.hardNegatives,
    batching: o.batching ?? 'task',
    loss: { temperature: cl.temperature },
    gradCacheChunk: null,
    maxLength: o.settings.maxLength,
    epochs: 1000,
    seed: o.seed,
    errorsFile: path.join(o.outputDir, 'errors.jsonl'),
    ...(o.attention ? { attention: o.attention } : {}),
    ...(o.pooling ? { pooling: o.pooling } : {}),
  });
  const run = await runTraining(task, trainerConfig(o.outputDir, CL_DEFAULTS, cl, o.seed, 1), o.label);
  return { steps: run.steps, pairs: sumMetric(run.metricsFile, 'pairs'), output: run.exportDir };
}
