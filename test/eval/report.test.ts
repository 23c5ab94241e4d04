import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  datasetKey,
  META_TASKS,
  MMEB_DATASETS,
  MMEB_PAPER_REFERENCE,
  mmebInfo,
  VIDORE_PAPER_REFERENCE,
  VIDORE_V2_TASKS,
  vidoreTask,
} from '../../src/eval/mmeb-datasets.js';
import {
  barChartSvg,
  compareResults,
  escapeMarkdown,
  formatDelta,
  formatPercent,
  primaryMetric,
  readResults,
  renderComparisonMarkdown,
  renderResultsHtml,
  renderResultsMarkdown,
  summarizeBeir,
  summarizeMmeb,
  parseDatasetTable,
  validateResults,
  writeResults,
  type EvalResults,
} from '../../src/eval/report.js';

const root = mkdtempSync(path.join(tmpdir(), 'moca-report-'));
after(() => rmSync(root, { recursive: true, force: true }));

const close = (actual: number | null, expected: number): void => {
  assert.ok(actual !== null, `expected ${expected}, got null`);
  assert.ok(Math.abs(actual - expected) < 1e-12, `expected ${expected}, got ${actual}`);
};

const EVIL = 'My<&>Set';

/** A hand-made MMEB run: 8 known datasets (one failed, names in varied spellings) and one unknown. */
function sample(): EvalResults {
  return {
    kind: 'mmeb',
    model: 'moca-3b-test',
    createdAt: '2025-01-02T03:04:05.000Z',
    settings: { ties: 'first', batchSize: 16 },
    datasets: [
      { name: 'ImageNet-1K', metrics: { 'precision@1': 0.5 }, count: 100 },
      { name: 'imagenet_a', metrics: { 'precision@1': 0.25 }, count: 40 },
      { name: 'N24News', metrics: {}, count: 0, error: 'images missing' },
      { name: 'OK-VQA', metrics: { 'precision@1': 0.75 }, count: 8 },
      { name: 'ScienceQA', metrics: { 'precision@1': 0.5 }, count: 8 },
      { name: 'MSCOCO_t2i', metrics: { 'precision@1': 1 }, count: 8 },
      { name: 'EDIS', metrics: { 'precision@1': 0.5 }, count: 8 },
      { name: 'MSCOCO', metrics: { 'precision@1': 0.875 }, count: 8 },
      { name: EVIL, metrics: { 'precision@1': 0.125 }, count: 8 },
    ],
  };
}

