// Stage-1 (continual pre-training) data layer: interleaved-document sources (JSON Lines, Hugging Face-style
// Parquet), weighted mixing, bad-row handling, sample cost and preparation, and token-budget micro-batching — all
// streaming and resumable from a JSON state (spec §2.1–§2.3).
//
// Typical use:
//   const corpus = new MixedCorpus(['web=data/dclm@3', 'caps=data/pixelprose/@1'], { seed, epochs: Infinity, errors });
//   const batcher = new TokenBudgetBatcher(corpus, { tokenizer, seed });
//   if (saved) await batcher.restore(saved);
//   for await (const mb of batcher) {
//     const samples = await Promise.all(mb.samples.map((s) => prepareSample(s.doc, tokenizer, imageProcessor)));
//     const batch = buildBatch(samples.map((s) => s.item), { ...imageTokenIds(tokenizer), padToMultipleOf: 32 });
//     …; checkpoint.data = batcher.state();
//   }
export { Rng, type RngState } from './rng.js';
export {
  BAD_ROW_REASONS,
  BadRowRecorder,
  DataError,
  describeLocation,
  emptyBadRowCounts,
  type BadRowCounts,
  type BadRowReason,
  type ErrorSink,
  type RowLocation,
} from './errors.js';
export { checkSourceNames, parseSourceSpec, sourceFiles, type SourceFormat, type SourceSpec } from './source-spec.js';
export {
  rowIdOf,
  rowToDocument,
  type Document,
  type DocumentImage,
  type RowContext,
  type SourceCursor,
} from './document.js';
export { readLinesWithOffsets, readLineAt, type JsonlLine, type ReadCounter } from './jsonl-reader.js';
export { nodeCompressors, ParquetFile } from './parquet-reader.js';
export { DataSource, START_CURSOR, type RawRecord, type SourceItem } from './source.js';
export {
  MixedCorpus,
  type CorpusSourceState,
  type CorpusState,
  type CorpusStats,
  type DocumentLocator,
  type MixedCorpusOptions,
} from './corpus.js';
export {
  DEFAULT_MAX_LENGTH,
  IMAGE_EQUIV_TOKENS,
  IMAGE_OVERHEAD_TOKENS,
  MIN_IMAGE_SIDE,
  decodeDocumentImage,
  ensureMinSide,
  measureDocument,
  prepareSample,
  sampleCost,
  textTokenCount,
  type DecodeDocumentImageOptions,
  type MeasuredDocument,
  type MeasureOptions,
  type PreparedSample,
  type PrepareOptions,
  type SampleCost,
  type TextTokenizer,
} from './sample.js';
export {
  DEFAULT_BUFFER_SIZE,
  DEFAULT_TOKENS_PER_BATCH,
  TokenBudgetBatcher,
  bucketIndex,
  bucketThresholds,
  microBatchSize,
  type BatcherState,
  type BatcherStats,
  type MicroBatch,
  type TokenBudgetBatcherOptions,
  type WaitingEntry,
} from './batcher.js';
// Stage-2 (contrastive fine-tuning) pair data and task-aware batch sampling: see ./pairs/index.ts.
export * from './pairs/index.js';
