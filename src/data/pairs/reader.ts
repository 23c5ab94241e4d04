// Reading stage-2 pair subsets (spec §3.1): one subset is a JSON Lines file, a Parquet file or a directory of shards
// (the layout rules of the stage-1 sources, src/data/source-spec.ts), read in order, streaming, and capped to its
// first N rows — MoCa loads every subset as `split="train[:50000]"`. Rows become PairSamples (src/data/pairs/pair.ts);
// bad rows are recorded (subset, row, id, field, reason) and skipped.
//
// Memory model: {@link loadPairDataset} keeps every capped subset in memory as parsed PairSamples — texts and image
// references, never pixels. That is what the sampler needs (random access by index into each subset) and what MoCa
// holds (50,000 rows per subset). Measured: ≈ 1 kB of JS heap per MMEB-style sample (a ~175-character query with an
// image path, a ~50-character positive, two ~55-character negatives; 50,000 such rows: ~50 MB, read from JSON Lines
// in < 1 s), so a MoCa-sized mixture (30 subsets × 50,000 rows) is ≈ 1.5 GB — affordable next to the model and its
// optimizer state, and every batch is a plain array lookup. The alternative, an index of row positions with rows
// re-read per batch, would be cheap for JSON Lines but costs a whole Parquet row-group decode per random row (a task
// batch draws 24 random rows of a subset); it would only be worth it for much larger caps.
//
// Subset specification (command line): `NAME=PATH[@WEIGHT][#CAP]`, e.g. `MSCOCO_i2t=data/MSCOCO_i2t/@2#50000`.
// NAME defaults to the file / directory name (letters, digits, `_.+-`). WEIGHT is a positive number, default 1: when
// any subset gives one, the task-aware sampler draws subsets ∝ these weights (PairDataset.samplerWeights), otherwise
// ∝ their sizes. CAP is a row count (`_` allowed: `#50_000`) or `all` (no cap), default the reader's `maxSamples`.
// Only a trailing `#<count>` / `#all` is a cap; any other `#` belongs to the path. A `#` inside a word is literal in
// sh, bash and zsh with default options, so no quoting is needed (zsh with EXTENDED_GLOB set: quote the spec).
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type FileMetaData,
} from 'hyparquet';

import { BadRowRecorder, DataError, emptyBadRowCounts, type BadRowCounts, type ErrorSink } from '../errors.js';
import { readLinesWithOffsets } from '../jsonl-reader.js';
import { detachBinary, nodeCompressors } from '../parquet-reader.js';
import { checkSourceNames, parseSourceSpec, sourceFiles, type SourceSpec } from '../source-spec.js';
import {
  DEFAULT_NEGATIVE_RATIO,
  PAIR_COLUMNS,
  PairDataError,
  parsePairRow,
  type PairParseOptions,
  type PairSample,
} from './pair.js';

/** MoCa's `num_sample_per_subset` (spec §3.1): the first 50,000 rows of every subset. */
export const MOCA_SAMPLES_PER_SUBSET = 50_000;

export interface PairSubsetSpec extends SourceSpec {
  /** Whether the specification gave a weight (`@WEIGHT`); `weight` is 1 otherwise. */
  weightGiven: boolean;
  /** The row cap: a count, null for `#all` (no cap), undefined when not given (the reader's `maxSamples` applies). */
  maxSamples?: number | null;
}

