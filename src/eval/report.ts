// The evaluation report layer: the results of one evaluation run (MMEB or a BEIR-format benchmark such as
// ViDoRe-v2), their aggregates as the paper reports them (unweighted means over datasets: per meta-task, IND,
// OOD, overall), the files a run leaves behind (results.json, results.md, report.html) and run-vs-run
// comparisons (the paper's ablation tables).
//
// Convention: metric values are fractions in [0, 1] (accuracy = Precision@1, nDCG@5); reports show them × 100
// with one decimal, like the paper, and deltas in percentage points.

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

import { escapeXml, formatTick, niceTicks, PALETTE } from '../train/plot.js';
import {
  datasetKey,
  META_TASK_LABELS,
  META_TASKS,
  MMEB_DATASETS,
  MMEB_PAPER_REFERENCE,
  VIDORE_PAPER_REFERENCE,
  VIDORE_V2_TASKS,
  vidoreTask,
  type MetaTask,
  type MmebDataset,
  type MmebSplit,
} from './mmeb-datasets.js';

// ------------------------------------------------------------------------------------------------ results

export interface EvalDatasetResult {
  name: string;
  /** Metric name → value (a fraction in [0, 1] for accuracy / nDCG). */
  metrics: Record<string, number>;
  /** Number of evaluated queries. */
  count: number;
  /** Set when the dataset could not be evaluated; such a dataset is excluded from every mean. */
  error?: string;
}

export interface EvalResults {
  kind: 'mmeb' | 'beir';
  model: string;
  /** ISO 8601 timestamp. */
  createdAt: string;
  /** Free-form run settings, e.g. `{ ties: 'first', metric: 'precision@1', batchSize: 16 }`. */
  settings: Record<string, unknown>;
  datasets: EvalDatasetResult[];
}

/** Metric names tried in order when the run does not name its primary metric (`settings.metric`). */
export const MMEB_METRIC_CANDIDATES: readonly string[] = ['precision@1', 'precision_at_1', 'p@1', 'accuracy', 'acc'];
export const BEIR_METRIC_CANDIDATES: readonly string[] = ['ndcg@5', 'ndcg_at_5', 'ndcg_cut_5'];

