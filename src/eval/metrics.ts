// Evaluation metrics (spec §4): MMEB Precision@1 with explicit tie policies, BEIR/trec_eval-compatible
// retrieval metrics (nDCG@k, recall@k, reciprocal rank@k, P@k) and unweighted aggregation helpers.
// Pure TypeScript, no tensor dependency.
//
// trec_eval conventions implemented here (read from usnistgov/trec_eval at commit de6a29f, the version that
// both pytrec_eval (cvangysel) and pytrec_eval-terrier bundle, and cross-checked against trec_eval 10.0):
//
// * Ranking (form_res_rels.c, comp_sim_docno): score descending; equal scores are ordered by
//   `strcmp(p2->docno, p1->docno)`, i.e. docno in DESCENDING byte-wise lexicographic order ("d9" before
//   "d10", "b" before "a"). strcmp on UTF-8 bytes equals Unicode code-point order, which we compare
//   explicitly (JavaScript's `<` compares UTF-16 code units and differs for astral characters).
//   The insertion order of the run is irrelevant. pytrec_eval pre-sorts with docno ascending, but trec_eval
//   re-sorts with the comparator above, which is a total order, so the descending rule is what counts.
// * Score precision: trec_eval 9.0.x stores the score as a C `float` (TEXT_RESULTS.sim / DOCNO_INFO.sim), so
//   pytrec_eval rounds every score to float32 before ranking; scores that differ only beyond float32
//   precision are ties broken by docno. Default `scorePrecision: 'float32'` reproduces that; trec_eval 10.0
//   switched to `double` (`scorePrecision: 'float64'`).
// * Relevance is an integer (pytrec_eval requires int, trec_eval uses atol). A document is relevant for
//   recall / P / reciprocal rank when rel >= relevanceLevel (default 1, pytrec_eval's default), so
//   relevance <= 0 is not relevant. Documents retrieved but absent from the qrels are non-relevant.
// * ndcg_cut (m_ndcg_cut.c): gain = rel for rel > 0 (independent of relevanceLevel), discount log2(rank + 1)
//   with 1-based rank; ideal DCG from ALL judged documents with rel > 0 of the query (retrieved or not),
//   sorted by rel descending and cut at k. If the ideal DCG is 0 the value is 0.
// * recall_k (m_recall.c) = relevant in top k / all relevant judged (0 when the query has none).
// * P_k (m_P.c) = relevant in top k / k, even if fewer than k documents were retrieved.
// * recip_rank_k: trec_eval's recip_rank has no cutoff; ours is recip_rank on the ranking truncated at k,
//   exactly `trec_eval -M k -m recip_rank` (the -M truncation happens after sorting). Same quantity as
//   BEIR/MTEB "MRR@k" except for their tie order. Named recip_rank_k to match trec_eval's measure name.
// * Which queries are averaged (trec_eval.c main loop, meas_avg.c; pytrec_eval evaluate()):
//   - run queries with no qrels at all are ignored by trec_eval/pytrec_eval → listed in `skipped`;
//   - queries in the qrels that are missing from the run: `trec_eval -c` scores them on an empty ranking
//     (all four measures 0) and averages over all qrels queries; pytrec_eval/BEIR/MTEB instead drop them.
//     Default `missingFromRun: 'zero'` (trec_eval -c); `'skip'` reproduces the BEIR/MTEB mean;
//   - queries in the qrels whose judgments are all non-relevant are NOT skipped by trec_eval or pytrec_eval:
//     they are evaluated and score 0 on every measure here, pulling the mean down (BEIR/MTEB average over
//     them too). Default `noRelevant: 'zero'` is that behaviour; `noRelevant: 'skip'` leaves them out of
//     the mean and lists them in `skipped` (the convention of some other toolkits, e.g. ranx).
//   A query with an empty judgment map is treated as absent from the qrels (trec_eval cannot express it).
//   If no query is counted, evaluateRun throws (trec_eval exits "No queries with both results and
//   relevance info").

/** How to score a tie at the top of an MMEB candidate list. */
export type TiePolicy = 'wrong' | 'reference' | { random: () => number };

/**
 * MMEB Precision@1 for one query: 1 if the positive candidate is ranked first, else 0.
 *
 * - `'wrong'` (default): correct only if the positive's score is strictly greater than every other score.
 * - `'reference'`: NumPy `argmax` semantics as in MoCa's `eval.py` (first maximum wins), so a tie at the top
 *   that includes an earlier-or-equal index counts for it; with the positive at index 0 a constant model
 *   scores 100%.
 * - `{ random }`: one of the tied maxima is drawn uniformly as `tied[floor(random() * tied.length)]` (tied
 *   indices in ascending order). `random` is called exactly once when two or more candidates share the
 *   maximum (whether or not the positive is among them) and never otherwise; it must return a value in [0, 1).
 *
 * Throws on an empty list, an out-of-range positiveIndex, or a NaN score (the error names the index).
 */
