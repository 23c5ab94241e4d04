// The demo's report: the ablation table (mean ± spread over seeds per arm, and the paired differences MoCa − A),
// what compute each arm got, loss curves of every stage, per-dataset numbers, example searches with thumbnails,
// and where the files are. Written as results.json, results.md and a self-contained report.html.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { barChartSvg, escapeMarkdown, mdTable, writeFileAtomic } from '../eval/report.js';
import { readMetrics } from '../train/metrics.js';
import { escapeXml, lineChartSvg, PALETTE, type Series } from '../train/plot.js';
import { ARM_DESCRIPTIONS, type ArmName } from './config.js';
import { meanStd, pairedDeltas, SCORE_COLUMNS, type ScoreKey } from './evaluate.js';
import type { DemoRun } from './pipeline.js';
import type { StageRecord } from './stages.js';

const fmt = (v: { mean: number; std: number; n: number } | null, signed = false): string => {
  if (v === null) return '—';
  const m = (100 * v.mean).toFixed(1);
  const mean = signed && v.mean >= 0 ? `+${m}` : m;
  return v.n > 1 ? `${mean} ± ${(100 * v.std).toFixed(1)}` : mean;
};

function armScores(run: DemoRun, arm: ArmName, key: ScoreKey): (number | null)[] {
  return run.options.seeds.map((seed) => run.runs.find((r) => r.arm === arm && r.seed === seed)?.scores[key] ?? null);
}

function baseScores(run: DemoRun, key: ScoreKey): (number | null)[] {
  return run.options.seeds.map((seed) => run.bases.find((b) => b.seed === seed)?.scores[key] ?? null);
}

/** Rows of the ablation table: label, then one cell per score column. */
export function ablationRows(run: DemoRun): string[][] {
  const rows: string[][] = [
    ['base, no fine-tuning (causal, last token)', ...SCORE_COLUMNS.map(([k]) => fmt(meanStd(baseScores(run, k))))],
  ];
  for (const arm of run.options.arms)
    rows.push([arm, ...SCORE_COLUMNS.map(([k]) => fmt(meanStd(armScores(run, arm, k))))]);
  for (const arm of run.options.arms.filter((a) => a !== 'cl-only')) {
    rows.push([
      `Δ ${arm} − cl-only (paired)`,
      ...SCORE_COLUMNS.map(([k]) =>
        fmt(meanStd(pairedDeltas(armScores(run, 'cl-only', k), armScores(run, arm, k))), true),
      ),
    ]);
  }
  return rows;
}

/** One sentence on whether continual pre-training helped, from the paired overall and document differences. */
export function verdict(run: DemoRun): string {
  const seeds = run.options.seeds.length;
  const parts: string[] = [];
  for (const [key, label] of [
    ['overall', 'MMEB-style overall P@1'],
    ['ndcg5', 'document nDCG@5'],
  ] as const) {
    const d = pairedDeltas(armScores(run, 'cl-only', key), armScores(run, 'moca', key));
    const s = meanStd(d);
    if (s === null) continue;
    const wins = d.filter((x) => x > 0).length;
    const size = `${s.mean >= 0 ? '+' : ''}${(100 * s.mean).toFixed(1)} points`;
    const spread = s.n > 1 ? ` (± ${(100 * s.std).toFixed(1)} over ${s.n} seeds; MoCa ahead on ${wins} of ${s.n})` : '';
    parts.push(`${label}: ${size}${spread}`);
  }
  const caution =
    seeds < 3 ? ' With fewer than 3 seeds this is an anecdote, not evidence: run with --seeds 1,2,3 for a spread.' : '';
  return `MoCa (continual pre-training + fine-tuning) versus fine-tuning alone — ${parts.join('; ')}.${caution}`;
}

function computeRows(run: DemoRun): string[][] {
  const rows: string[][] = [];
  const seed = run.options.seeds[0]!;
  const describe = (s: StageRecord): string =>
    `${s.stage}: ${s.steps ?? 0} steps` +
    (s.tokens ? `, ${Math.round(s.tokens).toLocaleString('en-US')} tokens` : '') +
    (s.pairs ? `, ${Math.round(s.pairs).toLocaleString('en-US')} pairs` : '') +
    `, ${s.seconds.toFixed(0)} s`;
  for (const arm of run.options.arms) {
    const r = run.runs.find((x) => x.arm === arm && x.seed === seed);
    if (!r) continue;
    const own = r.stages.filter((s) => s.stage !== 'init' && s.stage !== 'causal-lm');
    const seconds = own.reduce((a, s) => a + s.seconds, 0);
    rows.push([arm, ARM_DESCRIPTIONS[arm], own.map(describe).join('; '), `${seconds.toFixed(0)} s`]);
  }
  return rows;
}

