// Worker for `train-step` (ours): one AdamW training step of the tiny transformer LM per `step`, with every
// temporary created inside torch.scope and checked not to accumulate (torch.liveTensorStats after each step).
import v8 from 'node:v8';

import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';
import { TinyTransformerLM, type TinyTransformerConfig } from '../models/tiny-transformer.js';

interface TrainStepConfig {
  model: TinyTransformerConfig;
  batch: number;
  lr: number;
  weightDecay: number;
  threads: number;
  seed: number;
}

let model: TinyTransformerLM | undefined;
let optimizer: torch.AdamW | undefined;
let tokens: torch.Tensor | undefined;
let targets: torch.Tensor | undefined;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

serveWorker({
  init(raw) {
    const c = raw as unknown as TrainStepConfig;
    torch.setNumThreads(c.threads);
    const { seqLen, vocabSize } = c.model;
    // Data first, then the model, each from its own seed: the peer does the same in the same order.
    torch.manualSeed(c.seed);
    tokens = torch.randint(0, vocabSize, [c.batch, seqLen]).keep();
    targets = torch.randint(0, vocabSize, [c.batch, seqLen]).keep();
    torch.manualSeed(c.seed + 1);
    model = new TinyTransformerLM(c.model);
    model.train();
    optimizer = new torch.AdamW(model.parameters(), { lr: c.lr, weightDecay: c.weightDecay });
    const stats = torch.liveTensorStats();
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      parameters: model.numParameters(),
      data_checksum: torch.scope(() => tokens!.sum().item() + targets!.sum().item()),
      live_handles: stats.handles,
    };
  },

  step() {
    const m = model!;
    const opt = optimizer!;
    // Diagnostics (outside the phase timings, cheap): V8 collections during the step (count, main-thread ms) and page faults.
    const gc = new v8.GCProfiler();
    gc.start();
    const faults0 = process.resourceUsage().minorPageFault;
    const t0 = nowMs();
    const phases = torch.scope(() => {
      const loss = m.loss(tokens!, targets!);
      const t1 = nowMs();
      loss.backward();
      const value = loss.item();
      const t2 = nowMs();
      opt.step();
      opt.zeroGrad();
      const t3 = nowMs();
      return { loss: value, forward_ms: t1 - t0, backward_ms: t2 - t1, optimizer_ms: t3 - t2 };
    });
    const faults = process.resourceUsage().minorPageFault - faults0;
    const collections = gc.stop().statistics;
    const stats = torch.liveTensorStats();
    return {
      ...phases,
      gc_count: collections.length,
      gc_ms: collections.reduce((sum, c) => sum + c.cost, 0) / 1000,
      minor_faults: faults,
      live_handles: stats.handles,
      live_storages: stats.storages,
      live_mib: stats.bytes / 2 ** 20,
    };
  },
});