describe('MMEB dataset table', () => {
  test('36 datasets: 10/10/12/4 per meta-task, 20 IND / 16 OOD, distinct names and keys', () => {
    assert.equal(MMEB_DATASETS.length, 36);
    const per = Object.fromEntries(META_TASKS.map((t) => [t, MMEB_DATASETS.filter((d) => d.metaTask === t).length]));
    assert.deepEqual(per, { classification: 10, vqa: 10, retrieval: 12, grounding: 4 });
    assert.equal(MMEB_DATASETS.filter((d) => d.split === 'IND').length, 20);
    assert.equal(MMEB_DATASETS.filter((d) => d.split === 'OOD').length, 16);
    assert.equal(new Set(MMEB_DATASETS.map((d) => d.name)).size, 36);
    assert.equal(new Set(MMEB_DATASETS.map((d) => datasetKey(d.name))).size, 36);
  });

  test('IND set is exactly the spec §4.1 list', () => {
    const ind = [
      'ImageNet-1K',
      'N24News',
      'HatefulMemes',
      'SUN397',
      'VOC2007',
      'InfographicsVQA',
      'ChartQA',
      'A-OKVQA',
      'DocVQA',
      'OK-VQA',
      'Visual7W',
      'VisDial',
      'CIRR',
      'NIGHTS',
      'WebQA',
      'VisualNews_i2t',
      'VisualNews_t2i',
      'MSCOCO_i2t',
      'MSCOCO_t2i',
      'MSCOCO',
    ];
    assert.deepEqual(
      MMEB_DATASETS.filter((d) => d.split === 'IND')
        .map((d) => d.name)
        .sort(),
      [...ind].sort(),
    );
  });

  test('mmebInfo tolerates case and -/_ differences and rejects unknown names', () => {
    assert.equal(mmebInfo('imagenet_1k')?.name, 'ImageNet-1K');
    assert.equal(mmebInfo('WIKI_SS_NQ')?.name, 'Wiki-SS-NQ');
    assert.equal(mmebInfo('visualnews-T2I')?.name, 'VisualNews_t2i');
    assert.equal(mmebInfo('refcoco_matching')?.metaTask, 'grounding');
    assert.equal(mmebInfo('RefCOCO')?.name, 'RefCOCO');
    assert.equal(mmebInfo('mscoco')?.metaTask, 'grounding');
    assert.equal(mmebInfo('MSCOCO-i2t')?.metaTask, 'retrieval');
    assert.equal(mmebInfo('Place365')?.split, 'OOD');
    assert.equal(mmebInfo('ImageNet'), undefined);
    assert.equal(mmebInfo(''), undefined);
  });

  test('ViDoRe-v2 tasks and paper reference numbers (spec §4.3)', () => {
    assert.deepEqual(VIDORE_V2_TASKS, ['ESG_Human', 'Eco_Mul', 'Bio', 'ESG_Syn', 'ESG_Syn_Mul', 'Bio_Mul', 'Eco']);
    assert.equal(vidoreTask('esg-syn-mul'), 'ESG_Syn_Mul');
    assert.equal(vidoreTask('ESG'), undefined);
    assert.deepEqual(
      MMEB_PAPER_REFERENCE.map((r) => [
        r.metaTasks.classification,
        r.metaTasks.grounding > 80,
        r.ind,
        r.ood,
        r.overall,
      ]),
      [
        [59.8, true, 72.3, 61.5, 67.5],
        [65.8, true, 74.7, 67.6, 71.5],
      ],
    );
    assert.equal(MMEB_PAPER_REFERENCE[1]!.metaTasks.retrieval, 75.0);
    for (const r of VIDORE_PAPER_REFERENCE) assert.deepEqual(Object.keys(r.tasks), [...VIDORE_V2_TASKS]);
    assert.deepEqual(
      VIDORE_PAPER_REFERENCE.map((r) => [r.tasks['ESG_Human'], r.average]),
      [
        [63.3, 59.8],
        [58.8, 58.8],
      ],
    );
  });
});