function metricsFile(stage: StageRecord): string {
  // A stage's model is `<run>/final`; metrics.jsonl sits in `<run>`.
  return path.join(path.dirname(stage.output), 'metrics.jsonl');
}

function lossSeries(run: DemoRun, stageName: (s: StageRecord) => boolean, metric: string): Series[] {
  const series: Series[] = [];
  const seen = new Set<string>();
  const add = (label: string, stage: StageRecord) => {
    const file = metricsFile(stage);
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const points = readMetrics(file).map((r) => {
      const v = (r as unknown as Record<string, unknown>)[metric];
      return [r.step, typeof v === 'number' ? v : null] as const;
    });
    series.push({ name: label, points, color: PALETTE[series.length % PALETTE.length]! });
  };
  for (const r of run.runs) for (const s of r.stages) if (stageName(s)) add(`${r.arm}, seed ${r.seed}`, s);
  return series;
}

function imageDataUri(file: string): string | null {
  if (!existsSync(file)) return null;
  return `data:image/png;base64,${readFileSync(file).toString('base64')}`;
}

/** What a reader needs to judge the comparison, stated in both reports. */
export const SETUP_NOTES: readonly string[] = [
  'The base "causal VLM" is pre-trained from scratch with next-token prediction on the unlabelled interleaved ' +
    'corpus, its text-only version and image → caption documents made from the image-to-caption pairs; its ' +
    'random patch encoder stays frozen and only the merger learns to project it (LLaVA-style alignment).',
  'Continual pre-training (MoCa) and contrastive fine-tuning train every parameter, with bidirectional attention ' +
    'and mean pooling; the contrastive stage is identical in both arms (same steps, batches, seed, hyper-parameters).',
  'OOD sets use colour–shape combinations that no training pair contains, and instructions never seen in ' +
    'training; the unlabelled corpus does show those combinations (it is not task supervision), and both the ' +
    "base's causal pre-training and MoCa's continual pre-training read that corpus.",
  'A score tie with the positive counts as wrong; models are compared on the same evaluation rows.',
];

export function renderDemoMarkdown(run: DemoRun): string {
  const header = ['Model', ...SCORE_COLUMNS.map(([, l]) => l)];
  const out = [
    `# moca demo — scale ${run.options.scale}, seeds ${run.options.seeds.join(', ')}`,
    '',
    `Precision@1 (%) on the world's MMEB-style tasks per meta-task, IND / OOD / overall, and nDCG@5 (%) on document`,
    `retrieval; mean ± sample standard deviation over seeds. Ties count as wrong.`,
    '',
    mdTable(
      header,
      ablationRows(run).map((r) => r.map(escapeMarkdown)),
    ),
    '',
    verdict(run),
    '',
    '## Compute per arm (seed ' + String(run.options.seeds[0]) + ')',
    '',
    'Both arms start from the same causal base (tokenizer + causal LM pre-training, not counted below).',
    '',
    mdTable(
      ['Arm', 'What', 'Stages', 'Time'],
      computeRows(run).map((r) => r.map(escapeMarkdown)),
    ),
    '',
    ...SETUP_NOTES.map((n) => `- ${n}`),
  ];
  return out.join('\n') + '\n';
}

