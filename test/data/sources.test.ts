// Sources: spec parsing, JSON Lines and Parquet (Hugging Face layout, snappy and gzip, shards) reading, positions
// and random access.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  BadRowRecorder,
  DataSource,
  parseSourceSpec,
  START_CURSOR,
  type Document,
  type SourceCursor,
} from '../../src/data/index.js';
import { FIXTURES, IMG, tempDir } from './helpers.js';

async function allDocs(src: DataSource, from: SourceCursor = START_CURSOR, recorder = new BadRowRecorder()) {
  const out: { doc: Document; next: SourceCursor }[] = [];
  for await (const item of src.documents(from, 0, recorder)) out.push(item);
  return out;
}

const bytesOf = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, 'img', name)));

describe('parseSourceSpec', () => {
  test('name=path@weight, path@weight, path', () => {
    assert.deepEqual(parseSourceSpec('web=/data/dclm.jsonl@2.5'), {
      name: 'web',
      path: '/data/dclm.jsonl',
      format: 'jsonl',
      weight: 2.5,
    });
    assert.deepEqual(parseSourceSpec('/data/caps.parquet@3'), {
      name: 'caps',
      path: '/data/caps.parquet',
      format: 'parquet',
      weight: 3,
    });
    assert.deepEqual(parseSourceSpec('rel/x.json'), { name: 'x', path: 'rel/x.json', format: 'jsonl', weight: 1 });
    // '@' and '=' inside paths are kept when they are not a weight / a name.
    assert.deepEqual(parseSourceSpec('/d/a@b/x=y.parquet'), {
      name: 'x=y',
      path: '/d/a@b/x=y.parquet',
      format: 'parquet',
      weight: 1,
    });
    assert.equal(parseSourceSpec('n=/d/v@1e-1.jsonl@.5').weight, 0.5);
  });

  test('a directory of shards, and errors', () => {
    const dir = join(FIXTURES, 'shards');
    assert.deepEqual(parseSourceSpec(`${dir}@4`), { name: 'shards', path: dir, format: 'parquet', weight: 4 });
    assert.deepEqual(parseSourceSpec(`${dir}/@4`).name, 'shards');
    assert.throws(() => parseSourceSpec('x.jsonl@0'), /positive number/);
    assert.throws(() => parseSourceSpec('x.jsonl@-2'), /bad weight/);
    assert.throws(() => parseSourceSpec('/no/such/dir'), /cannot tell the format/);
    assert.throws(() => parseSourceSpec(join(FIXTURES, 'manifest.json.txt')), /cannot tell the format/);
    assert.throws(() => parseSourceSpec(join(FIXTURES, 'img')), /no .parquet or .jsonl files/);
    assert.throws(() => parseSourceSpec(''), /empty/);
  });
});

describe('JSON Lines source', () => {
  test('documents with ids, resolved paths, data: URIs and text-only rows', async () => {
    const src = new DataSource(parseSourceSpec(`j=${join(FIXTURES, 'docs.jsonl')}`));
    const docs = (await allDocs(src)).map((x) => x.doc);
    assert.deepEqual(
      docs.map((d) => [d.id, d.row, d.cursor.line, d.images.length]),
      [
        ['j:j0', 0, 1, 1],
        ['j:1', 1, 2, 0],
        ['j:2', 2, 3, 2],
        ['j:7', 3, 4, 0],
      ],
    );
    assert.equal(docs[0]!.text, `A red gradient ${IMG} under a caption.`);
    assert.equal(docs[0]!.images[0], join(FIXTURES, 'img', 'red_40x30.png'));
    assert.match(docs[2]!.images[1] as string, /^data:image\/png;base64,/);
    assert.equal(docs[1]!.text, 'A text-only document without an images field.');
  });

  test('reading from a saved position gives the rest, without re-reading the start', async () => {
    const src = new DataSource(parseSourceSpec(`j=${join(FIXTURES, 'docs.jsonl')}`));
    const all = await allDocs(src);
    for (let k = 0; k < all.length; k++) {
      const rest = await allDocs(src, all[k]!.next);
      assert.deepEqual(
        rest.map((x) => x.doc),
        all.slice(k + 1).map((x) => x.doc),
      );
    }
  });

  test('a byte-order mark, CRLF line ends, blank lines and a last line without a newline', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'crlf.jsonl');
      writeFileSync(file, '\uFEFF{"text":"a"}\r\n\r\n{"text":"b é"}\r\n{"text":"c"}');
      const src = new DataSource(parseSourceSpec(file));
      const items = await allDocs(src);
      assert.deepEqual(
        items.map((x) => [x.doc.text, x.doc.cursor.line, x.doc.row]),
        [
          ['a', 1, 0],
          ['b é', 3, 1],
          ['c', 4, 2],
        ],
      );
      const fetched = await src.fetch(
        items.map((x) => x.doc.cursor),
        [0, 0, 0],
      );
      assert.deepEqual(
        fetched,
        items.map((x) => x.doc),
      );
      assert.deepEqual(await allDocs(src, items[2]!.next), []);
    } finally {
      cleanup();
    }
  });
});

