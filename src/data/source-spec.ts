// Data-source specifications as given on the command line (`name=path@weight`), and the files a source consists
// of. A source is one JSON Lines file, one Parquet file, or a directory of shards (all `*.parquet` files, or else all
// `*.jsonl`/`*.json` files, in name order — the layout of a Hugging Face dataset repository's data folder).
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';

export type SourceFormat = 'jsonl' | 'parquet';

export interface SourceSpec {
  /** Short name used in document ids, error records, statistics and the resumable state. */
  name: string;
  /** The file or directory, as given. */
  path: string;
  format: SourceFormat;
  /** Relative probability of drawing the next document from this source (> 0). */
  weight: number;
}

const NAME = /^[A-Za-z0-9_.+-]+$/;
const WEIGHT = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function formatOfExtension(path: string): SourceFormat | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.json' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  return undefined;
}

/**
 * Files of a directory source in name order: the `.parquet` files when there are any, else the JSON Lines files.
 * Hidden files are ignored.
 */
function shardsOf(dir: string): { format: SourceFormat; files: string[] } | undefined {
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort();
  for (const format of ['parquet', 'jsonl'] as const) {
    const files = names.filter((n) => formatOfExtension(n) === format && statSync(join(dir, n)).isFile());
    if (files.length > 0) return { format, files: files.map((n) => join(dir, n)) };
  }
  return undefined;
}

/**
 * Parses `name=path@weight`, `path@weight` or `path`. The name defaults to the file name without its extension
 * (the directory name for a directory); the weight to 1. The format comes from the extension (`.jsonl`, `.json`,
 * `.ndjson` → JSON Lines; `.parquet`); a path without one must be a directory of shards (checked on disk).
 * `@` and `=` may appear inside the path: only a trailing `@<number>` is a weight, and only a leading
 * `<name>=` made of letters, digits and `_.+-` is a name.
 */
export function parseSourceSpec(spec: string): SourceSpec {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('empty data source specification');
  let rest = spec.trim();
  let name: string | undefined;
  const eq = rest.indexOf('=');
  if (eq > 0 && NAME.test(rest.slice(0, eq))) {
    name = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
  }
  let weight = 1;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && WEIGHT.test(rest.slice(at + 1))) {
    weight = Number(rest.slice(at + 1));
    rest = rest.slice(0, at);
  } else if (at >= 0 && /^[-+]?[\d.eE+-]*$/.test(rest.slice(at + 1)) && rest.slice(at + 1) !== '') {
    throw new Error(`data source "${spec}": bad weight "${rest.slice(at + 1)}" (a positive number)`);
  }
  if (!(weight > 0 && Number.isFinite(weight))) {
    throw new Error(`data source "${spec}": the weight must be a positive number, got ${weight}`);
  }
  if (rest === '') throw new Error(`data source "${spec}": no path`);
  const path = rest;
  let format = formatOfExtension(path);
  if (format === undefined) {
    let isDir = false;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      throw new Error(
        `data source "${spec}": cannot tell the format of ${path} (not found; expected .jsonl, .json, .parquet ` +
          'or a directory of shards)',
      );
    }
    if (!isDir) {
      throw new Error(`data source "${spec}": unknown file type ${path} (expected .jsonl, .json or .parquet)`);
    }
    const shards = shardsOf(path);
    if (!shards) throw new Error(`data source "${spec}": directory ${path} has no .parquet or .jsonl files`);
    format = shards.format;
  }
  if (name === undefined) {
    const base = basename(path.replace(/[/\\]+$/, ''));
    name = formatOfExtension(base) ? base.slice(0, -extname(base).length) : base;
    if (name === '') name = 'data';
  }
  return { name, path, format, weight };
}

/** The files of a source (absolute paths, in reading order); throws when there are none. */
export function sourceFiles(spec: SourceSpec): string[] {
  const path = resolve(spec.path);
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new Error(`data source "${spec.name}": cannot read ${spec.path}: ${(e as NodeJS.ErrnoException).code}`);
  }
  if (!isDir) return [path];
  const shards = shardsOf(path);
  if (!shards) throw new Error(`data source "${spec.name}": directory ${spec.path} has no .parquet or .jsonl files`);
  if (shards.format !== spec.format) {
    throw new Error(
      `data source "${spec.name}": directory ${spec.path} holds ${shards.format} files, not ${spec.format}`,
    );
  }
  return shards.files;
}

/** Checks that source names are unique (they key the resumable state). */
export function checkSourceNames(specs: readonly SourceSpec[]): void {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`two data sources are named "${s.name}"; give names with name=path`);
    seen.add(s.name);
  }
}