const CAP = /#(all|\d[\d_]*)$/i;
const WEIGHT_SUFFIX = /@(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses `NAME=PATH[@WEIGHT][#CAP]` (see the module comment). */
export function parsePairSubsetSpec(spec: string): PairSubsetSpec {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('empty data subset specification');
  let rest = spec.trim();
  let maxSamples: number | null | undefined;
  const cap = CAP.exec(rest);
  if (cap) {
    if (cap[1]!.toLowerCase() === 'all') maxSamples = null;
    else {
      maxSamples = Number(cap[1]!.replaceAll('_', ''));
      if (!Number.isSafeInteger(maxSamples) || maxSamples < 1) {
        throw new Error(`data subset "${spec}": the row cap must be a positive integer or "all", got ${cap[1]}`);
      }
    }
    rest = rest.slice(0, cap.index);
  } else if (/#(?:all|\d[\d_]*)@[^@]*$/i.test(rest)) {
    throw new Error(`data subset "${spec}": write the weight before the cap: NAME=PATH@WEIGHT#CAP`);
  } else if (/#[-+]?[\d.eE_]+$/.test(rest)) {
    throw new Error(
      `data subset "${spec}": bad row cap "${rest.slice(rest.lastIndexOf('#') + 1)}" (a positive integer or "all")`,
    );
  }
  const weightGiven = WEIGHT_SUFFIX.test(rest);
  const base = parseSourceSpec(rest);
  return { ...base, weightGiven, ...(maxSamples !== undefined ? { maxSamples } : {}) };
}

export interface PairReadOptions extends PairParseOptions {
  /** Row cap of subsets whose specification has none (MoCa: {@link MOCA_SAMPLES_PER_SUBSET}); default: no cap. */
  maxSamples?: number | null;
  /** Where bad rows are written (e.g. the run's ErrorLog). */
  errors?: ErrorSink;
  /** Throw on the first bad row instead of skipping it. */
  strict?: boolean;
  /** Counters (and sink / strictness) to use instead of a new {@link PairBadRowRecorder}(errors, strict). */
  recorder?: BadRowRecorder;
}

/**
 * A BadRowRecorder whose error records also carry the `subset` and the `field` of a {@link PairDataError}:
 * `{source, row, id, file, line?, stage, reason, error, subset, field}`.
 */
export class PairBadRowRecorder extends BadRowRecorder {
  private current: DataError | undefined;

  constructor(sink?: ErrorSink, strict = false) {
    const box: { self?: PairBadRowRecorder } = {};
    super(sink ? { record: (entry) => sink.record(box.self ? box.self.annotate(entry) : entry) } : undefined, strict);
    box.self = this;
  }

  override record(error: DataError, stage: 'read' | 'measure' | 'prepare'): void {
    this.current = error;
    try {
      super.record(error, stage);
    } finally {
      this.current = undefined;
    }
  }

  private annotate(entry: Record<string, unknown>): Record<string, unknown> {
    const e = this.current;
    return e instanceof PairDataError ? { ...entry, subset: e.subset, field: e.field } : entry;
  }
}

/** Counters of one read. */
export interface PairReadStats {
  /** Rows read (good and bad; at most the cap). */
  rowsRead: number;
  /** Rows skipped as bad. */
  badRows: number;
}

interface RawRow {
  file: string;
  line?: number;
  value?: unknown;
  jsonError?: string;
}

const MMEB_REQUIRED = ['qry', 'qry_image_path', 'pos_text', 'pos_image_path'];
const MMEB_NEGATIVE = ['neg_text', 'neg_image_path'];

/** Rows of one Parquet file (only the pair columns), at most `limit`, one row group at a time. */
async function* parquetRows(file: string, limit: number, negativeRatio: number): AsyncGenerator<RawRow> {
  const buffer = await asyncBufferFromFile(file);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw new Error(`${file}: not a readable Parquet file (${(e as Error).message})`, { cause: e });
  }
  const top = parquetSchema(metadata).children.map((c) => c.element.name);
  const columns = PAIR_COLUMNS.filter((c) => top.includes(c));
  if (columns.every((c) => c === 'id')) {
    throw new Error(
      `${file}: no pair columns (columns: ${top.join(', ')}); expected qry, qry_image_path, pos_text, pos_image_path, ` +
        'neg_text, neg_image_path or query/positive/negatives',
    );
  }
  if (columns.some((c) => c === 'pos_text' || c.endsWith('_image_path'))) {
    const missing = [...MMEB_REQUIRED, ...(negativeRatio > 0 ? MMEB_NEGATIVE : [])].filter((c) => !top.includes(c));
    if (missing.length > 0) throw new Error(`${file}: MMEB-style pair file without column(s) ${missing.join(', ')}`);
  }
  let start = 0;
  for (const group of metadata.row_groups) {
    if (start >= limit) return;
    const end = start + Number(group.num_rows);
    const stop = Math.min(end, limit);
    if (stop > start) {
      let rows: Record<string, unknown>[];
      try {
        rows = (await parquetReadObjects({
          file: buffer,
          metadata,
          columns,
          rowStart: start,
          rowEnd: stop,
          utf8: false,
          compressors: nodeCompressors(),
        })) as Record<string, unknown>[];
      } catch (e) {
        throw new Error(`${file}: cannot read rows ${start}–${stop - 1}: ${(e as Error).message}`, { cause: e });
      }
      for (const r of rows) yield { file, value: detachBinary(r) };
    }
    start = end;
  }
}

/** Rows of a JSON Lines file (blank lines skipped), at most `limit`. */
async function* jsonlRows(file: string, limit: number): AsyncGenerator<RawRow> {
  let n = 0;
  if (limit <= 0) return;
  for await (const l of readLinesWithOffsets(file)) {
    if (l.text.trim() === '') continue;
    let row: RawRow;
    try {
      row = { file, line: l.line, value: JSON.parse(l.text) as unknown };
    } catch (e) {
      row = { file, line: l.line, jsonError: (e as Error).message };
    }
    yield row;
    if (++n >= limit) return;
  }
}

function resolveSpec(spec: PairSubsetSpec | string): PairSubsetSpec {
  return typeof spec === 'string' ? parsePairSubsetSpec(spec) : spec;
}

function capOf(spec: PairSubsetSpec, options: PairReadOptions): number {
  const cap = spec.maxSamples !== undefined ? spec.maxSamples : (options.maxSamples ?? null);
  if (cap === null) return Infinity;
  if (!Number.isSafeInteger(cap) || cap < 1) throw new RangeError(`maxSamples must be a positive integer, got ${cap}`);
  return cap;
}

/**
 * Streams the samples of one subset: its first `cap` rows (the spec's `#CAP`, else `options.maxSamples`, else all),
 * bad rows recorded and skipped. `stats` (if given) is updated as rows are read.
 */
