// Bad-row bookkeeping for the training data readers. Web-scale pre-training sets always contain some broken rows
// (truncated JSON, undecodable image bytes, text whose image placeholders do not match its images); one of them must
// not stop a multi-day run. So a bad row is recorded (source, row, id, reason) in an error sink — usually the
// `ErrorLog` JSON Lines file of src/util/output.ts — counted, and skipped. With `strict`, it throws instead
// (useful while preparing a new data set). The counters are part of the pipeline's resumable state.

/** Why a row was rejected. */
export type BadRowReason =
  /** The JSON Lines row is not valid JSON. */
  | 'invalid_json'
  /** The row is not an object, its text is not a string, its images are not a list of images, … */
  | 'bad_field'
  /** The number of `<|vision_start|><|image_pad|><|vision_end|>` in the text differs from the number of images. */
  | 'placeholder_mismatch'
  /** An image is missing (file not found), unreadable, corrupt or in an unsupported format. */
  | 'bad_image';

export const BAD_ROW_REASONS: readonly BadRowReason[] = [
  'invalid_json',
  'bad_field',
  'placeholder_mismatch',
  'bad_image',
];

/** Where a row came from, for messages and the error log. */
export interface RowLocation {
  /** Source name. */
  source: string;
  /** 0-based row index within the source (records across all its shards, blank JSONL lines not counted). */
  row: number;
  /** The document id when known (`source:rowId` or `source:row`). */
  id?: string;
  /** The file the row is in. */
  file?: string;
  /** 1-based line number (JSON Lines only). */
  line?: number;
}

/** A bad row, thrown when reading in strict mode (and by the per-row helpers). */
export class DataError extends Error {
  override name = 'DataError';
  constructor(
    readonly reason: BadRowReason,
    message: string,
    readonly location?: RowLocation,
    options?: { cause?: unknown },
  ) {
    super(location ? `${describeLocation(location)}: ${message}` : message, options);
  }
}

/** `source "name" row 12 (id …, file:line)` */
export function describeLocation(at: RowLocation): string {
  const parts: string[] = [];
  if (at.id !== undefined) parts.push(`id ${at.id}`);
  if (at.file !== undefined) parts.push(at.line === undefined ? at.file : `${at.file}:${at.line}`);
  return `source "${at.source}" row ${at.row}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** Anything that can store error records; `ErrorLog` (src/util/output.ts) is one. */
export interface ErrorSink {
  record(entry: Record<string, unknown>): void;
}

/** Counters of bad rows; JSON-serialisable. */
export interface BadRowCounts {
  total: number;
  byReason: Record<BadRowReason, number>;
  bySource: Record<string, number>;
}

export function emptyBadRowCounts(): BadRowCounts {
  return {
    total: 0,
    byReason: { invalid_json: 0, bad_field: 0, placeholder_mismatch: 0, bad_image: 0 },
    bySource: {},
  };
}

/** Records bad rows into an optional sink, counts them, and throws in strict mode. */
export class BadRowRecorder {
  private counts: BadRowCounts = emptyBadRowCounts();

  constructor(
    readonly sink?: ErrorSink,
    readonly strict = false,
  ) {}

  /** Records `error` for the row at `at` (or throws it when strict). `stage` says which step found it. */
  record(error: DataError, stage: 'read' | 'measure' | 'prepare'): void {
    if (this.strict) throw error;
    const at = error.location;
    const source = at?.source ?? '?';
    this.counts.total++;
    this.counts.byReason[error.reason]++;
    this.counts.bySource[source] = (this.counts.bySource[source] ?? 0) + 1;
    this.sink?.record({
      source,
      row: at?.row,
      ...(at?.id !== undefined ? { id: at.id } : {}),
      ...(at?.file !== undefined ? { file: at.file } : {}),
      ...(at?.line !== undefined ? { line: at.line } : {}),
      stage,
      reason: error.reason,
      error: error.message,
    });
  }

  /** A copy of the counters. */
  stats(): BadRowCounts {
    return structuredClone(this.counts);
  }

  /** Continues counting from saved counters (resume). */
  restore(counts: unknown): void {
    const c = counts as BadRowCounts;
    if (
      typeof c !== 'object' ||
      c === null ||
      !Number.isInteger(c.total) ||
      typeof c.byReason !== 'object' ||
      typeof c.bySource !== 'object'
    ) {
      throw new TypeError('bad-row counters in the saved state are malformed');
    }
    const fresh = emptyBadRowCounts();
    for (const r of BAD_ROW_REASONS) fresh.byReason[r] = Number(c.byReason[r] ?? 0);
    fresh.total = c.total;
    fresh.bySource = { ...c.bySource };
    this.counts = fresh;
  }
}