/** Checks the shape of parsed results (throws a descriptive Error) and returns them typed. */
export function validateResults(value: unknown): EvalResults {
  const fail = (msg: string): never => {
    throw new Error(`invalid evaluation results: ${msg}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('not an object');
  const r = value as Record<string, unknown>;
  if (r['kind'] !== 'mmeb' && r['kind'] !== 'beir')
    fail(`kind must be "mmeb" or "beir", got ${JSON.stringify(r['kind'])}`);
  if (typeof r['model'] !== 'string') fail('model must be a string');
  if (typeof r['createdAt'] !== 'string') fail('createdAt must be a string');
  const settings = r['settings'];
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) fail('settings must be an object');
  if (!Array.isArray(r['datasets'])) fail('datasets must be an array');
  (r['datasets'] as unknown[]).forEach((d, i) => {
    if (typeof d !== 'object' || d === null || Array.isArray(d)) fail(`datasets[${i}] is not an object`);
    const ds = d as Record<string, unknown>;
    if (typeof ds['name'] !== 'string' || ds['name'] === '') fail(`datasets[${i}].name must be a non-empty string`);
    const where = `datasets[${i}] (${String(ds['name'])})`;
    if (typeof ds['count'] !== 'number' || !Number.isInteger(ds['count']) || ds['count'] < 0)
      fail(`${where}.count must be a non-negative integer`);
    if (ds['error'] !== undefined && typeof ds['error'] !== 'string') fail(`${where}.error must be a string`);
    const m = ds['metrics'];
    if (typeof m !== 'object' || m === null || Array.isArray(m)) fail(`${where}.metrics must be an object`);
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (typeof v !== 'number' || !Number.isFinite(v))
        fail(`${where}.metrics.${k} must be a finite number (record a failure with "error" instead), got ${String(v)}`);
    }
  });
  return value as EvalResults;
}

/** Reads and validates `results.json` (a file, or a directory that holds one). */
export function readResults(fileOrDir: string): EvalResults {
  const file = statSync(fileOrDir).isDirectory() ? path.join(fileOrDir, 'results.json') : fileOrDir;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  try {
    return validateResults(parsed);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

function resolveMetric(results: EvalResults, override?: string): { metric: string; guessed: boolean } {
  if (override) return { metric: override, guessed: false };
  const fromSettings = results.settings['metric'];
  if (typeof fromSettings === 'string' && fromSettings !== '') return { metric: fromSettings, guessed: false };
  const present: string[] = [];
  for (const d of results.datasets) {
    if (d.error !== undefined) continue;
    for (const k of Object.keys(d.metrics)) if (!present.includes(k)) present.push(k);
  }
  const candidates = results.kind === 'mmeb' ? MMEB_METRIC_CANDIDATES : BEIR_METRIC_CANDIDATES;
  for (const c of candidates) {
    const hit = present.find((k) => k.toLowerCase() === c);
    if (hit !== undefined) return { metric: hit, guessed: false };
  }
  if (present.length > 0) return { metric: present[0]!, guessed: true };
  return { metric: candidates[0]!, guessed: false };
}

/** The metric the report aggregates: `override`, else `settings.metric`, else the first known name present. */
export function primaryMetric(results: EvalResults, override?: string): string {
  return resolveMetric(results, override).metric;
}

/** The ties policy the run recorded (`settings.ties`, `tiesPolicy` or `ties_policy`), or null. */
export function tiesPolicy(results: EvalResults): string | null {
  for (const key of ['ties', 'tiesPolicy', 'ties_policy']) {
    const v = results.settings[key];
    if (v !== undefined && v !== null) return typeof v === 'string' ? v : JSON.stringify(v);
  }
  return null;
}

// ------------------------------------------------------------------------------------------------ summaries

export interface DatasetRow {
  /** Canonical name for a known dataset (table spelling), else the name as given. */
  name: string;
  /** The name as written in the results. */
  given: string;
  metaTask: MetaTask | null;
  split: MmebSplit | null;
  /** In the benchmark's built-in table (MMEB datasets / ViDoRe-v2 tasks). */
  known: boolean;
  /** The primary metric; null when the dataset failed. */
  value: number | null;
  count: number;
  /** Why the dataset has no value (its own error, or a missing / non-finite primary metric). */
  error: string | null;
}

export interface Aggregate {
  label: string;
  /** Unweighted mean over the member datasets that have a value; null when none has. */
  mean: number | null;
  /** Number of datasets in the mean. */
  n: number;
  /** Number of datasets the benchmark defines for this aggregate. */
  expected: number;
  /** Expected datasets not in the mean (failed or absent). */
  missing: string[];
}

export interface MmebSummary {
  kind: 'mmeb';
  model: string;
  createdAt: string;
  metric: string;
  ties: string | null;
  /** Whether the datasets' meta-tasks and splits come from the run's own table (`settings.datasetTable`) rather
   * than MMEB's; the paper's numbers are then not shown beside (they would not be comparable). */
  customTable: boolean;
  /** Known datasets in table order, then unknown ones in result order. */
  datasets: DatasetRow[];
  metaTasks: Record<MetaTask, Aggregate>;
  ind: Aggregate;
  ood: Aggregate;
  overall: Aggregate;
  /** Datasets not in the MMEB table: reported, never part of a mean. */
  unknown: DatasetRow[];
  /** Datasets without a value (error, missing or non-finite metric): listed, excluded from the means. */
  failed: DatasetRow[];
  /** MMEB datasets the results do not contain. */
  absent: string[];
  /** Human-readable remarks (failures, absences, unknown names, duplicates, scale doubts). */
  notes: string[];
}

export interface BeirSummary {
  kind: 'beir';
  model: string;
  createdAt: string;
  metric: string;
  ties: string | null;
  /** ViDoRe-v2 tasks in the paper's order (when the run is a ViDoRe run), then the others in result order. */
  datasets: DatasetRow[];
  average: Aggregate;
  failed: DatasetRow[];
  /** ViDoRe-v2 tasks missing from a ViDoRe run. */
  absent: string[];
  /** Whether any dataset is a ViDoRe-v2 task (then the paper's numbers are shown alongside). */
  vidore: boolean;
  notes: string[];
}

export type EvalSummary = MmebSummary | BeirSummary;

function makeRow(d: EvalDatasetResult, metric: string, canonical: string | undefined, info?: MmebDataset): DatasetRow {
  let error: string | null = d.error ?? null;
  let value: number | null = null;
  if (error === null) {
    const v = d.metrics[metric];
    if (v === undefined) error = `no "${metric}" metric`;
    else if (typeof v !== 'number' || !Number.isFinite(v)) error = `"${metric}" is not finite (${String(v)})`;
    else value = v;
  }
  return {
    name: canonical ?? d.name,
    given: d.name,
    metaTask: info?.metaTask ?? null,
    split: info?.split ?? null,
    known: canonical !== undefined,
    value,
    count: d.count,
    error,
  };
}

function mean(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

function aggregate(label: string, names: readonly string[], rows: ReadonlyMap<string, DatasetRow>): Aggregate {
  const values: number[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const row = rows.get(datasetKey(name));
    if (row && row.value !== null) values.push(row.value);
    else missing.push(name);
  }
  return { label, mean: mean(values), n: values.length, expected: names.length, missing };
}

function listNames(rows: readonly { name: string; error?: string | null }[], withError: boolean): string {
  return rows.map((r) => (withError && r.error ? `${r.name} (${r.error})` : r.name)).join(', ');
}

/** Rows keyed by dataset key; later duplicates are reported in `notes` and ignored. */
function collectRows(
  results: EvalResults,
  metric: string,
  canonicalOf: (name: string) => string | undefined,
  notes: string[],
  infoOf: (name: string) => MmebDataset | undefined = () => undefined,
): Map<string, DatasetRow> {
  const rows = new Map<string, DatasetRow>();
  const duplicates: string[] = [];
  for (const d of results.datasets) {
    const canonical = canonicalOf(d.name);
    const key = datasetKey(canonical ?? d.name);
    if (rows.has(key)) {
      duplicates.push(d.name);
      continue;
    }
    rows.set(key, makeRow(d, metric, canonical, infoOf(d.name)));
  }
  if (duplicates.length > 0)
    notes.push(`Duplicate dataset entries ignored (the first one is used): ${duplicates.join(', ')}.`);
  return rows;
}

function commonNotes(rows: readonly DatasetRow[], metric: string, guessed: boolean, notes: string[]): DatasetRow[] {
  if (guessed)
    notes.push(`No known primary metric found; "${metric}" was used. Set settings.metric to choose explicitly.`);
  const failed = rows.filter((r) => r.value === null);
  if (failed.length > 0)
    notes.push(`${failed.length} dataset(s) failed and are excluded from all means: ${listNames(failed, true)}.`);
  if (rows.some((r) => r.value !== null && r.value > 1))
    notes.push(`Some "${metric}" values exceed 1: values are expected as fractions in [0, 1] (shown × 100).`);
  return failed;
}

/**
 * The datasets' meta-tasks and IND/OOD splits for a run: `settings.datasetTable` when the run carries its own (a
 * benchmark in the MMEB format that is not MMEB, e.g. the demo's generated world; written by `moca eval mmeb`
 * from a `datasets.json` beside the data), otherwise the 36 MMEB datasets.
 */
export function datasetTable(results: EvalResults): readonly MmebDataset[] {
  const given = results.settings.datasetTable;
  if (given === undefined || given === null) return MMEB_DATASETS;
  return parseDatasetTable(given, 'settings.datasetTable');
}

/**
 * Validates a dataset table: an array of `{name, metaTask, split}` with metaTask one of the four meta-tasks and
 * split IND or OOD (lower case accepted). `where` names the source in error messages.
 */
export function parseDatasetTable(value: unknown, where: string): MmebDataset[] {
  if (!Array.isArray(value) || value.length === 0) throw new Error(`${where}: expected a non-empty array of datasets`);
  return value.map((entry: unknown, i) => {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const at = `${where}[${i}]`;
    if (typeof e.name !== 'string' || e.name === '') throw new Error(`${at}.name: expected a non-empty string`);
    const metaTask = typeof e.metaTask === 'string' ? e.metaTask.toLowerCase() : '';
    if (!(META_TASKS as readonly string[]).includes(metaTask))
      throw new Error(`${at}.metaTask: expected one of ${META_TASKS.join(', ')}, got ${JSON.stringify(e.metaTask)}`);
    const split = typeof e.split === 'string' ? e.split.toUpperCase() : '';
    if (split !== 'IND' && split !== 'OOD')
      throw new Error(`${at}.split: expected IND or OOD, got ${JSON.stringify(e.split)}`);
    return { name: e.name, metaTask: metaTask as MetaTask, split: split as MmebSplit };
  });
}

/**
 * MMEB aggregates as the paper reports them: unweighted means over datasets per meta-task, IND, OOD and
 * overall (36). Unknown datasets are reported separately; failed ones are listed and left out of every mean.
 */
export function summarizeMmeb(results: EvalResults, options: { metric?: string } = {}): MmebSummary {
  if (results.kind !== 'mmeb') throw new Error(`summarizeMmeb: results are of kind "${results.kind}"`);
  const { metric, guessed } = resolveMetric(results, options.metric);
  const notes: string[] = [];
  const table = datasetTable(results);
  const custom = table !== MMEB_DATASETS;
  const byKey = new Map(table.map((d) => [datasetKey(d.name), d]));
  const infoOf = (n: string): MmebDataset | undefined => byKey.get(datasetKey(n));
  const rows = collectRows(results, metric, (n) => infoOf(n)?.name, notes, infoOf);
  const known = table.flatMap((d) => rows.get(datasetKey(d.name)) ?? []);
  const unknown = [...rows.values()].filter((r) => !r.known);
  const datasets = [...known, ...unknown];
  const failed = commonNotes(datasets, metric, guessed, notes);
  const absent = table.filter((d) => !rows.has(datasetKey(d.name))).map((d) => d.name);
  const tableName = custom ? 'dataset table of the run' : 'MMEB table';
  if (absent.length > 0)
    notes.push(
      `${absent.length} of ${table.length} dataset(s) of the ${tableName} absent from the results: ` +
        `${absent.join(', ')}` +
        (custom ? '.' : '; aggregates over fewer datasets are not directly comparable with the paper.'),
    );
  if (unknown.length > 0)
    notes.push(
      `${unknown.length} dataset(s) not in the ${tableName}, reported separately and not in any mean: ` +
        `${listNames(unknown, false)}.`,
    );
  if (custom) notes.push('Meta-tasks and IND/OOD splits come from the run’s own dataset table, not MMEB’s.');
  const names = (pred: (d: MmebDataset) => boolean): string[] => table.filter(pred).map((d) => d.name);
  const metaTasks = Object.fromEntries(
    META_TASKS.map((t) => [
      t,
      aggregate(
        META_TASK_LABELS[t],
        names((d) => d.metaTask === t),
        rows,
      ),
    ]),
  ) as Record<MetaTask, Aggregate>;
  return {
    kind: 'mmeb',
    model: results.model,
    createdAt: results.createdAt,
    metric,
    ties: tiesPolicy(results),
    customTable: custom,
    datasets,
    metaTasks,
    ind: aggregate(
      'IND',
      names((d) => d.split === 'IND'),
      rows,
    ),
    ood: aggregate(
      'OOD',
      names((d) => d.split === 'OOD'),
      rows,
    ),
    overall: aggregate(
      'Overall',
      names(() => true),
      rows,
    ),
    unknown,
    failed,
    absent,
    notes,
  };
}

/** BEIR-format aggregates: the unweighted mean over datasets (ViDoRe-v2 tasks recognised and ordered). */
export function summarizeBeir(results: EvalResults, options: { metric?: string } = {}): BeirSummary {
  if (results.kind !== 'beir') throw new Error(`summarizeBeir: results are of kind "${results.kind}"`);
  const { metric, guessed } = resolveMetric(results, options.metric);
  const notes: string[] = [];
  const rows = collectRows(results, metric, vidoreTask, notes);
  const all = [...rows.values()];
  const vidore = all.some((r) => r.known);
  const datasets = vidore
    ? [...VIDORE_V2_TASKS.flatMap((t) => rows.get(datasetKey(t)) ?? []), ...all.filter((r) => !r.known)]
    : all;
  const failed = commonNotes(datasets, metric, guessed, notes);
  const absent = vidore ? VIDORE_V2_TASKS.filter((t) => !rows.has(datasetKey(t))) : [];
  if (absent.length > 0)
    notes.push(
      `${absent.length} of ${VIDORE_V2_TASKS.length} ViDoRe-v2 task(s) absent from the results: ${absent.join(', ')}.`,
    );
  const expected = [...(vidore ? VIDORE_V2_TASKS : []), ...datasets.filter((r) => !r.known).map((r) => r.name)];
  return {
    kind: 'beir',
    model: results.model,
    createdAt: results.createdAt,
    metric,
    ties: tiesPolicy(results),
    datasets,
    average: aggregate('Average', expected, rows),
    failed,
    absent,
    vidore,
    notes,
  };
}

/** summarizeMmeb or summarizeBeir according to `results.kind`. */
export function summarize(results: EvalResults, options: { metric?: string } = {}): EvalSummary {
  return results.kind === 'mmeb' ? summarizeMmeb(results, options) : summarizeBeir(results, options);
}

/** The aggregates of a summary in display order (meta-tasks, IND, OOD, Overall; or Average). */
export function summaryAggregates(summary: EvalSummary): Aggregate[] {
  if (summary.kind === 'beir') return [summary.average];
  return [...META_TASKS.map((t) => summary.metaTasks[t]), summary.ind, summary.ood, summary.overall];
}

// ------------------------------------------------------------------------------------------------ formatting

/** A fraction as a percentage with one decimal ("67.5"), or an em dash for a missing value. */
export function formatPercent(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : (v * 100).toFixed(1);
}

/** A difference of fractions in signed percentage points ("+1.2", "-0.3", "0.0"), or an em dash. */
export function formatDelta(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const s = (v * 100).toFixed(1);
  if (Number(s) === 0) return '0.0';
  return v > 0 ? `+${s}` : s;
}

/** Text for a Markdown table cell: one line, with characters that Markdown would interpret escaped. */
export function escapeMarkdown(text: string): string {
  return text.replace(/\r?\n|\r/g, ' ').replace(/[\\|<>&`*[\]]/g, (c) => `\\${c}`);
}