export async function* readPairSubset(
  spec: PairSubsetSpec | string,
  options: PairReadOptions = {},
  stats: PairReadStats = { rowsRead: 0, badRows: 0 },
): AsyncGenerator<PairSample> {
  const s = resolveSpec(spec);
  const recorder = options.recorder ?? new PairBadRowRecorder(options.errors, options.strict);
  const cap = capOf(s, options);
  const ratio = options.negativeRatio ?? DEFAULT_NEGATIVE_RATIO;
  const files = sourceFiles(s);
  let row = 0;
  for (const file of files) {
    const remaining = cap - row;
    if (remaining <= 0) break;
    const rows = s.format === 'jsonl' ? jsonlRows(file, remaining) : parquetRows(file, remaining, ratio);
    for await (const raw of rows) {
      const ctx = { subset: s.name, row, file, ...(raw.line !== undefined ? { line: raw.line } : {}) };
      row++;
      stats.rowsRead++;
      let sample: PairSample;
      try {
        if (raw.jsonError !== undefined) {
          throw new PairDataError('invalid_json', 'row', `invalid JSON: ${raw.jsonError}`, {
            source: s.name,
            row: ctx.row,
            id: `${s.name}:${ctx.row}`,
            file,
            ...(raw.line !== undefined ? { line: raw.line } : {}),
          });
        }
        sample = parsePairRow(raw.value, ctx, options);
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        stats.badRows++;
        recorder.record(e, 'read');
        continue;
      }
      yield sample;
    }
  }
}

/** One loaded subset. */
export interface PairSubset {
  name: string;
  spec: PairSubsetSpec;
  /** The good samples of the first `cap` rows, in file order. */
  samples: PairSample[];
  /** Rows read (good + bad). */
  rowsRead: number;
  /** Rows skipped as bad. */
  badRows: number;
}

/** Reads one subset into memory. */
export async function loadPairSubset(
  spec: PairSubsetSpec | string,
  options: PairReadOptions = {},
): Promise<PairSubset> {
  const s = resolveSpec(spec);
  const stats: PairReadStats = { rowsRead: 0, badRows: 0 };
  const samples: PairSample[] = [];
  for await (const sample of readPairSubset(s, options, stats)) samples.push(sample);
  return { name: s.name, spec: s, samples, ...stats };
}

/** Where a global sample index is: subset index and index within the subset. */
export interface PairLocation {
  subset: number;
  local: number;
}

/**
 * The loaded subsets of a stage-2 run, addressed by global index: subset 0's samples first, then subset 1's, … —
 * the same numbering the {@link TaskBatchSampler} uses with `samplerSubsets()`.
 */
export class PairDataset {
  /** Start index of every subset, plus the total at the end. */
  readonly offsets: readonly number[];

  constructor(
    readonly subsets: readonly PairSubset[],
    /** Bad-row counters of the load. */
    readonly badRows: BadRowCounts = emptyBadRowCounts(),
  ) {
    const offsets = [0];
    for (const s of subsets) offsets.push(offsets.at(-1)! + s.samples.length);
    this.offsets = offsets;
  }

  /** Number of samples (all subsets). */
  get size(): number {
    return this.offsets.at(-1)!;
  }

  locate(index: number): PairLocation {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`sample index ${index} out of range [0, ${this.size})`);
    }
    let lo = 0;
    let hi = this.subsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return { subset: lo, local: index - this.offsets[lo]! };
  }

  get(index: number): PairSample {
    const { subset, local } = this.locate(index);
    return this.subsets[subset]!.samples[local]!;
  }

  /** The samples of a batch of global indices. */
  batch(indices: readonly number[]): PairSample[] {
    return indices.map((i) => this.get(i));
  }

  /** `{name, size}` of every subset, for the TaskBatchSampler. */
  samplerSubsets(): { name: string; size: number }[] {
    return this.subsets.map((s) => ({ name: s.name, size: s.samples.length }));
  }

  /** Subset weights for the sampler: 'size' unless a specification gave `@WEIGHT` (then the weights, 1 by default). */
  samplerWeights(): 'size' | number[] {
    return this.subsets.some((s) => s.spec.weightGiven) ? this.subsets.map((s) => s.spec.weight) : 'size';
  }
}

/**
 * Loads subsets (specifications or parsed specs; names must be unique) one after another into a
 * {@link PairDataset}; bad rows of all subsets are counted together (`dataset.badRows`).
 */
export async function loadPairDataset(
  specs: readonly (PairSubsetSpec | string)[],
  options: PairReadOptions = {},
): Promise<PairDataset> {
  const parsed = specs.map(resolveSpec);
  if (parsed.length === 0) throw new Error('no data subsets given');
  checkSourceNames(parsed);
  const recorder = options.recorder ?? new PairBadRowRecorder(options.errors, options.strict);
  const subsets: PairSubset[] = [];
  for (const s of parsed) subsets.push(await loadPairSubset(s, { ...options, recorder }));
  return new PairDataset(subsets, recorder.stats());
}
