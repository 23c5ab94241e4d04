// Stage-2 (contrastive fine-tuning) data layer: query / positive / hard-negative pairs from MMEB-train-style and
// text-only subsets (JSON Lines or Parquet, capped per subset), MoCa's hard-negative filling rules, and task-aware
// (single-subset) or mixed batch sampling with exact resume (spec §3.1–§3.3, §6.3–§6.4).
//
// Typical use:
//   const data = await loadPairDataset(['MSCOCO_i2t=data/MSCOCO_i2t/#50000', 'nq=data/nq.jsonl'], {
//     imageRoot: 'data/', negativeRatio: 2, seed, errors });
//   const sampler = new TaskBatchSampler({ subsets: data.samplerSubsets(), weights: data.samplerWeights(),
//     batchSize: 24, mode: 'task', seed });
//   if (saved) sampler.restore(saved.sampler);
//   for (let step = 0; step < steps; step++) {
//     const batch = sampler.next();                 // {epoch, step, subset, indices}
//     const samples = data.batch(batch.indices);    // PairSample[]: texts + image references
//     …; checkpoint.sampler = sampler.state();
//   }
export { looksLikePythonLiteral, parsePythonStringList, PythonLiteralError } from './python-literal.js';
export {
  DEFAULT_NEGATIVE_RATIO,
  fillNegatives,
  isMmebRow,
  negativeList,
  PAIR_COLUMNS,
  PairDataError,
  parsePairRow,
  replaceEmptyNegatives,
  rowRng,
  type PairImage,
  type PairParseOptions,
  type PairRowContext,
  type PairSample,
  type PairSide,
} from './pair.js';
export {
  loadPairDataset,
  loadPairSubset,
  MOCA_SAMPLES_PER_SUBSET,
  PairBadRowRecorder,
  PairDataset,
  parsePairSubsetSpec,
  readPairSubset,
  type PairLocation,
  type PairReadOptions,
  type PairReadStats,
  type PairSubset,
  type PairSubsetSpec,
} from './reader.js';
export {
  TaskBatchSampler,
  type BatchMode,
  type IndexBatch,
  type SamplerSubset,
  type TaskBatchSamplerOptions,
  type TaskBatchSamplerState,
} from './sampler.js';