export function renderDemoHtml(run: DemoRun, files: Record<string, string>): string {
  const header = ['Model', ...SCORE_COLUMNS.map(([, l]) => l)];
  const table = (head: readonly string[], rows: readonly (readonly string[])[]) =>
    `<table><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('') +
    '</tbody></table>';
  const arms = run.options.arms;
  const bars = barChartSvg(
    SCORE_COLUMNS.map(([k, label]) => ({
      label,
      values: arms.map((a) => {
        const s = meanStd(armScores(run, a, k));
        return s === null ? null : 100 * s.mean;
      }),
    })),
    { title: 'Mean over seeds (%)', series: arms, valueLabel: '%' },
  );
  const datasetNames = Object.keys(run.runs[0]?.scores.datasets ?? {});
  const datasetRows = datasetNames.map((name) => [
    name,
    ...arms.map((a) =>
      fmt(
        meanStd(
          run.options.seeds.map(
            (seed) => run.runs.find((r) => r.arm === a && r.seed === seed)?.scores.datasets[name] ?? null,
          ),
        ),
      ),
    ),
  ]);
  const charts = [
    ['Causal LM pre-training of the base: loss', (s: StageRecord) => s.stage === 'causal-lm', 'loss'],
    ['Continual pre-training: loss (MLM + 0.1·MAE)', (s: StageRecord) => s.stage.startsWith('cpt'), 'loss'],
    ['Continual pre-training: MLM accuracy', (s: StageRecord) => s.stage.startsWith('cpt'), 'mlm_accuracy'],
    ['Contrastive fine-tuning: InfoNCE loss', (s: StageRecord) => s.stage === 'cl', 'loss'],
  ] as const;
  const lossCharts = charts
    .map(([title, pick, metric]) => {
      const series = lossSeries(run, pick, metric);
      return series.length === 0
        ? ''
        : `<figure>${lineChartSvg(series, { title, xLabel: 'step', yLabel: metric })}<figcaption>${series
            .map((s) => `<span style="color:${s.color}">■</span> ${escapeXml(s.name)}`)
            .join(' &nbsp; ')}</figcaption></figure>`;
    })
    .join('\n');
  const searches = (run.search?.examples ?? [])
    .map((ex) => {
      const hits = ex.results
        .map((h) => {
          const uri = h.image ? imageDataUri(h.image) : null;
          return (
            `<div class="hit${h.relevant ? ' relevant' : ''}">` +
            (uri ? `<img src="${uri}" alt="${escapeXml(h.id)}">` : '') +
            `<div>${escapeXml(h.id)}</div><div>${h.score.toFixed(3)}</div></div>`
          );
        })
        .join('');
      return `<div class="search"><div class="query">${escapeXml(ex.query)}</div><div class="hits">${hits}</div></div>`;
    })
    .join('\n');
  const fileRows = Object.entries(files).map(([k, v]) => [k, v]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moca demo report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}
.verdict{background:#f6f8fa;border-left:4px solid #1f77b4;padding:8px 12px}
figure{display:inline-block;margin:8px}figcaption{font-size:12px;max-width:640px}
.search{margin:10px 0}.query{font-weight:600}.hits{display:flex;gap:8px;flex-wrap:wrap}
.hit{border:2px solid #ddd;padding:4px;font-size:11px;text-align:center}.hit.relevant{border-color:#2ca02c}
.hit img{display:block;max-width:112px;max-height:112px;image-rendering:pixelated}
</style></head><body>
<h1>moca demo</h1>
<p>Scale <b>${escapeXml(run.options.scale)}</b>, seeds ${run.options.seeds.join(', ')}, world seed
${run.options.worldSeed}, ${run.options.threads} threads, ${(run.seconds / 60).toFixed(1)} minutes in all.</p>
<h2>MoCa's claim in miniature</h2>
<p>Precision@1 (%) on the generated world's MMEB-style tasks (meta-tasks, in-distribution and held-out
compositions/phrasings), and nDCG@5 (%) on document-page retrieval. Mean ± sample standard deviation over seeds.
Ties count as wrong.</p>
${table(header, ablationRows(run))}
<p class="verdict">${escapeXml(verdict(run))}</p>
${bars}
<h2>What each arm got</h2>
<p>Every arm starts from the same causal base of its seed (a byte-level BPE trained on the world, then
${run.settings.lm.steps} steps of causal language modelling). Arm A adds ${run.settings.cl.steps} contrastive
steps; MoCa adds ${run.settings.cpt.steps} continual pre-training steps first — more compute, which is the
paper's comparison too; the optional <code>lm-matched</code> arm spends that budget on more causal LM instead.</p>
${table(['Arm', 'What', 'Stages', 'Time'], computeRows(run))}
<h3>Set-up notes</h3>
<ul>${SETUP_NOTES.map((n) => `<li>${escapeXml(n)}</li>`).join('')}</ul>
<h2>Training curves</h2>
${lossCharts}
<h2>Per dataset (Precision@1 %, mean over seeds)</h2>
${table(['Dataset', ...arms], datasetRows)}
${run.search ? `<h2>Searches over the evaluation images (MoCa model, seed ${run.options.seeds[0]})</h2>\n<p>Index: ${escapeXml(run.search.index)}. A green frame marks the image the query was written for.</p>\n${searches}` : ''}
<h2>Files</h2>
${table(['What', 'Where'], fileRows)}
</body></html>
`;
}

/** Writes results.json, results.md and report.html into `dir`; returns their paths. */
export function writeDemoReport(dir: string, run: DemoRun): Record<string, string> {
  const files: Record<string, string> = {
    'report (this page)': path.join(dir, 'report.html'),
    'results (JSON)': path.join(dir, 'results.json'),
    'results (Markdown)': path.join(dir, 'results.md'),
    'generated world': run.world.dir,
    'models and training runs': path.join(dir, 'runs'),
    'evaluation reports per model': path.join(dir, 'eval'),
    ...(run.search ? { 'vector index': run.search.index } : {}),
  };
  writeFileAtomic(files['results (JSON)']!, JSON.stringify(run, null, 2) + '\n');
  writeFileAtomic(files['results (Markdown)']!, renderDemoMarkdown(run));
  writeFileAtomic(files['report (this page)']!, renderDemoHtml(run, files));
  return files;
}
