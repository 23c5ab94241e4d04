// Index builds from collections: an interrupted (even killed) build resumes to exactly the index an uninterrupted
// build makes, with nothing embedded twice; JSON Lines and folder sources; additions; the CLI.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Embedder, type EmbedInput } from '../../src/embed/index.js';
import {
  BuildInterrupted,
  buildIndex,
  folderSource,
  type IndexRow,
  jsonlSource,
  VectorIndex,
} from '../../src/search/index.js';
import { BIN, PIXELS, PLACEHOLDER, png, tempDir, tinyModel } from '../serve/helpers.js';

const tmp = tempDir('moca-build-');
let model = '';
let embedder: Embedder;
let rows: IndexRow[] = [];
let embedded = 0;

/** The embedder with a count of the inputs it was asked to embed (to prove nothing is embedded twice). */
function counting(e: Embedder): Embedder {
  const c = Object.create(e) as Embedder;
  c.embedSettled = (inputs: readonly EmbedInput[], options) => {
    embedded += inputs.length;
    return e.embedSettled(inputs, options);
  };
  return c;
}

const FILES = ['vectors.f32', 'metadata.jsonl', 'graph.usearch', 'errors.jsonl'];

function assertSameIndex(a: string, b: string): void {
  for (const f of FILES) assert.ok(readFileSync(path.join(a, f)).equals(readFileSync(path.join(b, f))), `${f} differs`);
  assert.deepEqual(readdirSync(path.join(a, 'thumbs')).sort(), readdirSync(path.join(b, 'thumbs')).sort());
  const ma = JSON.parse(readFileSync(path.join(a, 'index.json'), 'utf8')) as Record<string, unknown>;
  const mb = JSON.parse(readFileSync(path.join(b, 'index.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['count', 'vectorsBytes', 'metadataBytes', 'graph', 'dimensions', 'quantization'])
    assert.deepEqual(ma[k], mb[k], k);
}

before(async () => {
  model = await tinyModel(tmp.dir);
  embedder = await Embedder.load(model, { ...PIXELS, threads: 1 });
  mkdirSync(path.join(tmp.dir, 'pages', 'b'), { recursive: true });
  for (let i = 0; i < 12; i++) {
    const file = path.join(tmp.dir, 'pages', i % 2 ? 'b' : '', `p${String(i).padStart(2, '0')}.png`);
    writeFileSync(file, await png(56 + (i % 3) * 28, 56, i));
  }
  const image = path.join(tmp.dir, 'pages', 'p00.png');
  rows = Array.from({ length: 36 }, (_, i): IndexRow => {
    if (i === 13)
      return { id: 'broken', input: { text: `${PLACEHOLDER}x`, images: [path.join(tmp.dir, 'missing.png')] } };
    if (i === 29) return { id: 'row-3', input: 'a duplicate id' };
    if (i % 4 === 0)
      return {
        id: `row-${i}`,
        input: {
          content: [
            { type: 'image', image },
            { type: 'text', text: `page ${i}` },
          ],
        },
        metadata: { n: i },
      };
    return { id: `row-${i}`, input: `text number ${i} of the collection`, metadata: { n: i } };
  });
});

after(() => tmp.remove());

describe('buildIndex', () => {
  test('interrupted (with a torn write) and resumed equals uninterrupted; nothing embedded twice', async () => {
    const options = { batchSize: 4, chunkSize: 8, threads: 1 } as const;
    const whole = path.join(tmp.dir, 'whole');
    embedded = 0;
    const full = await buildIndex(counting(embedder), rows, whole, options);
    assert.deepEqual([full.added, full.failed, full.rows, full.size], [34, 2, 36, 34]);
    const embeddedWhole = embedded;
    assert.equal(embeddedWhole, 35, 'the duplicate is skipped before embedding; the broken row is tried');

    const parts = path.join(tmp.dir, 'parts');
    embedded = 0;
    const ac = new AbortController();
    await assert.rejects(
      buildIndex(counting(embedder), rows, parts, {
        ...options,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.rows >= 16) ac.abort();
        },
      }),
      (e: unknown) => e instanceof BuildInterrupted && e.rows === 16,
    );
    assert.ok(!existsSync(path.join(parts, 'graph.usearch')), 'no partial graph is saved');
    // Killed in the middle of the next chunk: bytes past the committed ends.
    appendFileSync(path.join(parts, 'vectors.f32'), Buffer.alloc(100, 1));
    appendFileSync(path.join(parts, 'metadata.jsonl'), '{"id":"row-16","metad');
    appendFileSync(path.join(parts, 'errors.jsonl'), '{"id":"row-2');
    // A different batch size on resume is overridden by the recorded one (same batches, same vectors).
    const resumed = await buildIndex(counting(embedder), rows, parts, { ...options, batchSize: 3 });
    assert.equal(resumed.resumedAt, 16);
    assert.deepEqual([resumed.added, resumed.failed, resumed.rows, resumed.size], [34, 2, 36, 34]);
    assert.equal(embedded, embeddedWhole, 'each row embedded once over both runs');
    assertSameIndex(whole, parts);

    const errors = readFileSync(path.join(whole, 'errors.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; error: string });
    assert.deepEqual(
      errors.map((e) => e.id),
      ['broken', 'row-3'],
    );
    assert.match(errors[0]!.error, /missing\.png/);
    assert.match(errors[1]!.error, /already in the index/);

    // A finished build is not silently rebuilt; a different input does not resume someone else's build.
    await assert.rejects(buildIndex(embedder, rows, whole, options), /already holds an index of 34 vectors/);
    const other = path.join(tmp.dir, 'other');
    const ac2 = new AbortController();
    await assert.rejects(
      buildIndex(embedder, rows.slice(0, 20), other, {
        ...options,
        signal: ac2.signal,
        onProgress: (p) => p.rows > 0 && ac2.abort(),
      }),
      BuildInterrupted,
    );
    await assert.rejects(
      buildIndex(embedder, rows, other, options),
      /an interrupted 'build' of rows is unfinished here/,
    );
    const restarted = await buildIndex(embedder, rows, other, { ...options, restart: true });
    assert.equal(restarted.size, 34);
  });

  test('search finds rows by their own vectors; metadata and thumbnails are kept', async () => {
    const index = VectorIndex.open(path.join(tmp.dir, 'whole'), { readOnly: true });
    const [q] = await embedder.embed(['text number 7 of the collection']);
    const top = index.search(q!, 3);
    assert.equal(top[0]!.id, 'row-7');
    assert.ok(top[0]!.score > 0.9999);
    assert.deepEqual(top[0]!.metadata, { n: 7 });
    const imageRow = index.metadataOf(index.keyOfId('row-8')!);
    assert.equal(imageRow.n, 8);
    assert.match(String(imageRow.thumbnail), /^thumbs\/\d+\.jpg$/);
    assert.ok(existsSync(path.join(index.dir, String(imageRow.thumbnail))));
    index.close();
  });

  test("mode 'add' appends new rows and reports ids already present", async () => {
    const dir = path.join(tmp.dir, 'whole');
    const more: IndexRow[] = [
      { id: 'new-1', input: 'a brand new row' },
      { id: 'row-0', input: 'clashes with an existing id' },
    ];
    const r = await buildIndex(embedder, more, dir, { mode: 'add', threads: 1 });
    assert.deepEqual([r.added, r.failed, r.size], [1, 1, 35]);
    const index = VectorIndex.open(dir, { readOnly: true });
    const [q] = await embedder.embed(['a brand new row']);
    assert.equal(index.search(q!, 1)[0]!.id, 'new-1');
    index.close();
  });

  test('JSON Lines rows keep their extra fields; folders give sorted relative ids', async () => {
    const file = path.join(tmp.dir, 'rows.jsonl');
    writeFileSync(
      file,
      [
        JSON.stringify({ id: 'a', text: 'alpha', title: 'First', tags: ['x'] }),
        'not json',
        JSON.stringify({
          id: 'b',
          content: [
            { type: 'image', image: 'pages/p00.png' },
            { type: 'text', text: 'beta' },
          ],
        }),
        '',
      ].join('\n'),
    );
    const src = await jsonlSource(file);
    assert.equal(src.total, 3);
    const got = [];
    for await (const r of src.rows) got.push(r);
    assert.deepEqual('row' in got[0]! && got[0].row.metadata, { title: 'First', tags: ['x'], text: 'alpha' });
    assert.match('error' in got[1]! ? got[1].error : '', /invalid JSON/);
    assert.deepEqual('row' in got[2]! && got[2].row.metadata, { text: 'beta', images: ['pages/p00.png'] });
    // The fingerprint follows the content: same bytes, same fingerprint; one more row, another.
    assert.equal((await jsonlSource(file)).fingerprint, src.fingerprint);
    appendFileSync(file, JSON.stringify({ id: 'c', text: 'gamma' }) + '\n');
    assert.notEqual((await jsonlSource(file)).fingerprint, src.fingerprint);

    const folder = folderSource(path.join(tmp.dir, 'pages'));
    assert.equal(folder.total, 12);
    const ids = [];
    for await (const r of folder.rows) if ('row' in r) ids.push(r.row.id);
    assert.deepEqual(ids.slice(0, 3), ['b/p01.png', 'b/p03.png', 'b/p05.png']);
    assert.equal(ids.at(-1), 'p10.png');
  });
});

describe('moca index / moca search', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: tmp.dir, encoding: 'utf8' });
  const pixels = ['--min-pixels', String(PIXELS.minPixels), '--max-pixels', String(PIXELS.maxPixels), '--threads', '1'];

  test('a killed build resumes to the same index; search prints ranked JSON lines', async () => {
    const args = (dir: string) => [
      'index',
      'build',
      '--model',
      model,
      '--input',
      'pages',
      '--index',
      dir,
      '--batch-size',
      '1',
      '--graph-threads',
      '1',
      ...pixels,
    ];
    const ref = cli(args('cli-whole'));
    assert.equal(ref.status, 0, ref.stderr);
    assert.equal((JSON.parse(ref.stdout) as { size: number }).size, 12);

    // Kill -9 once the first chunk (8 rows at batch size 1) is committed.
    const child = spawn(process.execPath, [BIN, ...args('cli-parts')], { cwd: tmp.dir, stdio: 'ignore' });
    const manifest = path.join(tmp.dir, 'cli-parts', 'index.json');
    const t0 = Date.now();
    let killedAt = -1;
    while (Date.now() - t0 < 60_000 && child.exitCode === null) {
      try {
        const cp = (JSON.parse(readFileSync(manifest, 'utf8')) as { checkpoint: { rows: number } | null }).checkpoint;
        if (cp !== null && cp.rows > 0) {
          child.kill('SIGKILL');
          killedAt = cp.rows;
          break;
        }
      } catch {
        // not written yet, or mid-rename
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(null)));
    assert.equal(killedAt, 8, 'killed after the first committed chunk');
    const resumed = cli(args('cli-parts'));
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed at row 8/);
    for (const f of ['vectors.f32', 'metadata.jsonl', 'graph.usearch']) {
      assert.ok(
        readFileSync(path.join(tmp.dir, 'cli-whole', f)).equals(readFileSync(path.join(tmp.dir, 'cli-parts', f))),
        f,
      );
    }

    const text = cli(['search', '--index', 'cli-whole', 'a page', '-k', '3', '--threads', '1']);
    assert.equal(text.status, 0, text.stderr);
    const hits = text.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { rank: number; id: string; score: number; thumbnail: string | null });
    assert.deepEqual(
      hits.map((h) => h.rank),
      [1, 2, 3],
    );
    assert.ok(hits[0]!.score >= hits[1]!.score && hits[1]!.score >= hits[2]!.score);
    const byImage = cli(['search', '--index', 'cli-whole', '--image', 'pages/b/p05.png', '-k', '1', '--threads', '1']);
    assert.equal(byImage.status, 0, byImage.stderr);
    const best = JSON.parse(byImage.stdout) as { id: string; score: number; thumbnail: string };
    assert.equal(best.id, 'b/p05.png');
    assert.ok(best.score > 0.9999);
    assert.ok(existsSync(best.thumbnail));

    const info = cli(['index', 'info', '--index', 'cli-whole']);
    const summary = JSON.parse(info.stdout) as {
      size: number;
      info: { prompts: { image: string }; minPixels: number };
    };
    assert.equal(summary.size, 12);
    assert.equal(summary.info.prompts.image, '\nRepresent the given document image.');
    assert.equal(summary.info.minPixels, PIXELS.minPixels);

    const bad = cli(['search', '--index', 'nowhere', 'x']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^moca: index folder not found: nowhere\n$/);
  });
});
