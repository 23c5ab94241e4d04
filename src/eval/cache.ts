// On-disk embedding cache for evaluation: every unique (text, image) input is embedded once per model, and the
// vectors are reused by later runs (MMEB's candidate lists repeat the same targets across thousands of rows).
//
// Layout: <dir>/<model key>/vectors.f32 (raw float32 vectors, appended) and index.jsonl ({"key", "offset"} per
// vector, appended after its bytes are written, so a killed run leaves at most one unreferenced vector).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Identifies a model directory by its config and weight files' names, sizes and modification times. */
export function modelKey(modelDir: string): string {
  const h = createHash('sha256');
  for (const f of [
    'config.json',
    'model.safetensors',
    'model.safetensors.index.json',
    'tokenizer.json',
    'preprocessor_config.json',
  ]) {
    const p = path.join(modelDir, f);
    if (!existsSync(p)) continue;
    const st = statSync(p);
    h.update(`${f}:${st.size}:${st.mtimeMs}\n`);
    if (f.endsWith('.json')) h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 24);
}

/** Identifies one input: its text and, for an image file, the resolved path, size and modification time. */
export function inputKey(text: string, image: string | null, settings = ''): string {
  const h = createHash('sha256');
  h.update(settings).update('\0').update(text).update('\0');
  if (image !== null) {
    h.update(image);
    if (!image.startsWith('data:') && existsSync(image)) {
      const st = statSync(image);
      h.update(`:${st.size}:${st.mtimeMs}`);
    }
  }
  return h.digest('hex');
}

export class EmbeddingCache {
  private readonly index = new Map<string, number>();
  private readonly vectorsFile: string;
  private readonly indexFile: string;
  private dim = 0;
  hits = 0;
  misses = 0;

  constructor(
    dir: string,
    readonly model: string,
  ) {
    const root = path.join(dir, model);
    mkdirSync(root, { recursive: true });
    this.vectorsFile = path.join(root, 'vectors.f32');
    this.indexFile = path.join(root, 'index.jsonl');
    if (existsSync(this.indexFile)) {
      const size = existsSync(this.vectorsFile) ? statSync(this.vectorsFile).size : 0;
      for (const line of readFileSync(this.indexFile, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          const { key, offset, dim } = JSON.parse(line) as { key: string; offset: number; dim: number };
          if (offset + dim * 4 <= size) {
            this.index.set(key, offset);
            this.dim = dim;
          }
        } catch {
          // A torn last line from a killed run: ignore it.
        }
      }
    }
  }

  get size(): number {
    return this.index.size;
  }

  get(key: string): Float32Array | undefined {
    const offset = this.index.get(key);
    if (offset === undefined) {
      this.misses++;
      return undefined;
    }
    const buf = Buffer.alloc(this.dim * 4);
    const fd = openSync(this.vectorsFile, 'r');
    try {
      readSync(fd, buf, 0, buf.length, offset);
    } finally {
      closeSync(fd);
    }
    this.hits++;
    return new Float32Array(buf.buffer, buf.byteOffset, this.dim).slice();
  }

  /** Appends vectors (bytes first, then their index lines). */
  putMany(entries: [string, Float32Array][]): void {
    if (entries.length === 0) return;
    let offset = existsSync(this.vectorsFile) ? statSync(this.vectorsFile).size : 0;
    const vfd = openSync(this.vectorsFile, 'a');
    const lines: string[] = [];
    try {
      for (const [key, v] of entries) {
        if (this.dim !== 0 && v.length !== this.dim)
          throw new Error(`embedding cache: dimension ${v.length} ≠ ${this.dim}`);
        this.dim = v.length;
        writeSync(vfd, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        lines.push(JSON.stringify({ key, offset, dim: v.length }));
        this.index.set(key, offset);
        offset += v.byteLength;
      }
    } finally {
      closeSync(vfd);
    }
    const ifd = openSync(this.indexFile, 'a');
    try {
      writeSync(ifd, lines.join('\n') + '\n');
    } finally {
      closeSync(ifd);
    }
  }
}