export function precisionAt1(scores: ArrayLike<number>, positiveIndex = 0, ties: TiePolicy = 'wrong'): 0 | 1 {
  const n = scores.length;
  if (n === 0) throw new RangeError('precisionAt1: empty candidate list');
  if (!Number.isInteger(positiveIndex) || positiveIndex < 0 || positiveIndex >= n) {
    throw new RangeError(`precisionAt1: positiveIndex ${positiveIndex} out of range for ${n} candidates`);
  }
  let max = -Infinity;
  let first = -1;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (Number.isNaN(s)) throw new RangeError(`precisionAt1: score at index ${i} is NaN`);
    if (first < 0 || s > max) {
      max = s;
      first = i;
      count = 1;
    } else if (s === max) {
      count++;
    }
  }
  if (ties === 'reference') return first === positiveIndex ? 1 : 0;
  if (ties === 'wrong') return count === 1 && first === positiveIndex ? 1 : 0;
  if (count === 1) return first === positiveIndex ? 1 : 0;
  const r = ties.random();
  if (!(r >= 0 && r < 1)) throw new RangeError(`precisionAt1: random() returned ${r}, expected a value in [0, 1)`);
  const pick = Math.floor(r * count);
  let seen = 0;
  for (let i = first; i < n; i++) {
    if (scores[i] === max) {
      if (seen === pick) return i === positiveIndex ? 1 : 0;
      seen++;
    }
  }
  throw new Error('precisionAt1: internal error (tied maximum not found)');
}

// ---------------------------------------------------------------------------------------------------------
// trec_eval-compatible retrieval metrics

/** Scores of retrieved documents for one query: docId → score. */
export type DocScores = ReadonlyMap<string, number>;
/** Graded judgments for one query: docId → integer relevance. */
export type Judgments = ReadonlyMap<string, number>;
/** A run: queryId → (docId → score). */
export type Run = ReadonlyMap<string, DocScores>;
/** Qrels: queryId → (docId → integer relevance). */
export type Qrels = ReadonlyMap<string, Judgments>;

export interface RankingOptions {
  /** Round scores to float32 before ranking like pytrec_eval / trec_eval 9.0 (default), or keep doubles (trec_eval 10.0). */
  scorePrecision?: 'float32' | 'float64';
}

export interface QueryMetricOptions extends RankingOptions {
  /** Minimum relevance for a document to count as relevant in recall / P / reciprocal rank (default 1). */
  relevanceLevel?: number;
}

export interface EvaluateRunOptions extends QueryMetricOptions {
  /** Cutoffs: positive integers without duplicates. */
  ks: readonly number[];
  /** Queries in the qrels but not in the run: score 0 and count (trec_eval -c, default) or skip (pytrec_eval/BEIR/MTEB). */
  missingFromRun?: 'zero' | 'skip';
  /** Queries whose judgments are all non-relevant: score 0 and count (trec_eval/pytrec_eval, default) or skip. */
  noRelevant?: 'zero' | 'skip';
}

export interface RunEvaluation {
  /** Per counted query: metric name (`ndcg_cut_k`, `recall_k`, `recip_rank_k`, `P_k`) → value. */
  perQuery: Record<string, Record<string, number>>;
  /** Unweighted mean over the counted queries. */
  mean: Record<string, number>;
  /** Number of queries averaged. */
  counted: number;
  /** Queries left out of the mean: qrels queries skipped by option (qrels order), then run queries without qrels (run order). */
  skipped: string[];
}

/** Order two strings like C strcmp on their UTF-8 bytes (= Unicode code-point order). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    // A surrogate encodes a code point >= U+10000, above every BMP unit in U+E000..U+FFFF.
    if (xs && !ys && y >= 0xe000) return 1;
    if (ys && !xs && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}

function roundScore(score: number, precision: 'float32' | 'float64'): number {
  return precision === 'float32' ? Math.fround(score) : score;
}

/**
 * Documents of one query in trec_eval order: score descending (after float32 rounding by default), ties by
 * docId descending in code-point (strcmp) order. Throws on a NaN score.
 */
export function trecEvalRanking(docScores: DocScores, options: RankingOptions = {}): string[] {
  const precision = options.scorePrecision ?? 'float32';
  const entries: { id: string; score: number }[] = [];
  for (const [id, score] of docScores) {
    if (typeof score !== 'number' || Number.isNaN(score)) {
      throw new RangeError(`trecEvalRanking: score of document '${id}' is not a number (${String(score)})`);
    }
    entries.push({ id, score: roundScore(score, precision) });
  }
  entries.sort((p, q) => (p.score > q.score ? -1 : p.score < q.score ? 1 : compareCodePoints(q.id, p.id)));
  return entries.map((e) => e.id);
}