export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const META_TASK_NAMES: Readonly<Record<MetaTask, string>> = {
  classification: 'Classification',
  vqa: 'VQA',
  retrieval: 'Retrieval',
  grounding: 'Grounding',
};

function metricTitle(metric: string): string {
  return `${metric} (%)`;
}

function settingLines(results: EvalResults): string[] {
  return Object.entries(results.settings).map(
    ([k, v]) => `${k}: ${typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))}`,
  );
}

function tiesLine(ties: string | null): string {
  return `Ties policy: ${ties ?? 'not recorded'}`;
}

function statusOf(row: DatasetRow): string {
  if (row.value === null) return `failed: ${row.error ?? 'no value'}`;
  return row.known ? 'ok' : 'unknown (not in means)';
}

/** Markdown report: settings (ties policy stated), notes, aggregates beside the paper, per-dataset tables. */
export function renderResultsMarkdown(results: EvalResults, options: { metric?: string } = {}): string {
  const s = summarize(results, options);
  const out: string[] = [];
  out.push(`# ${s.kind === 'mmeb' ? 'MMEB' : s.vidore ? 'ViDoRe-v2' : 'BEIR'} evaluation: ${escapeMarkdown(s.model)}`);
  out.push('');
  out.push(`- Created: ${escapeMarkdown(s.createdAt)}`);
  out.push(`- Metric: ${escapeMarkdown(s.metric)}, shown × 100; aggregates are unweighted means over datasets`);
  out.push(`- ${escapeMarkdown(tiesLine(s.ties))}`);
  for (const l of settingLines(results)) out.push(`- Setting ${escapeMarkdown(l)}`);
  if (s.notes.length > 0) {
    out.push('', '## Notes', '');
    for (const n of s.notes) out.push(`- ${escapeMarkdown(n)}`);
  }

  out.push('', '## Aggregates', '');
  const aggs = summaryAggregates(s);
  if (s.kind === 'mmeb') {
    const refs = s.customTable ? [] : MMEB_PAPER_REFERENCE;
    const refValue = (i: number, a: number): string => {
      const r = refs[i]!;
      const v = a < 4 ? r.metaTasks[META_TASKS[a]!] : a === 4 ? r.ind : a === 5 ? r.ood : r.overall;
      return v.toFixed(1);
    };
    out.push(
      mdTable(
        ['Aggregate', 'Datasets', escapeMarkdown(s.model), ...refs.map((r) => escapeMarkdown(r.model))],
        aggs.map((a, i) => [
          i < 4 ? META_TASK_NAMES[META_TASKS[i]!] : a.label,
          `${a.n}/${a.expected}`,
          formatPercent(a.mean),
          ...refs.map((_, j) => refValue(j, i)),
        ]),
      ),
    );
  } else {
    const a = s.average;
    const refs = s.vidore ? VIDORE_PAPER_REFERENCE : [];
    out.push(
      mdTable(
        ['Aggregate', 'Datasets', escapeMarkdown(s.model), ...refs.map((r) => escapeMarkdown(r.model))],
        [[a.label, `${a.n}/${a.expected}`, formatPercent(a.mean), ...refs.map((r) => r.average.toFixed(1))]],
      ),
    );
  }

  out.push('', '## Per dataset', '');
  if (s.kind === 'mmeb') {
    out.push(
      mdTable(
        ['Dataset', 'Meta-task', 'Split', metricTitle(escapeMarkdown(s.metric)), 'Count', 'Status'],
        s.datasets.map((r) => [
          escapeMarkdown(r.name),
          r.metaTask ? META_TASK_NAMES[r.metaTask] : '—',
          r.split ?? '—',
          formatPercent(r.value),
          String(r.count),
          escapeMarkdown(statusOf(r)),
        ]),
      ),
    );
  } else {
    const refs = s.vidore ? VIDORE_PAPER_REFERENCE : [];
    out.push(
      mdTable(
        [
          'Dataset',
          metricTitle(escapeMarkdown(s.metric)),
          ...refs.map((r) => escapeMarkdown(r.model)),
          'Count',
          'Status',
        ],
        s.datasets.map((r) => [
          escapeMarkdown(r.name),
          formatPercent(r.value),
          ...refs.map((ref) => (r.known ? (ref.tasks[r.name]?.toFixed(1) ?? '—') : '—')),
          String(r.count),
          escapeMarkdown(r.value === null ? `failed: ${r.error ?? 'no value'}` : 'ok'),
        ]),
      ),
    );
  }

  if (s.kind === 'mmeb' && s.unknown.length > 0) {
    out.push('', '## Unknown datasets (not in the MMEB table; not in any mean)', '');
    out.push(
      mdTable(
        ['Dataset', metricTitle(escapeMarkdown(s.metric)), 'Count', 'Status'],
        s.unknown.map((r) => [
          escapeMarkdown(r.name),
          formatPercent(r.value),
          String(r.count),
          escapeMarkdown(r.value === null ? `failed: ${r.error ?? 'no value'}` : 'ok'),
        ]),
      ),
    );
  }
  if (s.failed.length > 0) {
    out.push('', '## Failed datasets (excluded from all means)', '');
    out.push(
      mdTable(
        ['Dataset', 'Error'],
        s.failed.map((r) => [escapeMarkdown(r.name), escapeMarkdown(r.error ?? '')]),
      ),
    );
  }
  if (s.absent.length > 0) {
    out.push('', '## Absent datasets', '');
    out.push(s.absent.map((n) => `- ${escapeMarkdown(n)}`).join('\n'));
  }
  out.push('');
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ bar charts

export interface BarGroup {
  label: string;
  /** One value per series, in display units; null draws no bar (the missing text instead). */
  values: readonly (number | null)[];
  /** Bar colour for a single-series chart (default: the series colour). */
  color?: string;
  /** Text drawn where a null value's bar would be (default "—"). */
  missingText?: string;
}

export interface BarChartOptions {
  title?: string;
  /** Series names (shown as a legend when there are several). */
  series?: readonly string[];
  /** Series colours (default PALETTE). */
  colors?: readonly string[];
  /** Axis label under the value axis. */
  valueLabel?: string;
  /** Pixel width (default 720); the height follows from the number of bars. */
  width?: number;
  /** Height of one bar (default 14 for one series, 9 for several). */
  barHeight?: number;
  /** Value text next to each bar (default one decimal). */
  format?: (v: number) => string;
}

function px2(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/**
 * A horizontal (grouped) bar chart as inline SVG: one row per group with a bar per series, labels on the left,
 * values at the bar ends, a value axis with nice ticks and a zero line. All text is escaped; labels too long for
 * the label column are shortened with "…" and carry the full text as a tooltip.
 */
export function barChartSvg(groups: readonly BarGroup[], options: BarChartOptions = {}): string {
  const nSeries = Math.max(1, options.series?.length ?? 0, ...groups.map((g) => g.values.length));
  const barH = options.barHeight ?? (nSeries > 1 ? 9 : 14);
  const rowH = nSeries * barH + 6;
  const width = options.width ?? 720;
  const format = options.format ?? ((v: number) => v.toFixed(1));
  const maxChars = 34;
  const longest = Math.min(maxChars, Math.max(4, ...groups.map((g) => g.label.length)));
  const labelW = Math.round(longest * 6.3) + 8;
  const legend = nSeries > 1 && (options.series?.length ?? 0) > 0;
  const margin = {
    left: labelW + 8,
    right: 52,
    top: (options.title ? 28 : 8) + (legend ? 18 : 0),
    bottom: options.valueLabel ? 42 : 26,
  };
  const plotW = Math.max(40, width - margin.left - margin.right);
  const plotH = Math.max(1, groups.length) * rowH;
  const height = margin.top + plotH + margin.bottom;
  const color = (s: number): string => options.colors?.[s] ?? PALETTE[s % PALETTE.length]!;

  const finite = groups.flatMap((g) => g.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  let lo = Math.min(0, ...finite);
  let hi = Math.max(0, ...finite);
  if (lo === hi) hi = lo + 1;
  const ticks = niceTicks(lo, hi, 5);
  lo = Math.min(lo, ticks[0] ?? lo);
  hi = Math.max(hi, ticks[ticks.length - 1] ?? hi);
  const px = (v: number): number => margin.left + ((v - lo) / (hi - lo)) * plotW;

  const out: string[] = [];
  const aria = options.title ?? 'bar chart';
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ` +
      `role="img" aria-label="${escapeXml(aria)}" font-family="sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (options.title) {
    out.push(`<text x="8" y="18" font-size="13" font-weight="bold" fill="#222">${escapeXml(options.title)}</text>`);
  }
  if (legend) {
    let x = margin.left;
    const y = (options.title ? 28 : 8) + 10;
    options.series!.forEach((name, s) => {
      out.push(
        `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${escapeXml(color(s))}"/>` +
          `<text x="${x + 14}" y="${y}" fill="#222">${escapeXml(name)}</text>`,
      );
      x += 24 + Math.min(40, name.length) * 6.3;
    });
  }
  // Grid and value axis.
  out.push('<g stroke="#e5e5e5" stroke-width="1">');
  for (const t of ticks)
    out.push(`<line x1="${px2(px(t))}" x2="${px2(px(t))}" y1="${margin.top}" y2="${margin.top + plotH}"/>`);
  out.push('</g>');
  out.push('<g fill="#444">');
  for (const t of ticks)
    out.push(
      `<text x="${px2(px(t))}" y="${margin.top + plotH + 16}" text-anchor="middle">${escapeXml(formatTick(t))}</text>`,
    );
  out.push('</g>');
  if (options.valueLabel) {
    out.push(
      `<text x="${px2(margin.left + plotW / 2)}" y="${height - 8}" text-anchor="middle" fill="#222">` +
        `${escapeXml(options.valueLabel)}</text>`,
    );
  }
  // Bars.
  const valueSize = nSeries > 1 ? 9 : 10;
  groups.forEach((g, i) => {
    const top = margin.top + i * rowH + 3;
    const short = g.label.length > maxChars ? `${g.label.slice(0, maxChars - 1)}…` : g.label;
    out.push(`<g data-label="${escapeXml(g.label)}">`);
    out.push(
      `<text x="${labelW}" y="${px2(top + (nSeries * barH) / 2 + 4)}" text-anchor="end" fill="#222">` +
        `<title>${escapeXml(g.label)}</title>${escapeXml(short)}</text>`,
    );
    for (let s = 0; s < nSeries; s++) {
      const v = g.values[s];
      const y = top + s * barH;
      const ty = px2(y + barH / 2 + 3.5);
      if (v === null || v === undefined || !Number.isFinite(v)) {
        out.push(
          `<text x="${px2(px(0) + 4)}" y="${ty}" font-size="${valueSize}" fill="#999">` +
            `${escapeXml(g.missingText ?? '—')}</text>`,
        );
        continue;
      }
      const x0 = Math.min(px(0), px(v));
      const w = Math.abs(px(v) - px(0));
      const fill = nSeries === 1 && g.color ? g.color : color(s);
      const seriesName = options.series?.[s];
      const tip = `${g.label}${seriesName ? ` — ${seriesName}` : ''}: ${format(v)}`;
      out.push(
        `<rect x="${px2(x0)}" y="${px2(y)}" width="${px2(w)}" height="${px2(barH - 1)}" fill="${escapeXml(fill)}">` +
          `<title>${escapeXml(tip)}</title></rect>`,
      );
      const tx = v >= 0 ? px(v) + 3 : px(v) - 3;
      out.push(
        `<text x="${px2(tx)}" y="${ty}" font-size="${valueSize}" text-anchor="${v >= 0 ? 'start' : 'end'}" ` +
          `fill="#444">${escapeXml(format(v))}</text>`,
      );
    }
    out.push('</g>');
  });
  out.push(
    `<line x1="${px2(px(0))}" x2="${px2(px(0))}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#666" stroke-width="1"/>`,
  );
  out.push('</svg>');
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ HTML report

const META_TASK_COLORS: Readonly<Record<MetaTask, string>> = {
  classification: PALETTE[0]!,
  vqa: PALETTE[2]!,
  retrieval: PALETTE[3]!,
  grounding: PALETTE[4]!,
};
const UNKNOWN_COLOR = '#999999';

function htmlTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = `<tr>${header.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n${head}\n${body}\n</table>`;
}

const pct = (v: number | null): number | null => (v === null ? null : v * 100);

/**
 * Self-contained HTML report (no scripts, no external assets): settings with the ties policy, notes, inline SVG
 * bar charts (per dataset; per meta-task with IND / OOD / Overall beside the paper for MMEB), and the tables.
 */
export function renderResultsHtml(results: EvalResults, options: { metric?: string } = {}): string {
  const s = summarize(results, options);
  const bench = s.kind === 'mmeb' ? 'MMEB' : s.vidore ? 'ViDoRe-v2' : 'BEIR';
  const title = `${bench} evaluation: ${s.model}`;
  const valueLabel = `${s.metric} (%)`;
  const charts: string[] = [];
  const tables: string[] = [];

  if (s.kind === 'mmeb') {
    const groups: BarGroup[] = s.datasets.map((r) => ({
      label: r.known ? r.name : `${r.name} (unknown)`,
      values: [pct(r.value)],
      color: r.metaTask ? META_TASK_COLORS[r.metaTask] : UNKNOWN_COLOR,
      missingText: r.value === null ? 'failed' : '—',
    }));
    charts.push(barChartSvg(groups, { title: 'Per dataset', valueLabel }));
    const aggs = summaryAggregates(s);
    const refs = s.customTable ? [] : MMEB_PAPER_REFERENCE;
    const refValues = (i: number): number[] =>
      refs.map((r) => (i < 4 ? r.metaTasks[META_TASKS[i]!] : i === 4 ? r.ind : i === 5 ? r.ood : r.overall));
    charts.push(
      barChartSvg(
        aggs.map((a, i) => ({
          label: i < 4 ? META_TASK_NAMES[META_TASKS[i]!] : a.label,
          values: [pct(a.mean), ...refValues(i)],
        })),
        { title: 'Per meta-task, IND / OOD / Overall', series: [s.model, ...refs.map((r) => r.model)], valueLabel },
      ),
    );
    tables.push(
      '<h2>Aggregates</h2>',
      htmlTable(
        ['Aggregate', 'Datasets', s.model, ...refs.map((r) => r.model)],
        aggs.map((a, i) => [
          i < 4 ? META_TASK_NAMES[META_TASKS[i]!] : a.label,
          `${a.n}/${a.expected}`,
          formatPercent(a.mean),
          ...refValues(i).map((v) => v.toFixed(1)),
        ]),
      ),
      '<h2>Per dataset</h2>',
      htmlTable(
        ['Dataset', 'Meta-task', 'Split', valueLabel, 'Count', 'Status'],
        s.datasets.map((r) => [
          r.name,
          r.metaTask ? META_TASK_NAMES[r.metaTask] : '—',
          r.split ?? '—',
          formatPercent(r.value),
          String(r.count),
          statusOf(r),
        ]),
      ),
    );
    if (s.unknown.length > 0) {
      tables.push(
        '<h2>Unknown datasets (not in the MMEB table; not in any mean)</h2>',
        htmlTable(
          ['Dataset', valueLabel, 'Count'],
          s.unknown.map((r) => [r.name, formatPercent(r.value), String(r.count)]),
        ),
      );
    }
  } else {
    const refs = s.vidore ? VIDORE_PAPER_REFERENCE : [];
    const rows = [...s.datasets, null];
    charts.push(
      barChartSvg(
        rows.map((r) =>
          r === null
            ? { label: 'Average', values: [pct(s.average.mean), ...refs.map((ref) => ref.average)] }
            : {
                label: r.name,
                values: [pct(r.value), ...refs.map((ref) => (r.known ? (ref.tasks[r.name] ?? null) : null))],
                missingText: r.value === null ? 'failed' : '—',
              },
        ),
        { title: 'Per dataset', series: [s.model, ...refs.map((r) => r.model)], valueLabel },
      ),
    );
    tables.push(
      '<h2>Per dataset</h2>',
      htmlTable(
        ['Dataset', valueLabel, ...refs.map((r) => r.model), 'Count', 'Status'],
        [
          ...s.datasets.map((r) => [
            r.name,
            formatPercent(r.value),
            ...refs.map((ref) => (r.known ? (ref.tasks[r.name]?.toFixed(1) ?? '—') : '—')),
            String(r.count),
            r.value === null ? `failed: ${r.error ?? 'no value'}` : 'ok',
          ]),
          [
            `Average (${s.average.n}/${s.average.expected})`,
            formatPercent(s.average.mean),
            ...refs.map((r) => r.average.toFixed(1)),
            '',
            '',
          ],
        ],
      ),
    );
  }
  if (s.failed.length > 0) {
    tables.push(
      '<h2>Failed datasets (excluded from all means)</h2>',
      htmlTable(
        ['Dataset', 'Error'],
        s.failed.map((r) => [r.name, r.error ?? '']),
      ),
    );
  }
  const meta = [
    `Created: ${s.createdAt}`,
    `Metric: ${s.metric}, shown × 100; aggregates are unweighted means over datasets`,
    tiesLine(s.ties),
    ...settingLines(results).map((l) => `Setting ${l}`),
  ];
  const notes = s.notes.length
    ? `<div class="notes"><h2>Notes</h2>\n<ul>\n${s.notes.map((n) => `<li>${escapeXml(n)}</li>`).join('\n')}\n</ul></div>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 18px 0 6px; }
.sub { margin: 2px 0; color: #555; font-size: 13px; }
.notes { border-left: 4px solid #ff7f0e; background: #fff7ec; padding: 4px 12px; margin: 12px 0; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; background: #fff; }
th, td { text-align: left; padding: 3px 12px 3px 4px; border-bottom: 1px solid #e5e5e5; }
th { color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; background: #fff; }
</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
${meta.map((l) => `<p class="sub">${escapeXml(l)}</p>`).join('\n')}
${notes}
<div class="charts">
${charts.map((c) => `<figure>${c}</figure>`).join('\n')}
</div>
${tables.join('\n')}
</body>
</html>
`;
}

// ------------------------------------------------------------------------------------------------ files

/** Writes a file through a temporary sibling (flushed to disk) and a rename: readers see old or new, never half. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export interface WrittenReport {
  json: string;
  markdown: string;
  html: string;
}

/**
 * Writes `results.json` (the results, pretty JSON), `results.md` and `report.html` into `dir` (created if
 * needed), each atomically. The results are validated first (non-finite metrics are refused: a dataset that
 * could not be evaluated carries `error` instead), so nothing is written for invalid results.
 */
export function writeResults(dir: string, results: EvalResults, options: { metric?: string } = {}): WrittenReport {
  validateResults(results);
  const markdown = renderResultsMarkdown(results, options);
  const html = renderResultsHtml(results, options);
  mkdirSync(dir, { recursive: true });
  const paths: WrittenReport = {
    json: path.join(dir, 'results.json'),
    markdown: path.join(dir, 'results.md'),
    html: path.join(dir, 'report.html'),
  };
  writeFileAtomic(paths.json, `${JSON.stringify(results, null, 2)}\n`);
  writeFileAtomic(paths.markdown, markdown);
  writeFileAtomic(paths.html, html);
  return paths;
}

// ------------------------------------------------------------------------------------------------ comparison

export interface ComparisonRow {
  name: string;
  /** Meta-task name for an MMEB dataset, "Aggregate" for aggregate rows, "" otherwise. */
  group: string;
  a: number | null;
  b: number | null;
  /** b − a; null when either is missing. */
  delta: number | null;
  /** "only in A", "failed in B", "unknown (not in means)", "A 35/36, B 36/36 datasets", … */
  note: string;
}

export interface Comparison {
  kind: 'mmeb' | 'beir';
  labels: [string, string];
  runs: [{ model: string; createdAt: string; metric: string }, { model: string; createdAt: string; metric: string }];
  datasets: ComparisonRow[];
  aggregates: ComparisonRow[];
  notes: string[];
}

function row(name: string, group: string, a: number | null, b: number | null, note: string): ComparisonRow {
  return { name, group, a, b, delta: a !== null && b !== null ? b - a : null, note };
}

/**
 * Run B against run A (the baseline): both values and the delta b − a per dataset (matched by name, tolerant
 * of case and `-`/`_`) and per aggregate. Datasets present in only one run get a null value on the other side.
 */
export function compareResults(
  a: EvalResults,
  b: EvalResults,
  options: { metric?: string; labels?: [string, string] } = {},
): Comparison {
  if (a.kind !== b.kind) throw new Error(`compareResults: cannot compare "${a.kind}" with "${b.kind}" results`);
  const sa = summarize(a, options);
  const sb = summarize(b, options);
  const notes: string[] = [];
  if (sa.metric !== sb.metric) notes.push(`The runs use different metrics: A "${sa.metric}", B "${sb.metric}".`);
  const tiesA = sa.ties ?? 'not recorded';
  const tiesB = sb.ties ?? 'not recorded';
  notes.push(tiesA === tiesB ? tiesLine(sa.ties) + '.' : `Ties policies differ: A ${tiesA}, B ${tiesB}.`);
  let labels: [string, string] = options.labels ?? [a.model, b.model];
  if (labels[0] === labels[1]) labels = [`${labels[0]} (A)`, `${labels[1]} (B)`];

  // Union of datasets: known ones in table order (A's order of known rows is already table order), then unknown.
  const rowsA = new Map(sa.datasets.map((r) => [datasetKey(r.name), r]));
  const rowsB = new Map(sb.datasets.map((r) => [datasetKey(r.name), r]));
  const keys: string[] = [];
  const known = a.kind === 'mmeb' ? datasetTable(a).map((d) => d.name) : VIDORE_V2_TASKS;
  for (const n of known) if (rowsA.has(datasetKey(n)) || rowsB.has(datasetKey(n))) keys.push(datasetKey(n));
  for (const r of [...sa.datasets, ...sb.datasets]) {
    const k = datasetKey(r.name);
    if (!keys.includes(k)) keys.push(k);
  }
  const datasets = keys.map((k) => {
    const ra = rowsA.get(k);
    const rb = rowsB.get(k);
    const any = (ra ?? rb)!;
    const remarks: string[] = [];
    if (!ra) remarks.push('only in B');
    else if (ra.value === null) remarks.push('failed in A');
    if (!rb) remarks.push('only in A');
    else if (rb.value === null) remarks.push('failed in B');
    if (a.kind === 'mmeb' && !any.known) remarks.push('unknown (not in means)');
    return row(
      any.name,
      any.metaTask ? META_TASK_NAMES[any.metaTask] : '',
      ra?.value ?? null,
      rb?.value ?? null,
      remarks.join('; '),
    );
  });
  const aggA = summaryAggregates(sa);
  const aggB = summaryAggregates(sb);
  const aggregates = aggA.map((x, i) => {
    const y = aggB[i]!;
    const name = sa.kind === 'mmeb' && i < 4 ? META_TASK_NAMES[META_TASKS[i]!] : x.label;
    const note = x.n !== y.n || x.n !== x.expected ? `A ${x.n}/${x.expected}, B ${y.n}/${y.expected} datasets` : '';
    return row(name, 'Aggregate', x.mean, y.mean, note);
  });
  if (aggregates.some((r) => r.note !== ''))
    notes.push('Some aggregates are over different or incomplete dataset sets (see the Note column).');
  return {
    kind: a.kind,
    labels,
    runs: [
      { model: a.model, createdAt: a.createdAt, metric: sa.metric },
      { model: b.model, createdAt: b.createdAt, metric: sb.metric },
    ],
    datasets,
    aggregates,
    notes,
  };
}

/** Markdown tables of a comparison (aggregates, then per dataset); missing values as "—", Δ = B − A in points. */
export function renderComparisonMarkdown(cmp: Comparison): string {
  const [la, lb] = cmp.labels.map(escapeMarkdown) as [string, string];
  const out: string[] = [];
  out.push(`# Comparison: ${la} vs ${lb}`, '');
  cmp.runs.forEach((r, i) =>
    out.push(
      `- ${i === 0 ? 'A' : 'B'} = ${escapeMarkdown(cmp.labels[i]!)}: model ${escapeMarkdown(r.model)}, ` +
        `created ${escapeMarkdown(r.createdAt)}, metric ${escapeMarkdown(r.metric)}`,
    ),
  );
  out.push('- Values × 100; Δ = B − A in percentage points');
  if (cmp.notes.length > 0) {
    out.push('', '## Notes', '');
    for (const n of cmp.notes) out.push(`- ${escapeMarkdown(n)}`);
  }
  const cells = (r: ComparisonRow): string[] => [
    formatPercent(r.a),
    formatPercent(r.b),
    formatDelta(r.delta),
    escapeMarkdown(r.note),
  ];
  out.push('', '## Aggregates', '');
  out.push(
    mdTable(
      ['Aggregate', la, lb, 'Δ', 'Note'],
      cmp.aggregates.map((r) => [escapeMarkdown(r.name), ...cells(r)]),
    ),
  );
  out.push('', '## Per dataset', '');
  if (cmp.kind === 'mmeb') {
    out.push(
      mdTable(
        ['Dataset', 'Meta-task', la, lb, 'Δ', 'Note'],
        cmp.datasets.map((r) => [escapeMarkdown(r.name), r.group || '—', ...cells(r)]),
      ),
    );
  } else {
    out.push(
      mdTable(
        ['Dataset', la, lb, 'Δ', 'Note'],
        cmp.datasets.map((r) => [escapeMarkdown(r.name), ...cells(r)]),
      ),
    );
  }
  out.push('');
  return out.join('\n');
}
