// What the parts of the world generator share: sizes per scale, the image store, text-file writing (recorded for
// the world's digest), and progress reporting.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { ImageStore } from './image-store.js';
import type { WorldScale } from './manifest.js';
import type { Combo } from './pools.js';

export interface ScaleParams {
  /** Training scene families (base + 2 one-edit variants each). */
  trainFamilies: number;
  /** Extra one-object training scenes (classification pairs). */
  trainSingles: number;
  /** Training page families (3 pages sharing a title). */
  trainPageFamilies: number;
  /** Scenes and pages of the unlabelled corpus. */
  corpusScenes: number;
  corpusPages: number;
  /** Text-only corpus documents. */
  textOnlyDocuments: number;
  /** Rows per MMEB-style evaluation dataset. */
  evalRows: number;
  /** Pages and queries of the BEIR document-retrieval set. */
  beirPages: number;
  beirQueries: number;
}

export const SCALES: Readonly<Record<WorldScale, ScaleParams>> = {
  quick: {
    trainFamilies: 40,
    trainSingles: 30,
    trainPageFamilies: 8,
    corpusScenes: 60,
    corpusPages: 12,
    textOnlyDocuments: 30,
    evalRows: 12,
    beirPages: 24,
    beirQueries: 12,
  },
  default: {
    trainFamilies: 150,
    trainSingles: 120,
    trainPageFamilies: 30,
    corpusScenes: 240,
    corpusPages: 48,
    textOnlyDocuments: 300,
    evalRows: 40,
    beirPages: 60,
    beirQueries: 40,
  },
  full: {
    trainFamilies: 600,
    trainSingles: 500,
    trainPageFamilies: 120,
    corpusScenes: 1200,
    corpusPages: 240,
    textOnlyDocuments: 1200,
    evalRows: 100,
    beirPages: 150,
    beirQueries: 100,
  },
};

export interface ProgressEvent {
  stage: 'train' | 'pairs' | 'corpus' | 'eval' | 'beir' | 'write';
  done: number;
  total: number;
}

export interface BuildContext {
  root: string;
  seed: number;
  scale: ScaleParams;
  store: ImageStore;
  heldOut: readonly Combo[];
  heldOutInCorpus: boolean;
  /** Writes a text file (POSIX path relative to the root) and records its hash for the world digest. */
  writeText(rel: string, content: string): void;
  progress(event: ProgressEvent): void;
}

/** SHA-256 (hex) of each text file written, by path relative to the root. */
export function textWriter(root: string, hashes: Map<string, string>): (rel: string, content: string) => void {
  return (rel, content) => {
    const file = path.join(root, ...rel.split('/'));
    mkdirSync(path.dirname(file), { recursive: true });
    const bytes = Buffer.from(content, 'utf8');
    writeFileSync(file, bytes);
    hashes.set(rel, createHash('sha256').update(bytes).digest('hex'));
  };
}

/** JSON Lines text of `rows` (one object per line, trailing newline). */
export function jsonl(rows: readonly unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : '');
}

/** A path relative to the world root, written relative to the folder `fromDir` (also relative to the root). */
export function relativeTo(fromDir: string, rel: string): string {
  return path.posix.relative(fromDir, rel);
}