function checkRelevance(judgments: Judgments): void {
  for (const [id, rel] of judgments) {
    if (!Number.isInteger(rel)) {
      throw new RangeError(`qrels: relevance of document '${id}' must be an integer, got ${String(rel)}`);
    }
  }
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`cutoff k must be a positive integer, got ${k}`);
}

/** The relevance of each ranked document (0 for unjudged), precomputed once per query. */
interface QueryRels {
  ranked: number[];
  /** Positive relevance values of all judged documents, descending (for the ideal DCG). */
  idealGains: number[];
  /** Number of judged documents with rel >= relevanceLevel. */
  numRel: number;
}

function prepare(docScores: DocScores | undefined, judgments: Judgments, options: QueryMetricOptions): QueryRels {
  checkRelevance(judgments);
  const level = options.relevanceLevel ?? 1;
  if (!Number.isInteger(level) || level < 1) {
    throw new RangeError(`relevanceLevel must be a positive integer, got ${level}`);
  }
  const order = docScores ? trecEvalRanking(docScores, options) : [];
  const ranked = order.map((id) => judgments.get(id) ?? 0);
  const idealGains: number[] = [];
  let numRel = 0;
  for (const rel of judgments.values()) {
    if (rel > 0) idealGains.push(rel);
    if (rel >= level) numRel++;
  }
  idealGains.sort((a, b) => b - a);
  return { ranked, idealGains, numRel };
}

function ndcgOf(q: QueryRels, k: number): number {
  let dcg = 0;
  for (let i = 0; i < Math.min(k, q.ranked.length); i++) {
    const gain = q.ranked[i]!;
    if (gain > 0) dcg += gain / Math.log2(i + 2);
  }
  let idcg = 0;
  for (let i = 0; i < Math.min(k, q.idealGains.length); i++) idcg += q.idealGains[i]! / Math.log2(i + 2);
  return idcg > 0 ? dcg / idcg : 0;
}

function relevantInTop(q: QueryRels, k: number, level: number): number {
  let hits = 0;
  for (let i = 0; i < Math.min(k, q.ranked.length); i++) if (q.ranked[i]! >= level) hits++;
  return hits;
}

function recallOf(q: QueryRels, k: number, level: number): number {
  return q.numRel === 0 ? 0 : relevantInTop(q, k, level) / q.numRel;
}

function precisionOf(q: QueryRels, k: number, level: number): number {
  return relevantInTop(q, k, level) / k;
}

function recipRankOf(q: QueryRels, k: number, level: number): number {
  for (let i = 0; i < Math.min(k, q.ranked.length); i++) if (q.ranked[i]! >= level) return 1 / (i + 1);
  return 0;
}

/** trec_eval `ndcg_cut.k` for one query (see the file header for the conventions). */
export function ndcgAtK(
  docScores: DocScores,
  judgments: Judgments,
  k: number,
  options: QueryMetricOptions = {},
): number {
  checkK(k);
  return ndcgOf(prepare(docScores, judgments, options), k);
}

/** trec_eval `recall.k` for one query: relevant in the top k / all relevant judged (0 if none). */
export function recallAtK(
  docScores: DocScores,
  judgments: Judgments,
  k: number,
  options: QueryMetricOptions = {},
): number {
  checkK(k);
  return recallOf(prepare(docScores, judgments, options), k, options.relevanceLevel ?? 1);
}

/** Reciprocal rank of the first relevant document within the top k (0 if none) = `trec_eval -M k -m recip_rank`. */
export function mrrAtK(
  docScores: DocScores,
  judgments: Judgments,
  k: number,
  options: QueryMetricOptions = {},
): number {
  checkK(k);
  return recipRankOf(prepare(docScores, judgments, options), k, options.relevanceLevel ?? 1);
}

/** trec_eval `P.k` for one query: relevant in the top k / k (missing ranks count as non-relevant). */
export function precisionAtK(
  docScores: DocScores,
  judgments: Judgments,
  k: number,
  options: QueryMetricOptions = {},
): number {
  checkK(k);
  return precisionOf(prepare(docScores, judgments, options), k, options.relevanceLevel ?? 1);
}

/** Metric names produced by evaluateRun for the cutoff k. */
export function metricNames(k: number): string[] {
  return [`ndcg_cut_${k}`, `recall_${k}`, `recip_rank_${k}`, `P_${k}`];
}

/**
 * Evaluates a run against qrels at the cutoffs `ks` with trec_eval semantics (file header). Metric names per
 * cutoff k: `ndcg_cut_k`, `recall_k`, `recip_rank_k`, `P_k`.
 */