describe('Parquet source (Hugging Face datasets layout)', () => {
  test('snappy; images as list<struct<bytes, path>>; text-only row; path-only image', async () => {
    const src = new DataSource(parseSourceSpec(`hf=${join(FIXTURES, 'interleaved.parquet')}`));
    const docs = (await allDocs(src)).map((x) => x.doc);
    assert.equal(docs.length, 5);
    assert.deepEqual(
      docs.map((d) => [d.id, d.cursor.offset, d.images.length]),
      [
        ['hf:0', 0, 1],
        ['hf:1', 1, 0],
        ['hf:2', 2, 2],
        ['hf:3', 3, 1],
        ['hf:4', 4, 1],
      ],
    );
    assert.equal(docs[0]!.text, `Parquet row zero ${IMG} end.`);
    assert.deepEqual(docs[0]!.images[0], bytesOf('red_40x30.png'));
    assert.deepEqual(docs[2]!.images, [bytesOf('green_60x57.jpg'), bytesOf('blue_20x40.png')]);
    assert.equal(docs[1]!.text, 'Parquet text-only row.');
    // A struct with only a path is resolved against the Parquet file's folder.
    assert.equal(docs[3]!.images[0], join(FIXTURES, 'img', 'red_40x30.png'));
    // The bytes are copies, not views of hyparquet's page buffers.
    const img = docs[0]!.images[0] as Uint8Array;
    assert.equal(img.byteOffset, 0);
    assert.equal(img.buffer.byteLength, img.length);
  });

  test('gzip; images as list<binary>; an id column', async () => {
    const src = new DataSource(parseSourceSpec(`bin=${join(FIXTURES, 'binary.parquet')}`));
    const docs = (await allDocs(src)).map((x) => x.doc);
    assert.deepEqual(
      docs.map((d) => [d.id, d.images.length]),
      [
        ['bin:100', 1],
        ['bin:101', 0],
        ['bin:102', 2],
      ],
    );
    assert.deepEqual(docs[2]!.images, [bytesOf('blue_20x40.png'), bytesOf('green_60x57.jpg')]);
  });

  test('resume mid row group, and random access by position', async () => {
    const src = new DataSource(parseSourceSpec(`hf=${join(FIXTURES, 'interleaved.parquet')}`));
    const all = await allDocs(src);
    for (let k = 0; k < all.length; k++) {
      const rest = await allDocs(src, all[k]!.next);
      assert.deepEqual(
        rest.map((x) => x.doc.id),
        all.slice(k + 1).map((x) => x.doc.id),
      );
    }
    const pick = [4, 0, 3];
    const fetched = await src.fetch(
      pick.map((i) => all[i]!.doc.cursor),
      [0, 0, 0],
    );
    assert.deepEqual(
      fetched,
      pick.map((i) => all[i]!.doc),
    );
  });

  test('a directory of shards reads as one source with continuous row numbers', async () => {
    const src = new DataSource(parseSourceSpec(`sh=${join(FIXTURES, 'shards')}`));
    assert.equal(src.files.length, 2);
    const all = await allDocs(src);
    assert.deepEqual(
      all.map((x) => x.doc.text),
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => `shard ${i < 5 ? 0 : 1} doc ${i}`),
    );
    assert.deepEqual(
      all.map((x) => x.doc.row),
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      all.map((x) => `${x.doc.cursor.file}:${x.doc.cursor.offset}`),
      ['0:0', '0:1', '0:2', '0:3', '0:4', '1:0', '1:1', '1:2', '1:3'],
    );
    // Resume at the end of shard 0 and in the middle of shard 1.
    assert.deepEqual(
      (await allDocs(src, all[4]!.next)).map((x) => x.doc.row),
      [5, 6, 7, 8],
    );
    assert.deepEqual(
      (await allDocs(src, all[6]!.next)).map((x) => x.doc.row),
      [7, 8],
    );
  });

  test('a Parquet file without a text column, or not Parquet at all, is refused with a reason', async () => {
    const noText = new DataSource(parseSourceSpec(join(FIXTURES, 'notext.parquet')));
    await assert.rejects(allDocs(noText), /no "text" column \(columns: caption, n\)/);
    const { dir, cleanup } = tempDir();
    try {
      const bogus = join(dir, 'bogus.parquet');
      writeFileSync(bogus, 'PAR1 this is not parquet PAR1');
      await assert.rejects(allDocs(new DataSource(parseSourceSpec(bogus))), /not a readable Parquet file/);
    } finally {
      cleanup();
    }
  });
});
