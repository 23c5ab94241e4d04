// Worker for `matmul` (ours): fp32 C = A·B at several sizes; one `step` is `reps` products of the case's size
// (each result disposed at once). Inputs are created once at init from the shared seed.
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

export interface MatmulCase {
  id: string;
  m: number;
  k: number;
  n: number;
  reps: number;
}

interface MatmulConfig {
  cases: MatmulCase[];
  threads: number;
  seed: number;
}

const inputs = new Map<string, { c: MatmulCase; a: torch.Tensor; b: torch.Tensor }>();

serveWorker({
  init(raw) {
    const config = raw as unknown as MatmulConfig;
    torch.setNumThreads(config.threads);
    const checksums: Record<string, number> = {};
    for (const c of config.cases) {
      torch.manualSeed(config.seed);
      const a = torch.randn([c.m, c.k]).keep();
      const b = torch.randn([c.k, c.n]).keep();
      inputs.set(c.id, { c, a, b });
      checksums[c.id] = torch.scope(() => a.sum().item() + b.sum().item());
    }
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      checksums,
    };
  },

  step(caseId) {
    const entry = inputs.get(caseId ?? '');
    if (entry === undefined) throw new Error(`matmul: unknown case ${caseId}`);
    for (let i = 0; i < entry.c.reps; i++) entry.a.matmul(entry.b).dispose();
  },
});
