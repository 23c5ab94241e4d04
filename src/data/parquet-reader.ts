// Streaming Parquet reader for the Hugging Face `datasets` layout of MoCa's stage-1 sets (spec §2.1): a `text`
// string column and an `images` column holding a list of the `Image` feature struct `{bytes, path}` or a list of
// binary. Built on hyparquet (pure JS). It reads one row group at a time (only the needed columns), so memory is
// bounded by the largest row group, never the file; a position is (shard, row within shard) and reading resumes
// mid-group with hyparquet's rowStart. Codecs: hyparquet reads uncompressed and Snappy (the pyarrow / `datasets`
// default) itself; GZIP and Brotli are added here from node:zlib, and ZSTD where node:zlib has it (Node ≥ 22.15).
// LZ4 / LZO files are refused with a message naming the codec.
import { open, type FileHandle } from 'node:fs/promises';
import zlib from 'node:zlib';

import {
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type AsyncBuffer,
  type Compressors,
  type FileMetaData,
} from 'hyparquet';

let compressors: Compressors | undefined;

/** Decompressors hyparquet lacks, from node:zlib. */
export function nodeCompressors(): Compressors {
  return (compressors ??= makeCompressors());
}

function makeCompressors(): Compressors {
  const c: Compressors = {
    GZIP: (input) => zlib.gunzipSync(input),
    BROTLI: (input) => zlib.brotliDecompressSync(input),
  };
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Uint8Array) => Buffer }).zstdDecompressSync;
  if (typeof zstd === 'function') c.ZSTD = (input) => zstd(input);
  return c;
}

/** An AsyncBuffer over an open file handle (positioned reads; nothing cached). */
function handleBuffer(fh: FileHandle, size: number, counter?: { bytesRead: number }): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? size, size);
      const length = Math.max(0, stop - start);
      const buf = new Uint8Array(new ArrayBuffer(length));
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, start + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + done}`);
        done += bytesRead;
      }
      if (counter) counter.bytesRead += length;
      return buf.buffer;
    },
  };
}

/** An open Parquet file: its metadata, the row range of each row group, and the columns to read. */
export class ParquetFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly buffer: AsyncBuffer,
    readonly metadata: FileMetaData,
    /** Start row of each row group, plus the total at the end. */
    readonly groupStarts: number[],
    /** The columns read: those of text / images / id that exist. */
    readonly columns: string[],
  ) {}

  /** Opens a file and reads its footer; `counter.bytesRead` (if given) counts every byte read from it. */
  static async open(
    path: string,
    counter?: { bytesRead: number },
    /** Columns to read instead of stage 1's text/images/id (those present), and the ones that must exist. */
    select?: { columns: readonly string[]; required: readonly string[] },
  ): Promise<ParquetFile> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const buffer = handleBuffer(fh, size, counter);
      let metadata: FileMetaData;
      try {
        metadata = await parquetMetadataAsync(buffer);
      } catch (e) {
        throw new Error(`${path}: not a readable Parquet file (${(e as Error).message})`, { cause: e });
      }
      const top = parquetSchema(metadata).children.map((c) => c.element.name);
      const groupStarts = [0];
      if (select) {
        const missing = select.required.filter((c) => !top.includes(c));
        if (missing.length > 0) {
          throw new Error(`${path}: missing column(s) ${missing.join(', ')} (columns: ${top.join(', ')})`);
        }
        for (const g of metadata.row_groups) groupStarts.push(groupStarts.at(-1)! + Number(g.num_rows));
        return new ParquetFile(
          path,
          fh,
          buffer,
          metadata,
          groupStarts,
          select.columns.filter((c) => top.includes(c)),
        );
      }
      if (!top.includes('text')) {
        throw new Error(`${path}: no "text" column (columns: ${top.join(', ')}); stage-1 data needs text and images`);
      }
      const columns = ['text', 'images', 'id'].filter((c) => top.includes(c));
      for (const g of metadata.row_groups) groupStarts.push(groupStarts.at(-1)! + Number(g.num_rows));
      return new ParquetFile(path, fh, buffer, metadata, groupStarts, columns);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get numRows(): number {
    return this.groupStarts.at(-1)!;
  }

  /** Rows [start, end) as objects with the selected columns (all inside one row group is the cheap case). */
  async readRows(start: number, end: number): Promise<Record<string, unknown>[]> {
    try {
      return (await parquetReadObjects({
        file: this.buffer,
        metadata: this.metadata,
        columns: this.columns,
        rowStart: start,
        rowEnd: end,
        // Unannotated BYTE_ARRAY (image bytes) stay binary; STRING-annotated columns still decode to strings.
        utf8: false,
        compressors: nodeCompressors(),
      })) as Record<string, unknown>[];
    } catch (e) {
      const msg = (e as Error).message;
      const hint = /unsupported compression codec/.test(msg) ? ' (supported: SNAPPY, GZIP, BROTLI, UNCOMPRESSED)' : '';
      throw new Error(`${this.path}: cannot read rows ${start}–${end - 1}: ${msg}${hint}`, { cause: e });
    }
  }

  /** Yields rows from `startRow` on, one row group at a time (memory: one row group). */
  async *rows(startRow = 0): AsyncGenerator<{ index: number; value: Record<string, unknown> }> {
    for (let g = 0; g < this.metadata.row_groups.length; g++) {
      const gs = this.groupStarts[g]!;
      const ge = this.groupStarts[g + 1]!;
      if (ge <= startRow || ge === gs) continue;
      const from = Math.max(gs, startRow);
      const rows = await this.readRows(from, ge);
      for (let i = 0; i < rows.length; i++) yield { index: from + i, value: rows[i]! };
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Copies binary values out of hyparquet's page buffers, so a kept document does not pin a whole page. */
export function detachBinary(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return value.map(detachBinary);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = detachBinary(v);
    return out;
  }
  return value;
}
