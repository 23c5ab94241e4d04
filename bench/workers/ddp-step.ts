// Worker for `ddp` (ours): one data-parallel training step of the train-step transformer per `step`. With
// WORLD_SIZE > 1 (set by the bench) it joins a Gloo process group first; every rank trains on its own batch (seed
// + rank), and the gradients are all-reduced in buckets by the GradReducer: case 'overlap' arms the reducer so the
// all-reduces start from backward's hooks, case 'after-backward' reduces everything after backward.
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';
import { TinyTransformerLM, type TinyTransformerConfig } from '../models/tiny-transformer.js';

const { distributed } = torch;

interface DdpStepConfig {
  model: TinyTransformerConfig;
  batch: number;
  lr: number;
  threads: number;
  seed: number;
}

let model: TinyTransformerLM | undefined;
let optimizer: torch.AdamW | undefined;
let reducer: torch.distributed.GradReducer | undefined;
let tokens: torch.Tensor | undefined;
let targets: torch.Tensor | undefined;
let world = 1;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

serveWorker({
  async init(raw) {
    const c = raw as unknown as DdpStepConfig;
    torch.setNumThreads(c.threads);
    const env = distributed.distributedEnv();
    const group = env !== null && env.worldSize > 1 ? await distributed.initProcessGroup({ timeoutMs: 300_000 }) : null;
    world = group?.size ?? 1;
    const rank = group?.rank ?? 0;
    const { seqLen, vocabSize } = c.model;
    torch.manualSeed(c.seed + rank);
    tokens = torch.randint(0, vocabSize, [c.batch, seqLen]).keep();
    targets = torch.randint(0, vocabSize, [c.batch, seqLen]).keep();
    torch.manualSeed(c.seed + 1000);
    model = new TinyTransformerLM(c.model);
    model.train();
    const params = model.parameters();
    optimizer = new torch.AdamW(params, { lr: c.lr });
    if (group !== null) {
      await distributed.broadcastCoalesced(params, 0);
      reducer = new distributed.GradReducer(params);
    }
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      parameters: model.numParameters(),
      rank,
      world,
    };
  },

  step(caseId) {
    const t0 = nowMs();
    const phases = torch.scope(() => {
      const loss = model!.loss(tokens!, targets!);
      const t1 = nowMs();
      if (reducer && caseId !== 'after-backward') reducer.arm();
      loss.backward();
      return { loss: loss.item(), forward_ms: t1 - t0, backward_ms: nowMs() - t1 };
    });
    const t2 = nowMs();
    if (reducer) reducer.synchronizeSync(1 / world);
    const t3 = nowMs();
    optimizer!.step();
    optimizer!.zeroGrad();
    return { ...phases, reduce_wait_ms: t3 - t2, optimizer_ms: nowMs() - t3 };
  },
});
