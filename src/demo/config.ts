// The demo's sizes: model shape, tokenizer size and the compute each stage gets, per scale. The default scale is
// sized to finish in about 15 minutes on 2 CPU cores; `quick` is a smoke run (≤ 3 minutes), `full` a longer run
// with better-trained models.
import type { Qwen25VLConfig } from '../models/index.js';

export type DemoScale = 'quick' | 'default' | 'full';

/** The arms of the ablation. `cl-only` and `moca` always run; the others on request (`--arms`). */
export const ARM_NAMES = ['cl-only', 'moca', 'moca-no-mlm', 'moca-no-mae', 'lm-matched', 'causal-cl'] as const;
export type ArmName = (typeof ARM_NAMES)[number];

export const ARM_DESCRIPTIONS: Readonly<Record<ArmName, string>> = {
  'cl-only': 'A: contrastive fine-tuning of the causal base (bidirectional attention), no continual pre-training',
  moca: 'B: MoCa — continual pre-training (MLM + MAE, bidirectional), then the same contrastive fine-tuning',
  'moca-no-mlm': 'B without MLM: continual pre-training with the MAE loss only, then contrastive fine-tuning',
  'moca-no-mae': 'B without MAE: continual pre-training with the MLM loss only, then contrastive fine-tuning',
  'lm-matched':
    'A with matched compute: the continual pre-training budget spent on more causal LM steps, then contrastive fine-tuning',
  'causal-cl': 'A with causal attention kept in fine-tuning and embedding (last-token pooling, as a causal VLM embeds)',
};

export interface StageBudget {
  /** Optimizer steps. */
  steps: number;
  lr: number;
  warmupRatio: number;
}

export interface DemoSettings {
  scale: DemoScale;
  /** Model shape over the `tiny` preset. */
  model: Omit<Partial<Qwen25VLConfig>, 'vision'> & { vision: Partial<Qwen25VLConfig['vision']> };
  /** Byte-level BPE vocabulary size (256 bytes + merges). */
  bpeVocabSize: number;
  /** Image processor limits: the world's images are 56–224 px a side. */
  minPixels: number;
  maxPixels: number;
  maxLength: number;
  /** Stage 0: causal LM pre-training of the base. */
  lm: StageBudget & { tokensPerBatch: number };
  /** Stage 1: continual pre-training (MoCa). */
  cpt: StageBudget & { tokensPerBatch: number };
  /** Stage 2: contrastive fine-tuning. */
  cl: StageBudget & { batchSize: number; hardNegatives: number; temperature: number };
  /** Rows per evaluation dataset (null: all). */
  evalLimit: number | null;
}

// One model shape for every scale, so that scales differ in training only: 4 layers of width 128 for the LLM
// (head dim 32, M-RoPE sections 4/6/6 summing to 16), a 2-block vision tower of width 64 (14-px patches, 2×2
// merge). On 2 cores this trains at several thousand tokens per second.
const MODEL: DemoSettings['model'] = {
  hiddenSize: 128,
  intermediateSize: 352,
  numHiddenLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  mropeSection: [4, 6, 6],
  tieWordEmbeddings: true,
  vision: {
    depth: 2,
    hiddenSize: 64,
    intermediateSize: 176,
    numHeads: 2,
    outHiddenSize: 128,
    fullattBlockIndexes: [1],
  },
};

const COMMON = {
  model: MODEL,
  bpeVocabSize: 1024,
  minPixels: 56 * 56,
  maxPixels: 224 * 224,
  maxLength: 256,
} as const;

export const DEMO_SETTINGS: Readonly<Record<DemoScale, DemoSettings>> = {
  quick: {
    ...COMMON,
    scale: 'quick',
    lm: { steps: 30, lr: 1e-3, warmupRatio: 0.1, tokensPerBatch: 2048 },
    cpt: { steps: 15, lr: 5e-4, warmupRatio: 0.1, tokensPerBatch: 2048 },
    cl: { steps: 15, lr: 3e-4, warmupRatio: 0.1, batchSize: 16, hardNegatives: 1, temperature: 0.1 },
    evalLimit: 20,
  },
  default: {
    ...COMMON,
    scale: 'default',
    lm: { steps: 150, lr: 1e-3, warmupRatio: 0.05, tokensPerBatch: 4096 },
    cpt: { steps: 80, lr: 5e-4, warmupRatio: 0.1, tokensPerBatch: 4096 },
    cl: { steps: 300, lr: 3e-4, warmupRatio: 0.1, batchSize: 32, hardNegatives: 1, temperature: 0.1 },
    evalLimit: null,
  },
  full: {
    ...COMMON,
    scale: 'full',
    lm: { steps: 600, lr: 1e-3, warmupRatio: 0.05, tokensPerBatch: 4096 },
    cpt: { steps: 300, lr: 5e-4, warmupRatio: 0.1, tokensPerBatch: 4096 },
    cl: { steps: 1200, lr: 3e-4, warmupRatio: 0.1, batchSize: 32, hardNegatives: 1, temperature: 0.1 },
    evalLimit: null,
  },
};
