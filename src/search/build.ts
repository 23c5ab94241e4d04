// Building an index from a collection: rows are embedded chunk by chunk and each chunk is committed together with
// the position reached in the input (the checkpoint). An interrupted build (Ctrl-C, kill, crash) resumes at the
// last committed chunk: nothing is embedded twice and nothing is lost, and because chunk boundaries and batch sizes
// are kept from the first run, the resumed build produces the same vectors as an uninterrupted one.
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

import { type Embedder, normaliseInput } from '../embed/index.js';
import { type IndexRow, type RowOrError, type RowSource, arraySource } from './collection.js';
import { writeThumbnail } from './thumbnails.js';
import { type Quantization, IndexError, VectorIndex, indexExists } from './vector-index.js';

export interface BuildIndexOptions {
  /** 'build' creates the index (or resumes its interrupted build); 'add' appends to an existing index. */
  mode?: 'build' | 'add';
  quantization?: Quantization;
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  /** Inputs per forward pass (default 8). */
  batchSize?: number;
  /** Rows per commit (default 8 × batchSize). */
  chunkSize?: number;
  /** Discard an existing index or interrupted build in the folder and start over ('build' only). */
  restart?: boolean;
  /** Stops after the chunk being embedded is committed; the build can be resumed later. */
  signal?: AbortSignal;
  onProgress?: (progress: BuildProgress) => void;
  /** Where failed rows are recorded (default <dir>/errors.jsonl). */
  errorsFile?: string;
  /** Write JPEG previews of image rows to <dir>/thumbs (default true). */
  thumbnails?: boolean;
  /** Stop at the first bad row (it is recorded in the errors file first). */
  strict?: boolean;
  /** Threads for the graph (0: all; 1: a reproducible graph file). */
  threads?: number;
  /** Recorded in the manifest: how vectors were made (model, prompts…), used by `moca search` and the server. */
  info?: Record<string, unknown>;
}

export interface BuildProgress {
  /** Input rows consumed (embedded, failed or skipped), including those of earlier runs when resuming. */
  rows: number;
  total: number | undefined;
  added: number;
  failed: number;
}

export interface BuildReport {
  dir: string;
  /** Rows added to the index by this operation (all runs of it). */
  added: number;
  failed: number;
  rows: number;
  /** Rows already done by an earlier, interrupted run (0 for a fresh start). */
  resumedAt: number;
  size: number;
  errorsFile: string;
}

/** The build was stopped through its AbortSignal after committing; run it again to resume. */
export class BuildInterrupted extends Error {
  override name = 'BuildInterrupted';
  constructor(readonly rows: number) {
    super(`interrupted after ${rows} rows (committed; run again to resume)`);
  }
}

interface Checkpoint {
  op: 'build' | 'add';
  fingerprint: string;
  source: string;
  batchSize: number;
  chunkSize: number;
  rows: number;
  added: number;
  failed: number;
  errorsBytes: number;
  done: boolean;
}

function isCheckpoint(x: unknown): x is Checkpoint {
  return x !== null && typeof x === 'object' && 'op' in x && 'fingerprint' in x && 'rows' in x;
}

export const THUMBS_DIR = 'thumbs';

/** Opens or creates the index and decides where to start. */
function openForOperation(
  embedder: Embedder,
  src: RowSource,
  dir: string,
  options: BuildIndexOptions,
): { index: VectorIndex; checkpoint: Checkpoint; resumed: boolean } {
  const mode = options.mode ?? 'build';
  const batchSize = options.batchSize ?? 8;
  const fresh = (): Checkpoint => ({
    op: mode,
    fingerprint: src.fingerprint,
    source: src.description,
    batchSize,
    chunkSize: options.chunkSize ?? batchSize * 8,
    rows: 0,
    added: 0,
    failed: 0,
    errorsBytes: 0,
    done: false,
  });
  if (mode === 'build') {
    if (indexExists(dir) && options.restart) {
      VectorIndex.remove(dir);
      rmSync(path.join(dir, THUMBS_DIR), { recursive: true, force: true });
    }
    if (!indexExists(dir)) {
      const index = VectorIndex.create(dir, {
        dimensions: embedder.dimension,
        ...(options.quantization === undefined ? {} : { quantization: options.quantization }),
        ...(options.connectivity === undefined ? {} : { connectivity: options.connectivity }),
        ...(options.expansionAdd === undefined ? {} : { expansionAdd: options.expansionAdd }),
        ...(options.expansionSearch === undefined ? {} : { expansionSearch: options.expansionSearch }),
        ...(options.threads === undefined ? {} : { threads: options.threads }),
        info: options.info ?? {},
      });
      const checkpoint = fresh();
      index.commitCheckpoint(checkpoint);
      return { index, checkpoint, resumed: false };
    }
  }
  const index = VectorIndex.open(dir, options.threads === undefined ? {} : { threads: options.threads });
  try {
    if (index.dimensions !== embedder.dimension) {
      throw new IndexError(
        `${dir}: the index holds ${index.dimensions}-d vectors but the model makes ${embedder.dimension}-d embeddings`,
      );
    }
    const cp = isCheckpoint(index.checkpoint) ? index.checkpoint : null;
    if (cp !== null && !cp.done) {
      if (cp.op === mode && cp.fingerprint === src.fingerprint) return { index, checkpoint: cp, resumed: cp.rows > 0 };
      throw new IndexError(
        `${dir}: an interrupted '${cp.op}' of ${cp.source} is unfinished here (${cp.rows} rows done); ` +
          (cp.op === 'build' ? 'run it again to resume, or restart the build' : 'run it again to resume it first'),
      );
    }
    if (mode === 'build') {
      throw new IndexError(
        `${dir}: already holds an index of ${index.size} vectors; add rows with 'moca index add', or restart the build`,
      );
    }
    const checkpoint = fresh();
    index.commitCheckpoint(checkpoint);
    return { index, checkpoint, resumed: false };
  } catch (e) {
    index.close();
    throw e;
  }
}

