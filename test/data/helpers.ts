// Shared helpers of the data-layer tests: fixture paths, a word-count tokenizer for hand-computable costs,
// temporary directories, and generated JSON Lines corpora.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { QWEN_IMAGE_PLACEHOLDER } from '../../src/processing/inputs.js';
import type { Document, MicroBatch, MixedCorpus, TextTokenizer } from '../../src/data/index.js';

/** test/fixtures/data/ (tests run from dist/test/data/). */
export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/data/', import.meta.url));
/** The tiny Qwen-style tokenizer of the processing tests. */
export const TINY_TOKENIZER = fileURLToPath(new URL('../../../test/fixtures/tokenizer/tiny/', import.meta.url));

export const IMG = QWEN_IMAGE_PLACEHOLDER;

/** One token per whitespace-separated word: costs can be computed by hand. */
export const wordTokenizer: TextTokenizer = {
  encode: (text: string) =>
    text
      .split(/\s+/)
      .filter((w) => w.length > 0)
      .map(() => 1),
};

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'moca-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A 1×1 PNG (red) as a data: URI; raw image cost 1 merged token. */
export const PNG_1x1 =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';

/** Writes `n` JSON Lines rows `{id, text}` whose word count is `words(i)`; returns the file path. */
export function writeWordCorpus(
  dir: string,
  name: string,
  n: number,
  words: (i: number) => number,
  options: { image?: (i: number) => boolean } = {},
): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const text = Array.from({ length: words(i) }, (_, k) => `${name}${i}w${k}`).join(' ');
    const withImage = options.image?.(i) ?? false;
    lines.push(
      JSON.stringify(
        withImage ? { id: `${name}-${i}`, text: `${text} ${IMG}`, images: [PNG_1x1] } : { id: `${name}-${i}`, text },
      ),
    );
  }
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** Reads up to `n` documents (all when n is omitted), then closes the corpus's files (it can still continue). */
export async function take(corpus: MixedCorpus, n = Infinity): Promise<Document[]> {
  const out: Document[] = [];
  try {
    while (out.length < n) {
      const d = await corpus.read();
      if (d === null) break;
      out.push(d);
    }
  } finally {
    await corpus.close();
  }
  return out;
}

/** A batch as a compact comparable value: threshold, partial flag and the ids in order. */
export function batchKey(b: MicroBatch): string {
  return `${b.index}|${b.threshold}|${b.partial ? 'p' : 'f'}|${b.samples.map((s) => s.doc.id).join(',')}`;
}