export function evaluateRun(run: Run, qrels: Qrels, options: EvaluateRunOptions): RunEvaluation {
  const ks = options.ks;
  if (ks.length === 0) throw new RangeError('evaluateRun: ks is empty');
  for (const k of ks) checkK(k);
  if (new Set(ks).size !== ks.length) throw new RangeError(`evaluateRun: duplicate cutoffs in [${ks.join(', ')}]`);
  const level = options.relevanceLevel ?? 1;
  const missingFromRun = options.missingFromRun ?? 'zero';
  const noRelevant = options.noRelevant ?? 'zero';

  const perQuery = new Map<string, Record<string, number>>();
  const skipped: string[] = [];
  for (const [qid, judgments] of qrels) {
    if (judgments.size === 0) continue; // not a qrels query for trec_eval; reported below if in the run
    const docScores = run.get(qid);
    if (docScores === undefined && missingFromRun === 'skip') {
      skipped.push(qid);
      continue;
    }
    const q = prepare(docScores, judgments, options);
    if (q.idealGains.length === 0 && noRelevant === 'skip') {
      skipped.push(qid);
      continue;
    }
    const values: [string, number][] = [];
    for (const k of ks) {
      values.push([`ndcg_cut_${k}`, ndcgOf(q, k)]);
      values.push([`recall_${k}`, recallOf(q, k, level)]);
      values.push([`recip_rank_${k}`, recipRankOf(q, k, level)]);
      values.push([`P_${k}`, precisionOf(q, k, level)]);
    }
    perQuery.set(qid, Object.fromEntries(values));
  }
  for (const qid of run.keys()) {
    const judgments = qrels.get(qid);
    if (judgments === undefined || judgments.size === 0) skipped.push(qid);
  }
  const counted = perQuery.size;
  if (counted === 0) throw new Error('evaluateRun: no queries with both results and relevance info to average');

  const names = ks.flatMap(metricNames);
  const sums = new Map<string, number>(names.map((name) => [name, 0]));
  for (const values of perQuery.values()) for (const name of names) sums.set(name, sums.get(name)! + values[name]!);
  return {
    perQuery: Object.fromEntries(perQuery),
    mean: Object.fromEntries(names.map((name) => [name, sums.get(name)! / counted])),
    counted,
    skipped,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Aggregation (MMEB reports unweighted means per meta-task, IND, OOD and overall)

/** Unweighted arithmetic mean (left-to-right sum / count). Throws on an empty list or a NaN value. */
export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) throw new RangeError('mean: empty list');
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) throw new RangeError(`mean: value at index ${i} is NaN`);
    sum += v;
  }
  return sum / values.length;
}

export interface DatasetScore {
  dataset: string;
  score: number;
}

export interface GroupAggregate {
  /** Unweighted mean of the group's dataset scores. */
  mean: number;
  count: number;
  /** Datasets in input order. */
  datasets: string[];
}

export interface GroupedAggregation {
  /** Per group (in order of first appearance): mean, count and member datasets. */
  groups: Record<string, GroupAggregate>;
  /** Datasets for which groupOf returned undefined, in input order (kept, never dropped silently). */
  unknown: string[];
  /** Unweighted mean over every result, unknown-group datasets included. */
  overall: number;
}

/**
 * Groups dataset scores with `groupOf` (e.g. meta-task or IND/OOD) and averages each group without weights.
 * Datasets with an unknown group are listed in `unknown` and still contribute to `overall`.
 * Throws on an empty input, a duplicate dataset name, or a NaN score.
 */
export function aggregateByGroup(
  results: readonly DatasetScore[],
  groupOf: (dataset: string) => string | undefined,
): GroupedAggregation {
  if (results.length === 0) throw new RangeError('aggregateByGroup: no results');
  const seen = new Set<string>();
  const members = new Map<string, DatasetScore[]>();
  const unknown: string[] = [];
  for (const r of results) {
    if (seen.has(r.dataset)) throw new RangeError(`aggregateByGroup: duplicate dataset '${r.dataset}'`);
    seen.add(r.dataset);
    if (Number.isNaN(r.score)) throw new RangeError(`aggregateByGroup: score of '${r.dataset}' is NaN`);
    const group = groupOf(r.dataset);
    if (group === undefined) {
      unknown.push(r.dataset);
      continue;
    }
    const list = members.get(group);
    if (list) list.push(r);
    else members.set(group, [r]);
  }
  const groups = Object.fromEntries(
    [...members].map(([group, list]): [string, GroupAggregate] => [
      group,
      { mean: mean(list.map((r) => r.score)), count: list.length, datasets: list.map((r) => r.dataset) },
    ]),
  );
  return { groups, unknown, overall: mean(results.map((r) => r.score)) };
}