async function* skipRows(
  rows: AsyncIterable<RowOrError> | Iterable<RowOrError>,
  n: number,
): AsyncGenerator<RowOrError> {
  let i = 0;
  for await (const r of rows) {
    if (i++ < n) continue;
    yield r;
  }
}

async function* inChunks<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let buf: T[] = [];
  for await (const x of source) {
    buf.push(x);
    if (buf.length === size) {
      yield buf;
      buf = [];
    }
  }
  if (buf.length > 0) yield buf;
}

/** Up to `limit` promises at a time. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

/**
 * Embeds a collection into the index in `dir`: creates it (mode 'build', resuming an interrupted build of the same
 * input) or appends to it (mode 'add'). Bad rows go to the errors file and the build goes on unless `strict`.
 */
export async function buildIndex(
  embedder: Embedder,
  source: RowSource | readonly IndexRow[],
  dir: string,
  options: BuildIndexOptions = {},
): Promise<BuildReport> {
  const src = Array.isArray(source) ? arraySource(source as readonly IndexRow[]) : (source as RowSource);
  const { index, checkpoint: start, resumed } = openForOperation(embedder, src, dir, options);
  const errorsFile = options.errorsFile ?? path.join(dir, 'errors.jsonl');
  const errorsFd = openSync(errorsFile, existsSync(errorsFile) ? 'r+' : 'w+');
  let cp: Checkpoint = { ...start };
  const resumedAt = resumed ? start.rows : 0;
  try {
    // Errors recorded after the last commit belong to rows that will be read again.
    ftruncateSync(errorsFd, cp.errorsBytes);
    const errorsEnd = (): number => fstatSync(errorsFd).size;
    const recordError = (entry: Record<string, unknown>): void => {
      writeSync(errorsFd, JSON.stringify(entry) + '\n', errorsEnd());
    };
    const thumbnails = options.thumbnails ?? true;
    options.onProgress?.({ rows: cp.rows, total: src.total, added: cp.added, failed: cp.failed });
    for await (const chunk of inChunks(skipRows(src.rows, cp.rows), cp.chunkSize)) {
      const good: { row: IndexRow; line?: number }[] = [];
      const ids = new Set<string>();
      let failed = 0;
      for (const item of chunk) {
        if ('error' in item) {
          recordError({ ...(item.id === undefined ? {} : { id: item.id }), line: item.line, error: item.error });
          failed++;
        } else if (index.has(item.row.id) || ids.has(item.row.id)) {
          recordError({ id: item.row.id, line: item.line, error: `id '${item.row.id}' is already in the index` });
          failed++;
        } else {
          ids.add(item.row.id);
          good.push(item);
        }
      }
      const outcomes = await embedder.embedSettled(
        good.map((g) => g.row.input),
        { batchSize: cp.batchSize },
      );
      const added: { row: IndexRow; vector: Float32Array }[] = [];
      outcomes.forEach((o, i) => {
        const g = good[i]!;
        if (o.ok) added.push({ row: g.row, vector: o.embedding });
        else {
          recordError({ id: g.row.id, ...(g.line === undefined ? {} : { line: g.line }), error: o.error });
          failed++;
        }
      });
      const firstKey = index.size;
      const metadata: Record<string, unknown>[] = added.map(({ row }) => ({ ...(row.metadata ?? {}) }));
      if (thumbnails) {
        await mapLimited(
          added.map((a, i) => ({ a, i })),
          4,
          async ({ a, i }) => {
            const image = a.row.thumbnail ?? normaliseInput(a.row.input).images[0];
            if (image === undefined) return;
            const rel = `${THUMBS_DIR}/${firstKey + i}.jpg`;
            if (await writeThumbnail(image, path.join(dir, rel))) metadata[i]!.thumbnail = rel;
          },
        );
      }
      fsyncSync(errorsFd);
      cp = {
        ...cp,
        rows: cp.rows + chunk.length,
        added: cp.added + added.length,
        failed: cp.failed + failed,
        errorsBytes: errorsEnd(),
      };
      if (added.length > 0) {
        index.add(
          added.map((a) => a.row.id),
          added.map((a) => a.vector),
          metadata,
          { checkpoint: cp },
        );
      } else {
        index.commitCheckpoint(cp);
      }
      options.onProgress?.({ rows: cp.rows, total: src.total, added: cp.added, failed: cp.failed });
      if (options.strict && failed > 0) {
        throw new IndexError(`stopped at the first bad row (strict); see ${errorsFile}`);
      }
      if (options.signal?.aborted) throw new BuildInterrupted(cp.rows);
    }
    if (options.info !== undefined) index.setInfo({ ...index.info, ...options.info });
    cp = { ...cp, done: true };
    index.commitCheckpoint(cp);
    index.save();
    return {
      dir,
      added: cp.added,
      failed: cp.failed,
      rows: cp.rows,
      resumedAt,
      size: index.size,
      errorsFile,
    };
  } finally {
    const empty = fstatSync(errorsFd).size === 0;
    closeSync(errorsFd);
    if (empty && options.errorsFile === undefined) rmSync(errorsFile, { force: true });
    index.close();
  }
}
