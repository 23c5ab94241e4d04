// Worker for `embed` and `embed-precision` (ours): one step = one forward of a prepared batch (vision tower + LLM
// + mean pooling + L2 normalisation) of the `small` model, under noGrad. Case ids are `<batch>` (float32) or
// `<batch>-<dtype>` (bfloat16 / int8 packed linear layers), whose steps also report the cosine similarity of
// their embeddings to the float32 ones.
import * as m from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { serveWorker } from '../harness.js';

interface EmbedConfig {
  modelDir: string;
  inputs: Record<string, string>;
  threads: number;
  /** Low-precision variants to load besides float32. */
  dtypes?: ('bfloat16' | 'int8')[];
}

let model: m.Qwen25VLModel | undefined;
const lowPrecision = new Map<string, m.Qwen25VLModel>();
const reference = new Map<string, torch.Tensor>();
const batches = new Map<string, m.ModelInputs & { rows: number }>();

serveWorker({
  init(raw) {
    const config = raw as unknown as EmbedConfig;
    torch.setNumThreads(config.threads);
    const t0 = performance.now();
    model = m.loadQwen25VL(config.modelDir).model.eval();
    const loadMs = performance.now() - t0;
    const packedBytes: Record<string, number> = {};
    for (const dtype of config.dtypes ?? []) {
      const low = m.loadQwen25VL(config.modelDir).model.eval();
      packedBytes[dtype] = m.prepareInferencePrecision(low, dtype).packedBytes;
      lowPrecision.set(dtype, low);
    }
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
      if (lowPrecision.size > 0) reference.set(id, torch.noGrad(() => model!.embed(batches.get(id)!)).keep());
    }
    return {
      threads: torch.getNumThreads(),
      openblas_coretype: process.env.OPENBLAS_CORETYPE ?? null,
      libtorch_version: torch.buildInfo().libtorchVersion,
      load_ms: loadMs,
      parameters: model.numParameters(),
      packed_bytes: packedBytes,
      checksums,
    };
  },

  step(caseId) {
    const [batchId, dtype] = (caseId ?? '').split('-') as [string, string | undefined];
    const b = batches.get(batchId);
    const mdl = dtype === undefined ? model : lowPrecision.get(dtype);
    if (b === undefined || mdl === undefined) throw new Error(`embed: unknown case ${caseId}`);
    return torch.noGrad(() =>
      torch.scope(() => {
        const e = mdl.embed(b);
        const out: Record<string, number> = { rows: b.rows, checksum: e.sum().item() };
        const ref = reference.get(batchId);
        if (dtype !== undefined && ref !== undefined) {
          const cos = torch.F.cosineSimilarity(e, ref, -1);
          out.cosine_min = cos.min().item();
          out.cosine_mean = cos.mean().item();
        }
        return out;
      }),
    );
  },
});