describe('summarizeMmeb', () => {
  test('hand-computed means; unknown reported separately; failed excluded and listed', () => {
    const s = summarizeMmeb(sample());
    assert.equal(s.metric, 'precision@1');
    assert.equal(s.ties, 'first');
    close(s.metaTasks.classification.mean, (0.5 + 0.25) / 2);
    assert.equal(s.metaTasks.classification.n, 2);
    assert.equal(s.metaTasks.classification.expected, 10);
    assert.ok(s.metaTasks.classification.missing.includes('N24News'));
    close(s.metaTasks.vqa.mean, 0.625);
    close(s.metaTasks.retrieval.mean, 0.75);
    close(s.metaTasks.grounding.mean, 0.875);
    close(s.ind.mean, (0.5 + 0.75 + 1 + 0.875) / 4);
    close(s.ood.mean, (0.25 + 0.5 + 0.5) / 3);
    close(s.overall.mean, 4.375 / 7);
    assert.equal(s.overall.n, 7);
    assert.equal(s.overall.expected, 36);

    assert.deepEqual(
      s.unknown.map((r) => [r.name, r.value]),
      [[EVIL, 0.125]],
    );
    assert.deepEqual(
      s.failed.map((r) => [r.name, r.error]),
      [['N24News', 'images missing']],
    );
    assert.equal(s.absent.length, 36 - 8);
    assert.ok(!s.absent.includes('ImageNet-A'), 'imagenet_a matched ImageNet-A');
    // Table order, canonical names, unknown last.
    assert.deepEqual(
      s.datasets.map((r) => r.name),
      ['ImageNet-1K', 'N24News', 'ImageNet-A', 'OK-VQA', 'ScienceQA', 'MSCOCO_t2i', 'EDIS', 'MSCOCO', EVIL],
    );
    assert.equal(s.datasets[2]!.given, 'imagenet_a');
    assert.ok(s.notes.some((n) => n.includes('failed') && n.includes('N24News (images missing)')));
    assert.ok(s.notes.some((n) => n.includes('not in the MMEB table') && n.includes(EVIL)));
    assert.ok(s.notes.some((n) => n.includes('28 of 36')));
  });

  test("a run's own dataset table (settings.datasetTable) replaces MMEB's; paper columns are not shown", () => {
    const results: EvalResults = {
      kind: 'mmeb',
      model: 'demo',
      createdAt: '2026-01-01T00:00:00.000Z',
      settings: {
        ties: 'wrong',
        datasetTable: [
          { name: 'ShapeCls', metaTask: 'classification', split: 'ind' },
          { name: 'ColourQA', metaTask: 'VQA', split: 'OOD' },
          { name: 'PageRet', metaTask: 'retrieval', split: 'IND' },
          { name: 'Absent', metaTask: 'grounding', split: 'OOD' },
        ],
      },
      datasets: [
        { name: 'ShapeCls', metrics: { 'precision@1': 0.5 }, count: 10 },
        { name: 'ColourQA', metrics: { 'precision@1': 0.25 }, count: 10 },
        { name: 'PageRet', metrics: { 'precision@1': 1 }, count: 10 },
        // An MMEB name is unknown here: the run's table is the only table.
        { name: 'ImageNet-1K', metrics: { 'precision@1': 0.9 }, count: 10 },
      ],
    };
    const s = summarizeMmeb(results);
    assert.equal(s.customTable, true);
    close(s.metaTasks.classification.mean, 0.5);
    close(s.metaTasks.vqa.mean, 0.25);
    assert.equal(s.metaTasks.grounding.mean, null);
    close(s.ind.mean, 0.75);
    close(s.ood.mean, 0.25);
    assert.equal(s.ood.expected, 2);
    close(s.overall.mean, 1.75 / 3);
    assert.deepEqual(
      s.unknown.map((r) => r.name),
      ['ImageNet-1K'],
    );
    assert.deepEqual(s.absent, ['Absent']);
    const md = renderResultsMarkdown(results);
    for (const ref of MMEB_PAPER_REFERENCE) assert.ok(!md.includes(ref.model), `no ${ref.model} column`);
    assert.throws(
      () => parseDatasetTable([{ name: 'x', metaTask: 'ranking', split: 'IND' }], 'datasets.json'),
      /datasets\.json\[0\]\.metaTask: expected one of classification, vqa, retrieval, grounding/,
    );
    assert.throws(() => parseDatasetTable([{ name: 'x', metaTask: 'vqa', split: 'test' }], 'f'), /f\[0\]\.split/);
    assert.throws(() => parseDatasetTable([], 'f'), /non-empty array/);
  });

  test('missing or guessed metric, duplicates, metric override', () => {
    const r = sample();
    r.datasets.push({ name: 'imagenet-1k', metrics: { 'precision@1': 0 }, count: 1 });
    r.datasets.push({ name: 'CIRR', metrics: { recall: 0.5 }, count: 1 });
    const s = summarizeMmeb(r);
    assert.ok(s.notes.some((n) => n.includes('Duplicate') && n.includes('imagenet-1k')));
    close(s.metaTasks.classification.mean, 0.375);
    assert.deepEqual(
      s.failed.map((x) => [x.name, x.error]),
      [
        ['N24News', 'images missing'],
        ['CIRR', 'no "precision@1" metric'],
      ],
    );
    assert.equal(primaryMetric({ ...r, settings: { metric: 'recall' } }), 'recall');
    const guessed = summarizeMmeb({ ...r, datasets: [{ name: 'CIRR', metrics: { recall: 0.5 }, count: 1 }] });
    assert.equal(guessed.metric, 'recall');
    assert.ok(guessed.notes.some((n) => n.includes('No known primary metric')));
    assert.throws(() => summarizeMmeb({ ...r, kind: 'beir' }), /kind "beir"/);
  });
});

