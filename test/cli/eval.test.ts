import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'moca-cli-eval-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function moca(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const COLOURS: [string, string][] = [
  ['red', '#dc1e1e'],
  ['green', '#1ec83c'],
  ['blue', '#283ce6'],
  ['yellow', '#e6dc28'],
];

before(async () => {
  assert.equal(moca('init', '--preset', 'tiny', '--output', 'model').status, 0);
  mkdirSync(path.join(dir, 'mmeb', 'imgs'), { recursive: true });
  for (const [name, hex] of COLOURS) {
    await sharp({ create: { width: 56, height: 56, channels: 3, background: hex } })
      .png()
      .toFile(path.join(dir, 'mmeb', 'imgs', `${name}.png`));
  }
  const names = COLOURS.map(([n]) => n);
  const cls = names.map((n) =>
    JSON.stringify({
      qry_text: '<|image_1|>\nRepresent the given image for classification\n',
      qry_img_path: `imgs/${n}.png`,
      tgt_text: [n, ...names.filter((m) => m !== n)],
      tgt_img_path: ['', '', '', ''],
    }),
  );
  writeFileSync(path.join(dir, 'mmeb', 'N24News.jsonl'), cls.join('\n') + '\n');
  const ret = names.map((n) =>
    JSON.stringify({
      qry_text: `a ${n} square`,
      qry_img_path: '',
      tgt_text: ['<|image_1|>', '<|image_1|>', '<|image_1|>', '<|image_1|>'],
      tgt_img_path: [`imgs/${n}.png`, ...names.filter((m) => m !== n).map((m) => `imgs/${m}.png`)],
    }),
  );
  writeFileSync(path.join(dir, 'mmeb', 'ToyRetrieval.jsonl'), [...ret, '{"qry_text": "broken"}'].join('\n') + '\n');
  // A BEIR set: image pages and text documents; each query's own document is relevant (grade 2), one more grade 1.
  const beir = path.join(dir, 'beir', 'toy');
  mkdirSync(path.join(beir, 'qrels'), { recursive: true });
  mkdirSync(path.join(beir, 'pages'));
  for (const [name] of COLOURS) {
    await sharp(path.join(dir, 'mmeb', 'imgs', `${name}.png`)).toFile(path.join(beir, 'pages', `${name}.png`));
  }
  const corpus = [
    ...names.map((n) => ({ _id: `img-${n}`, image: `pages/${n}.png` })),
    ...names.map((n) => ({ _id: `txt-${n}`, title: n, text: `a page about the colour ${n}` })),
  ];
  writeFileSync(path.join(beir, 'corpus.jsonl'), corpus.map((c) => JSON.stringify(c)).join('\n') + '\n');
  writeFileSync(
    path.join(beir, 'queries.jsonl'),
    names.map((n) => JSON.stringify({ _id: `q-${n}`, text: `which page is ${n}?` })).join('\n') + '\n',
  );
  const qrels = ['query-id\tcorpus-id\tscore', ...names.flatMap((n) => [`q-${n}\ttxt-${n}\t2`, `q-${n}\timg-${n}\t1`])];
  writeFileSync(path.join(beir, 'qrels', 'test.tsv'), qrels.join('\n') + '\n');
});

describe('moca eval', () => {
  const pixels = ['--min-pixels', '3136', '--max-pixels', '3136'];

  test('mmeb: P@1 per dataset, unknown datasets reported separately, bad rows recorded, reports written', () => {
    const r = moca('eval', 'mmeb', '--model', 'model', '--data', 'mmeb', '--output', 'run-a', ...pixels);
    assert.equal(r.status, 1, 'a bad row makes the exit status 1');
    const summary = JSON.parse(r.stdout) as { overall: number; datasets: number; failed: number };
    assert.equal(summary.datasets, 1, 'only N24News is an MMEB dataset; the image folder is not a subset');
    const results = JSON.parse(readFileSync(path.join(dir, 'run-a', 'results.json'), 'utf8')) as {
      settings: { ties: string };
      datasets: { name: string; metrics: Record<string, number>; count: number }[];
    };
    assert.equal(results.settings.ties, 'wrong');
    assert.deepEqual(results.datasets.map((d) => d.name).sort(), ['N24News', 'ToyRetrieval']);
    for (const d of results.datasets) {
      assert.equal(d.count, 4);
      const p = d.metrics.precision_at_1!;
      assert.ok(p >= 0 && p <= 1 && Number.isInteger(p * 4), `${d.name}: ${p}`);
    }
    const errors = readFileSync(path.join(dir, 'run-a', 'errors.jsonl'), 'utf8');
    assert.match(errors, /ToyRetrieval/);
    assert.match(errors, /tgt_text must be a list of strings/);
    const md = readFileSync(path.join(dir, 'run-a', 'results.md'), 'utf8');
    assert.match(md, /ToyRetrieval/);
    assert.match(md, /Ties policy: wrong/);
    assert.ok(existsSync(path.join(dir, 'run-a', 'report.html')));
  });

  test('beir: nDCG/Recall/MRR/P at 5 and 10 over image and text documents', () => {
    const r = moca('eval', 'beir', '--model', 'model', '--data', 'beir', '--output', 'beir-run', ...pixels);
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(readFileSync(path.join(dir, 'beir-run', 'results.json'), 'utf8')) as {
      kind: string;
      datasets: { name: string; metrics: Record<string, number>; count: number }[];
    };
    assert.equal(results.kind, 'beir');
    const toy = results.datasets[0]!;
    assert.equal(toy.name, 'toy');
    assert.equal(toy.count, 4);
    for (const m of ['ndcg_cut_5', 'ndcg_cut_10', 'recall_5', 'recall_10', 'recip_rank_10', 'P_5']) {
      const v = toy.metrics[m]!;
      assert.ok(v >= 0 && v <= 1, `${m} = ${v}`);
    }
    // 8 documents, all retrieved: every relevant document is within the top 10.
    assert.equal(toy.metrics.recall_10, 1);
    assert.ok(toy.metrics.P_5! <= 0.4 + 1e-9, 'two relevant documents per query: P@5 ≤ 2/5');
  });

  test('the embedding cache is reused by a second run; compare prints deltas', () => {
    const r = moca(
      'eval',
      'mmeb',
      '--model',
      'model',
      '--data',
      'mmeb',
      '--output',
      'run-b',
      '--cache',
      'run-a/cache',
      '--ties',
      'reference',
      ...pixels,
    );
    const summary = JSON.parse(r.stdout) as { cacheHits: number };
    assert.ok(summary.cacheHits >= 8, `cache hits ${summary.cacheHits}`);
    const cmp = moca('eval', 'compare', 'run-a', 'run-b');
    assert.equal(cmp.status, 0, cmp.stderr);
    assert.match(cmp.stdout, /Ties policies differ: A wrong, B reference/);
    assert.match(cmp.stdout, /\| Overall \|/);
  });
});
