// Worker for `embed` (ours): one step = one forward of a prepared batch (vision tower + LLM + mean pooling +
// L2 normalisation) of the `small` model, under noGrad.
import * as m from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

interface EmbedConfig {
  modelDir: string;
  inputs: Record<string, string>;
  threads: number;
}

let model: m.Qwen25VLModel | undefined;
const batches = new Map<string, m.ModelInputs & { rows: number }>();

serveWorker({
  init(raw) {
    const config = raw as unknown as EmbedConfig;
    torch.setNumThreads(config.threads);
    const t0 = performance.now();
    model = m.loadQwen25VL(config.modelDir).model.eval();
    const loadMs = performance.now() - t0;
    const checksums: Record<string, number> = {};
    for (const [id, file] of Object.entries(config.inputs)) {
      const t = torch.loadSafetensors(file);
      for (const v of t.values()) v.keep();
      const grids = t.has('image_grid_thw')
        ? (t.get('image_grid_thw')!.tolist() as number[][]).map((g) => [g[0]!, g[1]!, g[2]!] as const)
        : [];
      batches.set(id, {
        inputIds: t.get('input_ids')!,
        attentionMask: t.get('attention_mask')!,
        pixelValues: t.get('pixel_values') ?? null,
        imageGridThw: grids,
        rows: t.get('input_ids')!.size(0),
      });
      checksums[id] = torch.scope(() => t.get('attention_mask')!.sum().item());
    }
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      load_ms: loadMs,
      parameters: model.numParameters(),
      checksums,
    };
  },

  step(caseId) {
    const b = batches.get(caseId ?? '');
    if (b === undefined || model === undefined) throw new Error(`embed: unknown case ${caseId}`);
    const sum = torch.noGrad(() => torch.scope(() => model!.embed(b).sum().item()));
    return { rows: b.rows, checksum: sum };
  },
});