describe('Markdown and HTML', () => {
  test('results.md has the per-dataset, aggregate, unknown and failed rows and states the ties policy', () => {
    const md = renderResultsMarkdown(sample());
    for (const line of [
      '- Ties policy: first',
      '| ImageNet-1K | Classification | IND | 50.0 | 100 | ok |',
      '| ImageNet-A | Classification | OOD | 25.0 | 40 | ok |',
      '| N24News | Classification | IND | — | 0 | failed: images missing |',
      '| MSCOCO | Grounding | IND | 87.5 | 8 | ok |',
      '| Aggregate | Datasets | moca-3b-test | MoCa-3B (paper) | MoCa-7B (paper) |',
      '| Classification | 2/10 | 37.5 | 59.8 | 65.8 |',
      '| Retrieval | 2/12 | 75.0 | 70.6 | 75.0 |',
      '| IND | 4/20 | 78.1 | 72.3 | 74.7 |',
      '| OOD | 3/16 | 41.7 | 61.5 | 67.6 |',
      '| Overall | 7/36 | 62.5 | 67.5 | 71.5 |',
      '| My\\<\\&\\>Set | 12.5 | 8 | ok |',
      '| N24News | images missing |',
    ]) {
      assert.ok(md.includes(line), `missing line: ${line}\n${md}`);
    }
    assert.ok(md.includes('## Unknown datasets'));
    assert.ok(md.includes('## Failed datasets (excluded from all means)'));
    const noTies = renderResultsMarkdown({ ...sample(), settings: {} });
    assert.ok(noTies.includes('- Ties policy: not recorded'));
  });

  test('report.html: one inline SVG per chart, escaped labels, no external assets', () => {
    const html = renderResultsHtml(sample());
    assert.equal(html.match(/<svg/g)?.length, 2);
    assert.equal(html.match(/<\/svg>/g)?.length, 2);
    assert.ok(html.includes('Per dataset') && html.includes('Per meta-task'));
    assert.ok(html.includes('My&lt;&amp;&gt;Set'));
    assert.ok(!html.includes(EVIL));
    assert.ok(!/<script|<link|<img|\bsrc=|\bhref=/i.test(html));
    assert.ok(html.includes('Ties policy: first'));
    // Every present dataset has a row in the per-dataset chart; the failed one is marked.
    for (const name of ['ImageNet-1K', 'ImageNet-A', 'N24News', 'MSCOCO_t2i', 'MSCOCO'])
      assert.ok(html.includes(`data-label="${name}"`), name);
    assert.ok(html.includes('>failed</text>'));
  });

  test('barChartSvg: grouped bars, negatives, missing values, escaped long labels', () => {
    const long = `${'x'.repeat(50)}<y>`;
    const svg = barChartSvg(
      [
        { label: 'a&b', values: [10, -5] },
        { label: long, values: [null, 2.5], missingText: 'n/a' },
      ],
      { title: 'T<1>', series: ['run "1"', 'run 2'] },
    );
    assert.equal(svg.match(/<svg/g)?.length, 1);
    assert.equal(svg.match(/<rect [^>]*><title>/g)?.length, 3);
    assert.ok(svg.includes('a&amp;b') && svg.includes('T&lt;1&gt;') && svg.includes('run &quot;1&quot;'));
    assert.ok(svg.includes('-5.0') && svg.includes('>n/a</text>') && svg.includes('…'));
    assert.ok(svg.includes(`<title>${'x'.repeat(50)}&lt;y&gt;</title>`));
    assert.ok(!svg.includes('<y>'));
    assert.ok(!svg.includes('NaN'));
    const empty = barChartSvg([]);
    assert.ok(empty.startsWith('<svg') && !empty.includes('NaN'));
  });
});

