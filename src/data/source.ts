// One data source (a JSON Lines file, a Parquet file, or a directory of shards) read as a stream of checked
// documents from a saved position, plus random access to single rows by position (used to rebuild a shuffle
// buffer on resume). Bad rows are handed to a BadRowRecorder and skipped. The position after every document is
// reported with it, so the caller can save exactly what has been consumed.
import { dirname } from 'node:path';

import { BadRowRecorder, DataError } from './errors.js';
import { rowToDocument, rowLocation, type Document, type RowContext, type SourceCursor } from './document.js';
import { readLineAt, readLinesWithOffsets, type ReadCounter } from './jsonl-reader.js';
import { detachBinary, ParquetFile } from './parquet-reader.js';
import { sourceFiles, type SourceSpec } from './source-spec.js';

/** The start of a source. */
export const START_CURSOR: Readonly<SourceCursor> = Object.freeze({ file: 0, offset: 0, row: 0, line: 1 });

/** A raw row: its position, the position after it, and its parsed value or why it could not be parsed. */
export interface RawRecord {
  cursor: SourceCursor;
  next: SourceCursor;
  file: string;
  value?: unknown;
  /** Set when the row is not valid JSON. */
  jsonError?: string;
}

/** A checked document and the position just after it. */
export interface SourceItem {
  doc: Document;
  next: SourceCursor;
}

function parseJsonLine(text: string): { value?: unknown; jsonError?: string } {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (e) {
    return { jsonError: (e as Error).message };
  }
}

export function checkCursor(c: unknown, what: string): SourceCursor {
  const o = c as SourceCursor;
  const ok =
    typeof o === 'object' &&
    o !== null &&
    [o.file, o.offset, o.row, o.line].every((v) => Number.isSafeInteger(v) && v >= 0);
  if (!ok) throw new TypeError(`${what}: malformed source position ${JSON.stringify(c)}`);
  return { file: o.file, offset: o.offset, row: o.row, line: o.line };
}

export class DataSource {
  /** Absolute paths of the shards, in reading order. */
  readonly files: string[];
  /** Bytes read from the shards so far by sequential reading (for tests and progress). */
  readonly counter: ReadCounter = { bytesRead: 0 };

  constructor(readonly spec: SourceSpec) {
    this.files = sourceFiles(spec);
  }

  get name(): string {
    return this.spec.name;
  }

  /** Raw rows from `from` to the end of the last shard. */
  async *records(from: SourceCursor = START_CURSOR): AsyncGenerator<RawRecord> {
    let row = from.row;
    for (let f = from.file; f < this.files.length; f++) {
      const file = this.files[f]!;
      const first = f === from.file;
      if (this.spec.format === 'jsonl') {
        const startOffset = first ? from.offset : 0;
        const startLine = first ? from.line : 1;
        for await (const l of readLinesWithOffsets(file, startOffset, startLine, this.counter)) {
          if (l.text.trim() === '') continue;
          const cursor = { file: f, offset: l.offset, row, line: l.line };
          row++;
          yield { cursor, next: { file: f, offset: l.next, row, line: l.line + 1 }, file, ...parseJsonLine(l.text) };
        }
      } else {
        const pq = await ParquetFile.open(file, this.counter);
        try {
          for await (const r of pq.rows(first ? from.offset : 0)) {
            const cursor = { file: f, offset: r.index, row, line: 0 };
            row++;
            yield { cursor, next: { file: f, offset: r.index + 1, row, line: 0 }, file, value: detachBinary(r.value) };
          }
        } finally {
          await pq.close();
        }
      }
    }
  }

  /** A raw row → Document, or a DataError naming the row. */
  toDocument(rec: RawRecord, epoch: number): Document {
    const ctx: RowContext = {
      source: this.spec.name,
      row: rec.cursor.row,
      epoch,
      cursor: rec.cursor,
      file: rec.file,
      baseDir: dirname(rec.file),
    };
    if (rec.jsonError !== undefined) {
      throw new DataError('invalid_json', `invalid JSON: ${rec.jsonError}`, rowLocation(ctx));
    }
    return rowToDocument(rec.value, ctx);
  }

  /** Checked documents from `from` on; bad rows go to `recorder` (which throws when strict). */
  async *documents(from: SourceCursor, epoch: number, recorder: BadRowRecorder): AsyncGenerator<SourceItem> {
    for await (const rec of this.records(from)) {
      let doc: Document;
      try {
        doc = this.toDocument(rec, epoch);
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        recorder.record(e, 'read');
        continue;
      }
      yield { doc, next: rec.next };
    }
  }

  /**
   * Reads the rows at `cursors` again (any order; each Parquet row group is read once) and returns their
   * documents in the same order. Throws when a row is gone or no longer a valid document — the data changed.
   */
  async fetch(cursors: readonly SourceCursor[], epochs: readonly number[]): Promise<Document[]> {
    const changed = (what: string) =>
      new Error(`data source "${this.name}": ${what} — the data files changed since the state was saved`);
    const out: Document[] = new Array(cursors.length);
    const byFile = new Map<number, number[]>();
    cursors.forEach((c, i) => {
      if (c.file >= this.files.length) {
        throw changed(`the saved position names shard ${c.file} but there are ${this.files.length}`);
      }
      const list = byFile.get(c.file);
      if (list) list.push(i);
      else byFile.set(c.file, [i]);
    });
    const make = (i: number, value: unknown, jsonError?: string): void => {
      const c = cursors[i]!;
      const file = this.files[c.file]!;
      try {
        out[i] = this.toDocument({ cursor: c, next: c, file, value, ...(jsonError ? { jsonError } : {}) }, epochs[i]!);
      } catch (e) {
        throw new Error(
          `data source "${this.name}": row ${c.row} (${file}) is no longer a valid document — the data files changed ` +
            `since the state was saved: ${(e as Error).message}`,
          { cause: e },
        );
      }
    };
    for (const [f, idx] of byFile) {
      const file = this.files[f]!;
      if (this.spec.format === 'jsonl') {
        for (const i of idx) {
          const text = await readLineAt(file, cursors[i]!.offset);
          if (text === undefined) throw changed(`${file} has no line at byte ${cursors[i]!.offset}`);
          const parsed = parseJsonLine(text);
          make(i, parsed.value, parsed.jsonError);
        }
      } else {
        const pq = await ParquetFile.open(file);
        try {
          const groups = new Map<number, number[]>();
          for (const i of idx) {
            const r = cursors[i]!.offset;
            if (r >= pq.numRows) throw changed(`${file} has no row ${r}`);
            let g = 0;
            while (pq.groupStarts[g + 1]! <= r) g++;
            const members = groups.get(g);
            if (members) members.push(i);
            else groups.set(g, [i]);
          }
          for (const [g, members] of groups) {
            const start = pq.groupStarts[g]!;
            const rows = await pq.readRows(start, pq.groupStarts[g + 1]!);
            for (const i of members) make(i, detachBinary(rows[cursors[i]!.offset - start]));
          }
        } finally {
          await pq.close();
        }
      }
    }
    return out;
  }
}
