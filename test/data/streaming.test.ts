// Streaming: a large generated JSON Lines file (20 000 rows, ~20 MB) is read without holding it — the first document
// arrives after reading one chunk, and the live heap stays far below the file size while all of it goes through.
import assert from 'node:assert/strict';
import { createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import {
  BadRowRecorder,
  DataSource,
  MixedCorpus,
  ParquetFile,
  parseSourceSpec,
  START_CURSOR,
} from '../../src/data/index.js';
import { FIXTURES, tempDir } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROWS = 20000;

async function writeBig(file: string): Promise<void> {
  const out = createWriteStream(file);
  const filler = 'lorem ipsum dolor sit amet '.repeat(36); // ~970 characters
  for (let i = 0; i < ROWS; i++) {
    if (!out.write(JSON.stringify({ id: `r${i}`, text: `${i} ${filler}` }) + '\n')) {
      await new Promise<void>((r) => out.once('drain', () => r()));
    }
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

describe('streaming', () => {
  test('20k-line JSON Lines: first document after one chunk; bounded live heap over the whole file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'big.jsonl');
      await writeBig(file);
      const size = statSync(file).size;
      assert.ok(size > 19_000_000, `file is ${size} bytes`);

      // The reader is a generator: the first document comes before the file has been read.
      const src = new DataSource(parseSourceSpec(`big=${file}`));
      const gen = src.documents(START_CURSOR, 0, new BadRowRecorder());
      const first = await gen.next();
      assert.equal(first.value?.doc.id, 'big:r0');
      assert.ok(src.counter.bytesRead <= 1 << 17, `read ${src.counter.bytesRead} bytes for the first document`);
      await gen.return(undefined);

      // The whole file through the corpus: the live heap (after a full GC) never grows by more than a fraction of it.
      gc();
      const base = process.memoryUsage().heapUsed;
      let peak = 0;
      let n = 0;
      const corpus = new MixedCorpus([`big=${file}`]);
      for await (const doc of corpus) {
        if (doc.row !== n) assert.fail(`row ${doc.row} out of order (expected ${n})`);
        n++;
        if (n % 2500 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed - base);
        }
      }
      assert.equal(n, ROWS);
      assert.ok(
        peak < size / 4,
        `live heap grew by ${(peak / 1e6).toFixed(1)} MB for a ${(size / 1e6).toFixed(1)} MB file`,
      );
    } finally {
      cleanup();
    }
  });

  test('Parquet is read one row group at a time, lazily', async () => {
    const calls: [number, number][] = [];
    const original = ParquetFile.prototype.readRows;
    ParquetFile.prototype.readRows = function (this: ParquetFile, start: number, end: number) {
      calls.push([start, end]);
      return original.call(this, start, end);
    };
    try {
      const src = new DataSource(parseSourceSpec(join(FIXTURES, 'interleaved.parquet')));
      const gen = src.documents(START_CURSOR, 0, new BadRowRecorder());
      await gen.next();
      assert.deepEqual(calls, [[0, 2]]);
      await gen.next();
      await gen.next();
      assert.deepEqual(calls, [
        [0, 2],
        [2, 4],
      ]);
      await gen.return(undefined);
      // Resuming mid-group starts at the row, in its group.
      calls.length = 0;
      const mid = src.documents({ file: 0, offset: 3, row: 3, line: 0 }, 0, new BadRowRecorder());
      assert.equal((await mid.next()).value?.doc.id, 'interleaved:3');
      assert.deepEqual(calls, [[3, 4]]);
      await mid.return(undefined);
    } finally {
      ParquetFile.prototype.readRows = original;
    }
  });
});