describe('files', () => {
  test('writeResults writes results.json / results.md / report.html atomically; results.json round-trips', () => {
    const dir = path.join(root, 'run1', 'eval');
    const results = sample();
    const written = writeResults(dir, results);
    assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'results.json', 'results.md']);
    assert.deepEqual(readResults(dir), results);
    assert.deepEqual(readResults(written.json), results);
    assert.deepEqual(JSON.parse(readFileSync(written.json, 'utf8')), results);
    assert.equal(readFileSync(written.markdown, 'utf8'), renderResultsMarkdown(results));
    assert.equal(readFileSync(written.html, 'utf8'), renderResultsHtml(results));
    // Rewriting replaces the files and leaves no temporaries.
    results.datasets[0]!.metrics['precision@1'] = 0.625;
    writeResults(dir, results);
    assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'results.json', 'results.md']);
    assert.equal(readResults(dir).datasets[0]!.metrics['precision@1'], 0.625);
  });

  test('invalid results are refused before anything is written', () => {
    const dir = path.join(root, 'bad');
    const bad = sample();
    bad.datasets[0]!.metrics['precision@1'] = Number.NaN;
    assert.throws(() => writeResults(dir, bad), /finite number/);
    assert.equal(existsSync(dir), false);
    assert.throws(() => validateResults({ ...sample(), kind: 'x' }), /kind/);
    assert.throws(() => validateResults({ ...sample(), datasets: [{ name: 'a', metrics: {}, count: -1 }] }), /count/);
  });
});

describe('comparison', () => {
  test('deltas per dataset and aggregate; datasets in one run only shown with a dash', () => {
    const a = sample();
    const b = sample();
    b.model = 'moca-3b-no-mae';
    b.datasets = b.datasets.filter((d) => d.name !== 'EDIS');
    b.datasets[0]!.metrics['precision@1'] = 0.625;
    b.datasets[2] = { name: 'N24News', metrics: { 'precision@1': 0.5 }, count: 10 };
    b.datasets.push({ name: 'country211', metrics: { 'precision@1': 0.5 }, count: 10 });
    const cmp = compareResults(a, b);
    assert.deepEqual(cmp.labels, ['moca-3b-test', 'moca-3b-no-mae']);
    const byName = new Map(cmp.datasets.map((r) => [r.name, r]));
    close(byName.get('ImageNet-1K')!.delta, 0.125);
    assert.deepEqual(
      [byName.get('EDIS')!.a, byName.get('EDIS')!.b, byName.get('EDIS')!.delta, byName.get('EDIS')!.note],
      [0.5, null, null, 'only in A'],
    );
    assert.deepEqual(
      [byName.get('Country211')!.a, byName.get('Country211')!.b, byName.get('Country211')!.note],
      [null, 0.5, 'only in B'],
    );
    assert.equal(byName.get('N24News')!.note, 'failed in A');
    assert.equal(byName.get(EVIL)!.note, 'unknown (not in means)');
    close(byName.get(EVIL)!.delta, 0);
    // Table order: known datasets in MMEB order (Country211 among classification), unknown last.
    assert.deepEqual(
      cmp.datasets.map((r) => r.name),
      [
        'ImageNet-1K',
        'N24News',
        'ImageNet-A',
        'Country211',
        'OK-VQA',
        'ScienceQA',
        'MSCOCO_t2i',
        'EDIS',
        'MSCOCO',
        EVIL,
      ],
    );
    const agg = new Map(cmp.aggregates.map((r) => [r.name, r]));
    assert.deepEqual(
      cmp.aggregates.map((r) => r.name),
      ['Classification', 'VQA', 'Retrieval', 'Grounding', 'IND', 'OOD', 'Overall'],
    );
    // B classification: (0.625 + 0.5 + 0.25 + 0.5) / 4 = 0.46875 vs A 0.375.
    close(agg.get('Classification')!.delta, 0.46875 - 0.375);
    close(agg.get('Retrieval')!.b, 1);
    close(agg.get('Overall')!.b, (0.625 + 0.5 + 0.25 + 0.5 + 0.75 + 0.5 + 1 + 0.875) / 8);
    assert.equal(agg.get('Overall')!.note, 'A 7/36, B 8/36 datasets');
    close(agg.get('Grounding')!.delta, 0);

    const md = renderComparisonMarkdown(cmp);
    for (const line of [
      '| Dataset | Meta-task | moca-3b-test | moca-3b-no-mae | Δ | Note |',
      '| ImageNet-1K | Classification | 50.0 | 62.5 | +12.5 | |',
      '| EDIS | Retrieval | 50.0 | — | — | only in A |',
      '| Country211 | Classification | — | 50.0 | — | only in B |',
      '| N24News | Classification | — | 50.0 | — | failed in A |',
      '| Classification | 37.5 | 46.9 | +9.4 | A 2/10, B 4/10 datasets |',
      '| Grounding | 87.5 | 87.5 | 0.0 | A 1/4, B 1/4 datasets |',
      '| My\\<\\&\\>Set | — | 12.5 | 12.5 | 0.0 | unknown (not in means) |',
    ]) {
      assert.ok(md.replace(/ {2,}/g, ' ').includes(line), `missing line: ${line}\n${md}`);
    }
    assert.ok(md.includes('- Ties policy: first.'));
  });

  test('identical model names get A/B labels; kinds must match; negative deltas', () => {
    const a = sample();
    const b = sample();
    b.datasets[0]!.metrics['precision@1'] = 0.375;
    const cmp = compareResults(a, b);
    assert.deepEqual(cmp.labels, ['moca-3b-test (A)', 'moca-3b-test (B)']);
    assert.equal(formatDelta(cmp.datasets[0]!.delta), '-12.5');
    assert.deepEqual(
      cmp.aggregates.filter((r) => r.delta !== 0).map((r) => r.name),
      ['Classification', 'IND', 'Overall'],
    );
    assert.throws(() => compareResults(a, { ...b, kind: 'beir' }), /cannot compare/);
    const labelled = compareResults(a, b, { labels: ['full', 'w/o MAE'] });
    assert.ok(renderComparisonMarkdown(labelled).startsWith('# Comparison: full vs w/o MAE'));
  });
});

