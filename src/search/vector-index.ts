// A persistent vector index in one folder:
//   index.json      manifest: shape, graph settings, committed row count and file lengths, build checkpoint
//   vectors.f32     the exact float32 vectors, row-major; the row number is the vector's key
//   metadata.jsonl  one {"id", "metadata"} record per row, same order
//   graph.usearch   the HNSW graph (usearch, cosine; f32, f16 or i8 storage) over rows [0, graph.count)
//
// Additions are committed atomically: rows are written at the committed end of both data files, fsync'ed, then the
// manifest (written to a temporary file and renamed) moves the committed lengths forward. Whatever lies beyond the
// committed lengths (a torn write of an interrupted process) is ignored and overwritten by the next addition.
//
// The graph is derived data. It is saved by `save()`; on first search after opening, the saved graph is loaded and
// the rows committed since (if any) are added to it. Adding the missing rows in fixed-size blocks from a given
// graph state is deterministic with one thread, so an interrupted and resumed build saves the same graph file as
// an uninterrupted one.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

import { Index as UsearchIndex, MetricKind, ScalarKind } from 'usearch';

import { l2Norm, scanBlock, TopK } from './exact.js';

export type Quantization = 'f32' | 'f16' | 'i8';
export const QUANTIZATIONS: readonly Quantization[] = ['f32', 'f16', 'i8'];

export interface CreateIndexOptions {
  dimensions: number;
  /** Only cosine is supported: embeddings are compared by cosine similarity. */
  metric?: 'cos';
  /** Storage of the vectors inside the graph (default f32). The exact f32 vectors are always kept beside it. */
  quantization?: Quantization;
  /** HNSW neighbours per node (default 32). */
  connectivity?: number;
  /** Candidate list size while inserting (default 200). */
  expansionAdd?: number;
  /** Candidate list size while searching (default 200). */
  expansionSearch?: number;
  /** Free-form description of how the vectors were made (model, prompts), kept in the manifest. */
  info?: Record<string, unknown>;
  /** Threads for adding rows to the graph (see {@link OpenIndexOptions.threads}); not stored. */
  threads?: number;
}

export interface OpenIndexOptions {
  /** Open without the right to add (no lock, no repair of torn tails). */
  readOnly?: boolean;
  /**
   * Threads for adding rows to the graph (0: usearch's choice). Default: 1 for additions of fewer than 1,024 rows,
   * else 0. 1 gives a reproducible graph.
   */
  threads?: number;
  /** Overrides the manifest's search expansion. */
  expansionSearch?: number;
}

export interface SearchOptions {
  /** Brute force over the exact vectors instead of the graph. */
  exact?: boolean;
  /**
   * For a quantised graph: re-score this many times k graph candidates with the exact vectors (default 4 for f16
   * and i8, 1 for f32: the graph's own f32 distances are already exact).
   */
  rescore?: number;
}

export interface SearchHit {
  id: string;
  /** Row number in the index. */
  key: number;
  /** Cosine similarity to the query. */
  score: number;
  metadata: Record<string, unknown>;
}

export interface AddOptions {
  /** Committed together with the rows (resume state of a build). */
  checkpoint?: unknown;
}

interface Manifest {
  format: 'moca-index';
  version: 1;
  dimensions: number;
  metric: 'cos';
  quantization: Quantization;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
  count: number;
  vectorsBytes: number;
  metadataBytes: number;
  graph: { file: string; count: number } | null;
  info: Record<string, unknown>;
  checkpoint: unknown;
  createdAt: string;
  updatedAt: string;
}

const MANIFEST = 'index.json';
const VECTORS = 'vectors.f32';
const METADATA = 'metadata.jsonl';
const GRAPH = 'graph.usearch';
const LOCK = 'write.lock';
/** Rows added to the graph per call when catching up (fixed, so the result does not depend on how rows arrived). */
const GRAPH_BLOCK = 65536;
/** Additions of fewer rows than this are inserted into the graph on one thread (unless told otherwise). */
const SMALL_ADDITION = 1024;
/** Rows read per block by exact search. */
const SCAN_BLOCK = 8192;