describe('BEIR / ViDoRe-v2', () => {
  const vidore = (): EvalResults => ({
    kind: 'beir',
    model: 'moca-3b-test',
    createdAt: '2025-01-02T03:04:05.000Z',
    settings: {},
    datasets: [
      { name: 'esg_human', metrics: { 'ndcg@5': 0.5, 'recall@10': 0.9 }, count: 50 },
      { name: 'Bio', metrics: { 'ndcg@5': 0.75 }, count: 50 },
      { name: 'Eco_Mul', metrics: {}, count: 0, error: 'timeout' },
    ],
  });

  test('average over tasks, ViDoRe order, paper columns, one SVG', () => {
    const s = summarizeBeir(vidore());
    assert.equal(s.metric, 'ndcg@5');
    assert.equal(s.vidore, true);
    assert.deepEqual(
      s.datasets.map((r) => r.name),
      ['ESG_Human', 'Eco_Mul', 'Bio'],
    );
    close(s.average.mean, 0.625);
    assert.equal(s.average.n, 2);
    assert.equal(s.average.expected, 7);
    assert.deepEqual(s.absent, ['ESG_Syn', 'ESG_Syn_Mul', 'Bio_Mul', 'Eco']);
    const md = renderResultsMarkdown(vidore());
    assert.ok(md.startsWith('# ViDoRe-v2 evaluation: moca-3b-test'));
    assert.ok(md.includes('| ESG_Human | 50.0 | 63.3 | 58.8 | 50 | ok |'), md);
    assert.ok(md.includes('| Average | 2/7 | 62.5 | 59.8 | 58.8 |'), md);
    assert.ok(md.includes('| Eco_Mul | timeout |'));
    const html = renderResultsHtml(vidore());
    assert.equal(html.match(/<svg/g)?.length, 1);
    const cmp = compareResults(vidore(), { ...vidore(), model: 'other' });
    assert.deepEqual(
      cmp.aggregates.map((r) => [r.name, r.delta]),
      [['Average', 0]],
    );
  });
});

test('formatting helpers', () => {
  assert.equal(formatPercent(0.675), '67.5');
  assert.equal(formatPercent(null), '—');
  assert.equal(formatDelta(0.0123), '+1.2');
  assert.equal(formatDelta(-0.0004), '0.0');
  assert.equal(formatDelta(null), '—');
  assert.equal(escapeMarkdown('a|b\nc<d>'), 'a\\|b c\\<d\\>');
});