export class IndexError extends Error {
  override name = 'IndexError';
}

/** Is there an index (a manifest) in `dir`? */
export function indexExists(dir: string): boolean {
  return existsSync(path.join(dir, MANIFEST));
}

function positiveIntOption(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`VectorIndex: ${name} must be a positive integer, got ${v}`);
  return v;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(value, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST);
  if (!existsSync(file)) {
    throw new IndexError(existsSync(dir) ? `${dir}: no index here (no ${MANIFEST})` : `index folder not found: ${dir}`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch (e) {
    throw new IndexError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (m.format !== 'moca-index' || m.version !== 1) {
    throw new IndexError(
      `${file}: not a moca index manifest (format ${String(m.format)}, version ${String(m.version)})`,
    );
  }
  if (!QUANTIZATIONS.includes(m.quantization)) throw new IndexError(`${file}: unknown quantization ${m.quantization}`);
  return m;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Folders this process has open for writing (the lock file alone cannot tell this process's locks apart). */
const openForWriting = new Set<string>();

/** Takes the folder's write lock (one writer at a time); a lock left by a dead process is taken over. */
function acquireLock(dir: string): string {
  const file = path.join(dir, LOCK);
  if (openForWriting.has(path.resolve(file))) {
    throw new IndexError(`${dir}: the index is already open for writing in this process (lock ${file})`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      openForWriting.add(path.resolve(file));
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new IndexError(`${dir}: the index is being written by process ${pid} (lock ${file})`);
      }
      unlinkSync(file);
    }
  }
  throw new IndexError(`${dir}: could not take the write lock ${file}`);
}

export class VectorIndex {
  private graph: UsearchIndex | null = null;
  private graphDirty = false;
  private readonly ids: string[] = [];
  private readonly metadataLines: string[] = [];
  private readonly keyOf = new Map<string, number>();
  private vectorsFd: number;
  private metadataFd: number;
  private lockFile: string | null;
  private closed = false;

  private constructor(
    readonly dir: string,
    private manifest: Manifest,
    private readonly options: OpenIndexOptions,
  ) {
    const readOnly = options.readOnly ?? false;
    this.lockFile = readOnly ? null : acquireLock(dir);
    try {
      const flags = readOnly ? 'r' : 'r+';
      this.vectorsFd = openSync(path.join(dir, VECTORS), flags);
      this.metadataFd = openSync(path.join(dir, METADATA), flags);
      this.checkDataFiles();
      if (!readOnly) {
        // Drop torn tails of an interrupted addition.
        ftruncateSync(this.vectorsFd, manifest.vectorsBytes);
        ftruncateSync(this.metadataFd, manifest.metadataBytes);
      }
      this.loadMetadata();
    } catch (e) {
      this.releaseLock();
      throw e;
    }
  }

  /** Creates an empty index in `dir` (created if needed; it must not hold an index already). */
  static create(dir: string, options: CreateIndexOptions): VectorIndex {
    const dimensions = positiveIntOption(options.dimensions, 0, 'dimensions');
    if ((options.metric ?? 'cos') !== 'cos') throw new RangeError(`VectorIndex: metric must be 'cos'`);
    const quantization = options.quantization ?? 'f32';
    if (!QUANTIZATIONS.includes(quantization)) {
      throw new RangeError(`VectorIndex: quantization must be one of ${QUANTIZATIONS.join(', ')}, got ${quantization}`);
    }
    if (indexExists(dir)) throw new IndexError(`${dir}: an index already exists here`);
    mkdirSync(dir, { recursive: true });
    const now = new Date().toISOString();
    const manifest: Manifest = {
      format: 'moca-index',
      version: 1,
      dimensions,
      metric: 'cos',
      quantization,
      connectivity: positiveIntOption(options.connectivity, 32, 'connectivity'),
      expansionAdd: positiveIntOption(options.expansionAdd, 200, 'expansionAdd'),
      expansionSearch: positiveIntOption(options.expansionSearch, 200, 'expansionSearch'),
      count: 0,
      vectorsBytes: 0,
      metadataBytes: 0,
      graph: null,
      info: options.info ?? {},
      checkpoint: null,
      createdAt: now,
      updatedAt: now,
    };
    for (const f of [VECTORS, METADATA, GRAPH]) {
      const p = path.join(dir, f);
      if (existsSync(p)) unlinkSync(p);
    }
    writeFileSync(path.join(dir, VECTORS), '');
    writeFileSync(path.join(dir, METADATA), '');
    writeJsonAtomic(path.join(dir, MANIFEST), manifest);
    return new VectorIndex(dir, manifest, options.threads === undefined ? {} : { threads: options.threads });
  }

  /** Opens the index in `dir`. */
  static open(dir: string, options: OpenIndexOptions = {}): VectorIndex {
    return new VectorIndex(dir, readManifest(dir), options);
  }

  /** Deletes an index's files from `dir` (other files there are left alone). */
  static remove(dir: string): void {
    if (!existsSync(dir)) return;
    const lock = path.join(dir, LOCK);
    if (openForWriting.has(path.resolve(lock))) {
      throw new IndexError(`${dir}: the index is open for writing in this process`);
    }
    if (existsSync(lock)) {
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
        throw new IndexError(`${dir}: the index is being written by process ${pid}`);
      }
    }
    for (const f of [MANIFEST, `${MANIFEST}.tmp`, VECTORS, METADATA, GRAPH, `${GRAPH}.tmp`]) {
      const p = path.join(dir, f);
      if (existsSync(p)) unlinkSync(p);
    }
    if (existsSync(lock)) unlinkSync(lock);
  }

  get dimensions(): number {
    return this.manifest.dimensions;
  }
  get metric(): 'cos' {
    return 'cos';
  }
  get quantization(): Quantization {
    return this.manifest.quantization;
  }
  /** Number of committed vectors. */
  get size(): number {
    return this.manifest.count;
  }
  get info(): Readonly<Record<string, unknown>> {
    return this.manifest.info;
  }
  /** The state committed with the last addition (see {@link AddOptions.checkpoint}). */
  get checkpoint(): unknown {
    return this.manifest.checkpoint;
  }
  get readOnly(): boolean {
    return this.options.readOnly ?? false;
  }
  get settings(): { connectivity: number; expansionAdd: number; expansionSearch: number } {
    const m = this.manifest;
    return {
      connectivity: m.connectivity,
      expansionAdd: m.expansionAdd,
      expansionSearch: this.options.expansionSearch ?? m.expansionSearch,
    };
  }

  has(id: string): boolean {
    return this.keyOf.has(id);
  }

  keyOfId(id: string): number | undefined {
    return this.keyOf.get(id);
  }

  idOf(key: number): string {
    this.checkKey(key);
    return this.ids[key]!;
  }

  metadataOf(key: number): Record<string, unknown> {
    this.checkKey(key);
    const rec = JSON.parse(this.metadataLines[key]!) as { metadata?: Record<string, unknown> };
    return rec.metadata ?? {};
  }

  /** The exact stored vector of a row. */
  vector(key: number): Float32Array {
    this.checkKey(key);
    return this.readRows(key, 1);
  }

  /** Replaces the free-form info (committed with the next addition or `save()`). */
  setInfo(info: Record<string, unknown>): void {
    this.assertWritable();
    this.manifest = { ...this.manifest, info };
  }

  /**
   * Adds rows and commits them (data files fsync'ed, then the manifest). `vectors` is one Float32Array per id or one
   * row-major matrix. Ids must be new and unique. Returns the keys given to the rows.
   */
  add(
    ids: readonly string[],
    vectors: Float32Array | readonly Float32Array[],
    metadata?: readonly (Record<string, unknown> | undefined)[],
    options: AddOptions = {},
  ): number[] {
    this.assertWritable();
    const d = this.dimensions;
    const n = ids.length;
    const flat = Array.isArray(vectors) ? concatRows(vectors as readonly Float32Array[], d) : (vectors as Float32Array);
    if (flat.length !== n * d) {
      throw new RangeError(`VectorIndex.add: ${n} ids but ${flat.length / d} vectors of dimension ${d}`);
    }
    if (metadata !== undefined && metadata.length !== n) {
      throw new RangeError(`VectorIndex.add: ${n} ids but ${metadata.length} metadata records`);
    }
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (typeof id !== 'string' || id.length === 0)
        throw new TypeError(`VectorIndex.add: ids[${i}] must be a non-empty string`);
      if (this.keyOf.has(id))
        throw new IndexError(`VectorIndex.add: id '${id}' is already in the index (key ${this.keyOf.get(id)})`);
      if (seen.has(id)) throw new IndexError(`VectorIndex.add: id '${id}' appears twice in this addition`);
      seen.add(id);
    });
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i]!)) {
        throw new RangeError(`VectorIndex.add: vector of '${ids[Math.floor(i / d)]}' has a non-finite value`);
      }
    }
    const lines = ids.map((id, i) => JSON.stringify({ id, metadata: metadata?.[i] ?? {} }));
    const metaText = Buffer.from(lines.map((l) => l + '\n').join(''), 'utf8');
    const vecBytes = Buffer.from(flat.buffer, flat.byteOffset, flat.byteLength);
    const m = this.manifest;
    writeAll(this.vectorsFd, vecBytes, m.vectorsBytes);
    writeAll(this.metadataFd, metaText, m.metadataBytes);
    fsyncSync(this.vectorsFd);
    fsyncSync(this.metadataFd);
    const firstKey = m.count;
    this.manifest = {
      ...m,
      count: m.count + n,
      vectorsBytes: m.vectorsBytes + vecBytes.length,
      metadataBytes: m.metadataBytes + metaText.length,
      checkpoint: options.checkpoint === undefined ? m.checkpoint : options.checkpoint,
      updatedAt: new Date().toISOString(),
    };
    writeJsonAtomic(path.join(this.dir, MANIFEST), this.manifest);
    lines.forEach((line, i) => {
      this.ids.push(ids[i]!);
      this.metadataLines.push(line);
      this.keyOf.set(ids[i]!, firstKey + i);
    });
    // An open graph takes the new rows now; otherwise they are added when the graph is next needed.
    if (this.graph !== null) this.catchUpGraph();
    return ids.map((_, i) => firstKey + i);
  }

  /** Commits a new checkpoint without adding rows. */
  commitCheckpoint(checkpoint: unknown): void {
    this.assertWritable();
    this.manifest = { ...this.manifest, checkpoint, updatedAt: new Date().toISOString() };
    writeJsonAtomic(path.join(this.dir, MANIFEST), this.manifest);
  }

  /** The k rows most similar to `query` (cosine), best first. */
  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchHit[] {
    this.assertOpen();
    if (!(query instanceof Float32Array) || query.length !== this.dimensions) {
      throw new RangeError(`VectorIndex.search: query must be a Float32Array of dimension ${this.dimensions}`);
    }
    if (!Number.isInteger(k) || k < 1)
      throw new RangeError(`VectorIndex.search: k must be a positive integer, got ${k}`);
    if (this.size === 0) return [];
    if (options.exact) return this.hits(this.exactTopK(query, k));
    const graph = this.ensureGraph();
    const factor = options.rescore ?? (this.quantization === 'f32' ? 1 : 4);
    const want = Math.min(this.size, Math.max(k, Math.ceil(k * factor)));
    const found = graph.search(query, want, 1);
    const keys: number[] = [];
    const dist: number[] = [];
    for (let i = 0; i < found.keys.length; i++) {
      const key = Number(found.keys[i]!);
      if (key >= 0 && key < this.size) {
        keys.push(key);
        dist.push(found.distances[i]!);
      }
    }
    if (factor <= 1) {
      return this.hits(keys.slice(0, k).map((key, i) => ({ key, score: 1 - dist[i]! })));
    }
    const top = new TopK(k);
    const qn = l2Norm(query);
    for (const key of keys) {
      const row = this.readRows(key, 1);
      let dot = 0;
      for (let j = 0; j < row.length; j++) dot += query[j]! * row[j]!;
      const denom = qn * l2Norm(row);
      top.push(key, denom > 0 ? dot / denom : 0);
    }
    return this.hits(top.result());
  }

  /** Brute-force top-k over the exact vectors (the reference for recall checks). */
  exactSearch(query: Float32Array, k: number): SearchHit[] {
    return this.search(query, k, { exact: true });
  }

  /** Loads (or builds) the graph now rather than on the first search. */
  loadGraph(): void {
    this.assertOpen();
    this.ensureGraph();
  }

  /** Writes the graph (building or extending it as needed) and the manifest. */
  save(): void {
    this.assertWritable();
    this.ensureGraph();
    if (this.graphDirty || this.manifest.graph === null) {
      const file = path.join(this.dir, GRAPH);
      const tmp = `${file}.tmp`;
      this.graph!.save(tmp);
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, file);
      this.graphDirty = false;
      this.manifest = { ...this.manifest, graph: { file: GRAPH, count: this.size } };
    }
    this.manifest = { ...this.manifest, updatedAt: new Date().toISOString() };
    writeJsonAtomic(path.join(this.dir, MANIFEST), this.manifest);
  }

  /**
   * Releases files and the lock. A graph that was extended in memory (by searching or adding after a search) is
   * saved; rows added without a graph in memory are added to the graph when it is next needed, not here, so that
   * an interrupted build does not save a partial graph.
   */
  close(): void {
    if (this.closed) return;
    try {
      if (!this.readOnly && this.graph !== null && this.graphDirty) this.save();
    } finally {
      this.closed = true;
      closeSync(this.vectorsFd);
      closeSync(this.metadataFd);
      this.graph = null;
      this.releaseLock();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ------------------------------------------------------------------------------------------------ internals

  private checkDataFiles(): void {
    const m = this.manifest;
    const vBytes = fstatSync(this.vectorsFd).size;
    const mBytes = fstatSync(this.metadataFd).size;
    if (m.vectorsBytes !== m.count * m.dimensions * 4) {
      throw new IndexError(`${this.dir}: manifest says ${m.count} rows but ${m.vectorsBytes} vector bytes`);
    }
    if (vBytes < m.vectorsBytes || mBytes < m.metadataBytes) {
      throw new IndexError(
        `${this.dir}: data files are shorter than committed (${VECTORS} ${vBytes} < ${m.vectorsBytes} or ` +
          `${METADATA} ${mBytes} < ${m.metadataBytes}); the index is damaged`,
      );
    }
  }

  private loadMetadata(): void {
    const m = this.manifest;
    const buf = Buffer.alloc(m.metadataBytes);
    readAll(this.metadataFd, buf, 0);
    const text = buf.toString('utf8');
    const lines = text.length === 0 ? [] : text.slice(0, -1).split('\n');
    if (lines.length !== m.count) {
      throw new IndexError(`${this.dir}: ${METADATA} has ${lines.length} records, the manifest ${m.count}`);
    }
    lines.forEach((line, key) => {
      let id: unknown;
      try {
        id = (JSON.parse(line) as { id?: unknown }).id;
      } catch {
        id = undefined;
      }
      if (typeof id !== 'string') throw new IndexError(`${this.dir}: ${METADATA} record ${key + 1} is not valid`);
      this.ids.push(id);
      this.metadataLines.push(line);
      this.keyOf.set(id, key);
    });
  }

  private readRows(first: number, count: number): Float32Array {
    const d = this.dimensions;
    const out = new Float32Array(count * d);
    readAll(this.vectorsFd, Buffer.from(out.buffer), first * d * 4);
    return out;
  }

  private exactTopK(query: Float32Array, k: number): { key: number; score: number }[] {
    const top = new TopK(Math.min(k, this.size));
    for (let first = 0; first < this.size; first += SCAN_BLOCK) {
      const n = Math.min(SCAN_BLOCK, this.size - first);
      scanBlock(query, this.readRows(first, n), first, top);
    }
    return top.result();
  }

  private hits(scored: readonly { key: number; score: number }[]): SearchHit[] {
    return scored.map(({ key, score }) => ({ id: this.ids[key]!, key, score, metadata: this.metadataOf(key) }));
  }

  private newGraph(): UsearchIndex {
    const s = this.settings;
    return new UsearchIndex({
      dimensions: this.dimensions,
      metric: MetricKind.Cos,
      quantization: { f32: ScalarKind.F32, f16: ScalarKind.F16, i8: ScalarKind.I8 }[this.quantization],
      connectivity: s.connectivity,
      expansion_add: s.expansionAdd,
      expansion_search: s.expansionSearch,
      multi: false,
    });
  }

  /** The in-memory graph over every committed row: the saved graph plus the rows committed after it. */
  private ensureGraph(): UsearchIndex {
    if (this.graph === null) {
      const g = this.newGraph();
      const saved = this.manifest.graph;
      const file = path.join(this.dir, GRAPH);
      if (saved !== null && saved.count <= this.size && existsSync(file)) {
        g.load(file);
        if (g.size() !== saved.count) {
          throw new IndexError(`${file}: holds ${g.size()} vectors, the manifest says ${saved.count}`);
        }
      }
      this.graph = g;
    }
    this.catchUpGraph();
    return this.graph;
  }

  private catchUpGraph(): void {
    const g = this.graph!;
    for (let first = g.size(); first < this.size; first += GRAPH_BLOCK) {
      const n = Math.min(GRAPH_BLOCK, this.size - first);
      const keys = new BigUint64Array(n);
      for (let i = 0; i < n; i++) keys[i] = BigInt(first + i);
      // A few rows go in on one thread: concurrent insertion gains nothing there, and into a small graph it can
      // leave a node unreachable (CI once saw an exact duplicate of a 30-row index's row missed by search).
      const threads = this.options.threads ?? (n < SMALL_ADDITION ? 1 : 0);
      g.add(keys, this.readRows(first, n), threads);
      this.graphDirty = true;
    }
  }

  private checkKey(key: number): void {
    if (!Number.isInteger(key) || key < 0 || key >= this.size) {
      throw new RangeError(`VectorIndex: key ${key} out of range [0, ${this.size})`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new IndexError(`${this.dir}: the index is closed`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new IndexError(`${this.dir}: opened read-only`);
  }

  private releaseLock(): void {
    if (this.lockFile !== null) {
      openForWriting.delete(path.resolve(this.lockFile));
      if (existsSync(this.lockFile)) unlinkSync(this.lockFile);
    }
    this.lockFile = null;
  }
}

function concatRows(rows: readonly Float32Array[], d: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    if (!(r instanceof Float32Array) || r.length !== d) {
      throw new RangeError(`VectorIndex.add: vectors[${i}] must be a Float32Array of dimension ${d}`);
    }
    out.set(r, i * d);
  });
  return out;
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

function readAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) throw new IndexError(`unexpected end of file at byte ${position + off}`);
    off += n;
  }
}
