// Evaluation metrics against hand-computed values: MMEB P@1 tie policies, trec_eval-compatible nDCG / recall /
// reciprocal rank / P at cutoffs (tie order, float32 scores, skipped and missing queries), aggregation.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  aggregateByGroup,
  compareCodePoints,
  evaluateRun,
  mean,
  mrrAtK,
  ndcgAtK,
  precisionAt1,
  precisionAtK,
  recallAtK,
  trecEvalRanking,
} from '../../src/eval/metrics.js';

const close = (actual: number, expected: number, eps = 1e-12): void =>
  assert.ok(Math.abs(actual - expected) <= eps, `expected ${expected}, got ${actual}`);

/** mulberry32: a small seeded PRNG returning values in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An RNG that returns the given values in order and counts its calls. */
function scripted(...values: number[]): { random: () => number; calls: () => number } {
  let i = 0;
  return { random: () => values[i++]!, calls: () => i };
}

describe('precisionAt1', () => {
  test('clear winner and clear loser are policy-independent', () => {
    for (const ties of ['wrong', 'reference', { random: () => 0.5 }] as const) {
      assert.equal(precisionAt1([0.9, 0.5, 0.1], 0, ties), 1);
      assert.equal(precisionAt1([0.5, 0.9, 0.1], 0, ties), 0);
    }
    assert.equal(precisionAt1(Float32Array.from([0.1, 0.2, 0.9]), 2), 1);
  });

  test('default policy is wrong', () => {
    assert.equal(precisionAt1([0.3, 0.3]), 0);
    assert.equal(precisionAt1([0.4, 0.3]), 1);
  });

  test('constant scores: reference → 1 (a constant model scores 100%), wrong → 0, random → the seeded draw', () => {
    const scores = [0.3, 0.3, 0.3, 0.3];
    assert.equal(precisionAt1(scores, 0, 'reference'), 1);
    assert.equal(precisionAt1(scores, 0, 'wrong'), 0);
    // reference is argmax (first max wins): the positive at index 2 does not win a 4-way tie
    assert.equal(precisionAt1(scores, 2, 'reference'), 0);

    // Scripted draws: tied = [0, 1, 2, 3], pick = floor(r * 4).
    assert.equal(precisionAt1(scores, 0, { random: () => 0.1 }), 1); // floor(0.4) = 0 → the positive
    assert.equal(precisionAt1(scores, 0, { random: () => 0.3 }), 0); // floor(1.2) = 1
    assert.equal(precisionAt1(scores, 3, { random: () => 0.99 }), 1); // floor(3.96) = 3

    // Seeded: replay the same stream independently and compare query by query.
    const policyRng = mulberry32(42);
    const replay = mulberry32(42);
    let correct = 0;
    for (let q = 0; q < 200; q++) {
      const expected = Math.floor(replay() * 4) === 0 ? 1 : 0;
      const got = precisionAt1(scores, 0, { random: policyRng });
      assert.equal(got, expected, `query ${q}`);
      correct += got;
    }
    assert.ok(correct > 20 && correct < 80, `about a quarter correct, got ${correct}/200`);
  });

  test('partial tie at the top that includes the positive', () => {
    const scores = [0.7, 0.2, 0.7];
    assert.equal(precisionAt1(scores, 0, 'reference'), 1);
    assert.equal(precisionAt1(scores, 0, 'wrong'), 0);
    // tied = [0, 2]: r < 0.5 picks index 0, r >= 0.5 picks index 2
    assert.equal(precisionAt1(scores, 0, { random: () => 0.49 }), 1);
    assert.equal(precisionAt1(scores, 0, { random: () => 0.5 }), 0);
    assert.equal(precisionAt1(scores, 2, { random: () => 0.5 }), 1);
    assert.equal(precisionAt1(scores, 2, 'reference'), 0);
  });

  test('tie at the top without the positive: 0 for every policy; random consumes one draw', () => {
    const rng = scripted(0, 0.9);
    assert.equal(precisionAt1([0.1, 0.5, 0.5], 0, rng), 0);
    assert.equal(rng.calls(), 1);
    assert.equal(precisionAt1([0.1, 0.5, 0.5], 0, 'reference'), 0);
    // no tie → no draw
    assert.equal(precisionAt1([0.9, 0.5, 0.5], 0, rng), 1);
    assert.equal(rng.calls(), 1);
  });

  test('errors: NaN names the index, empty list, bad positive index, bad RNG value', () => {
    assert.throws(() => precisionAt1([0.1, Number.NaN, 0.3]), /index 1 is NaN/);
    assert.throws(() => precisionAt1([Number.NaN], 0, 'reference'), /index 0 is NaN/);
    assert.throws(() => precisionAt1([]), /empty/);
    assert.throws(() => precisionAt1([1, 2], 2), /positiveIndex 2 out of range/);
    assert.throws(() => precisionAt1([1, 1], 0, { random: () => 1 }), /random\(\) returned 1/);
  });

  test('infinite scores are ordinary values', () => {
    assert.equal(precisionAt1([Infinity, 1, -Infinity]), 1);
    assert.equal(precisionAt1([-Infinity, -Infinity], 0, 'reference'), 1);
    assert.equal(precisionAt1([-Infinity, -Infinity], 0, 'wrong'), 0);
  });
});

describe('trec_eval ranking', () => {
  test('ties by docId descending, whatever the insertion order', () => {
    const a = new Map([
      ['d_a', 0.5],
      ['d_b', 0.5],
      ['d_c', 0.5],
      ['top', 0.9],
    ]);
    const b = new Map([...a].reverse());
    assert.deepEqual(trecEvalRanking(a), ['top', 'd_c', 'd_b', 'd_a']);
    assert.deepEqual(trecEvalRanking(b), ['top', 'd_c', 'd_b', 'd_a']);
    // strcmp is byte-wise, not numeric: "d9" > "d10", so d9 ranks first among ties
    assert.deepEqual(
      trecEvalRanking(
        new Map([
          ['d10', 1],
          ['d9', 1],
          ['d100', 1],
        ]),
      ),
      ['d9', 'd100', 'd10'],
    );
  });

  test('docIds compare in code-point (UTF-8 byte) order, not UTF-16 order', () => {
    const emoji = '\u{1F600}'; // U+1F600, UTF-16 starts with 0xD83D
    const fullwidth = '\uFF01'; // U+FF01
    assert.ok(compareCodePoints(emoji, fullwidth) > 0);
    assert.ok(emoji < fullwidth); // JavaScript's own order would be the opposite
    assert.deepEqual(
      trecEvalRanking(
        new Map([
          [fullwidth, 1],
          [emoji, 1],
        ]),
      ),
      [emoji, fullwidth],
    );
    assert.ok(compareCodePoints('ab', 'abc') < 0);
    assert.equal(compareCodePoints('x', 'x'), 0);
  });

  test('scores are float32 by default (pytrec_eval), float64 on request (trec_eval 10)', () => {
    // 1 + 1e-10 rounds to 1 in float32 → tie → "d_b" > "d_a" ranks first
    const run = new Map([
      ['d_a', 1 + 1e-10],
      ['d_b', 1],
    ]);
    assert.deepEqual(trecEvalRanking(run), ['d_b', 'd_a']);
    assert.deepEqual(trecEvalRanking(run, { scorePrecision: 'float64' }), ['d_a', 'd_b']);
  });

  test('a NaN score is an error naming the document', () => {
    assert.throws(() => trecEvalRanking(new Map([['bad', Number.NaN]])), /'bad'/);
  });
});

describe('per-query metrics', () => {
  // Graded example. Qrels: d1=3, d2=2, d3=1, d4=0, d5=2 (d5 is never retrieved).
  // Run (descending score): d3 0.9, d1 0.8, d9 0.7 (unjudged), d2 0.6, d4 0.5.
  const qrels = new Map([
    ['d1', 3],
    ['d2', 2],
    ['d3', 1],
    ['d4', 0],
    ['d5', 2],
  ]);
  const run = new Map([
    ['d4', 0.5],
    ['d9', 0.7],
    ['d1', 0.8],
    ['d3', 0.9],
    ['d2', 0.6],
  ]);
  const l2 = Math.log2;

  test('nDCG@5 with graded relevance', () => {
    // DCG@5  = 1/log2(2) + 3/log2(3) + 0/log2(4) + 2/log2(5) + 0/log2(6)
    //        = 1 + 1.892789 + 0 + 0.861353 + 0                       = 3.754142
    // IDCG@5 = ideal order of all judged relevant docs [3, 2, 2, 1] (d1, d2, d5, d3):
    //        = 3/log2(2) + 2/log2(3) + 2/log2(4) + 1/log2(5)
    //        = 3 + 1.261860 + 1 + 0.430677                           = 5.692536
    // nDCG@5 = 3.754142 / 5.692536                                     = 0.659485
    const dcg = 1 + 3 / l2(3) + 2 / l2(5);
    const idcg = 3 + 2 / l2(3) + 2 / l2(4) + 1 / l2(5);
    close(ndcgAtK(run, qrels, 5), dcg / idcg);
    close(ndcgAtK(run, qrels, 5), 0.6594850403848089);
    // k = 10 changes nothing (5 retrieved, 4 relevant judged)
    close(ndcgAtK(run, qrels, 10), dcg / idcg);
  });

  test('nDCG@2 cuts both DCG and the ideal DCG', () => {
    // DCG@2 = 1 + 3/log2(3) = 2.892789; IDCG@2 = 3 + 2/log2(3) = 4.261860; nDCG@2 = 0.678762
    close(ndcgAtK(run, qrels, 2), (1 + 3 / l2(3)) / (3 + 2 / l2(3)));
    close(ndcgAtK(run, qrels, 2), 0.6787622294601761);
  });

  test('a relevant doc that is not retrieved lowers nDCG through the ideal DCG', () => {
    const withoutD5 = new Map([...qrels].filter(([id]) => id !== 'd5'));
    // Same DCG@5 = 3.754142; IDCG@5 over [3, 2, 1] = 3 + 2/log2(3) + 1/log2(4) = 4.761860; nDCG = 0.788377
    close(ndcgAtK(run, withoutD5, 5), (1 + 3 / l2(3) + 2 / l2(5)) / (3 + 2 / l2(3) + 1 / l2(4)));
    close(ndcgAtK(run, withoutD5, 5), 0.7883773914853737);
    assert.ok(ndcgAtK(run, qrels, 5) < ndcgAtK(run, withoutD5, 5));
  });

  test('recall@k, P@k and reciprocal rank@k', () => {
    // Relevant (rel >= 1): d1, d2, d3, d5 → 4. Ranked rels: [1, 3, 0(unjudged), 2, 0].
    close(recallAtK(run, qrels, 1), 1 / 4);
    close(recallAtK(run, qrels, 3), 2 / 4);
    close(recallAtK(run, qrels, 5), 3 / 4);
    close(precisionAtK(run, qrels, 1), 1);
    close(precisionAtK(run, qrels, 3), 2 / 3);
    close(precisionAtK(run, qrels, 5), 3 / 5);
    close(precisionAtK(run, qrels, 10), 3 / 10); // missing ranks count as non-relevant
    close(mrrAtK(run, qrels, 1), 1);

    // First relevant at rank 2: x (unjudged), a (rel 1), y (rel 0), b (rel 2)
    const run2 = new Map([
      ['x', 4],
      ['a', 3],
      ['y', 2],
      ['b', 1],
    ]);
    const qrels2 = new Map([
      ['a', 1],
      ['b', 2],
      ['y', 0],
      ['z', 1],
    ]);
    close(mrrAtK(run2, qrels2, 1), 0);
    close(mrrAtK(run2, qrels2, 2), 1 / 2);
    close(mrrAtK(run2, qrels2, 10), 1 / 2);
    close(recallAtK(run2, qrels2, 2), 1 / 3);
    close(recallAtK(run2, qrels2, 4), 2 / 3);
    close(precisionAtK(run2, qrels2, 4), 2 / 4);
    // relevanceLevel 2: only b counts for recall / P / RR; nDCG gains are unaffected
    close(recallAtK(run2, qrels2, 4, { relevanceLevel: 2 }), 1);
    close(mrrAtK(run2, qrels2, 4, { relevanceLevel: 2 }), 1 / 4);
    close(precisionAtK(run2, qrels2, 4, { relevanceLevel: 2 }), 1 / 4);
    close(ndcgAtK(run2, qrels2, 4, { relevanceLevel: 2 }), ndcgAtK(run2, qrels2, 4));
  });

  test('tied scores are resolved by docId descending, as trec_eval does', () => {
    // Three docs at 0.5; only d_a relevant. trec_eval order: d_c, d_b, d_a → d_a at rank 3.
    const tied = new Map([
      ['d_a', 0.5],
      ['d_b', 0.5],
      ['d_c', 0.5],
    ]);
    const rel = new Map([['d_a', 1]]);
    close(mrrAtK(tied, rel, 10), 1 / 3);
    close(ndcgAtK(tied, rel, 5), 1 / l2(4) / 1); // DCG = 1/log2(3+1) = 0.5, IDCG = 1
    close(ndcgAtK(tied, rel, 2), 0);
    close(precisionAtK(tied, rel, 1), 0);
    // With d_c relevant instead, it is first
    close(mrrAtK(tied, new Map([['d_c', 1]]), 1), 1);
  });

  test('invalid inputs', () => {
    assert.throws(() => ndcgAtK(run, qrels, 0), /positive integer/);
    assert.throws(() => recallAtK(run, qrels, 2.5), /positive integer/);
    assert.throws(() => ndcgAtK(run, new Map([['d1', 1.5]]), 5), /must be an integer/);
    assert.throws(() => recallAtK(run, qrels, 5, { relevanceLevel: 0 }), /relevanceLevel/);
  });
});

describe('evaluateRun', () => {
  const runOf = (entries: Record<string, Record<string, number>>): Map<string, Map<string, number>> =>
    new Map(Object.entries(entries).map(([q, docs]) => [q, new Map(Object.entries(docs))]));

  // q1: rels a=2, b=1; ranking a, x, b → DCG@5 = 2 + 1/log2(4) = 2.5, IDCG@5 = 2 + 1/log2(3) = 2.630930
  // q2: only non-relevant judgments (c=0) → every measure 0 (trec_eval evaluates it)
  // q3: in the qrels, missing from the run → 0 with trec_eval -c semantics
  // q9: in the run, no qrels → ignored
  const qrels = runOf({ q1: { a: 2, b: 1 }, q2: { c: 0 }, q3: { d: 1 } });
  const run = runOf({ q1: { a: 0.9, x: 0.8, b: 0.7 }, q2: { c: 0.9 }, q9: { a: 1 } });
  const ndcgQ1 = (2 + 1 / Math.log2(4)) / (2 + 1 / Math.log2(3));

  test('defaults: no-relevant queries count as 0, missing-from-run count as 0, run-only queries skipped', () => {
    const r = evaluateRun(run, qrels, { ks: [1, 5] });
    assert.equal(r.counted, 3);
    assert.deepEqual(r.skipped, ['q9']);
    assert.deepEqual(Object.keys(r.perQuery), ['q1', 'q2', 'q3']);
    const q1 = r.perQuery['q1']!;
    assert.deepEqual(Object.keys(q1), [
      'ndcg_cut_1',
      'recall_1',
      'recip_rank_1',
      'P_1',
      'ndcg_cut_5',
      'recall_5',
      'recip_rank_5',
      'P_5',
    ]);
    close(q1['ndcg_cut_1']!, 1); // DCG@1 = IDCG@1 = 2
    close(q1['ndcg_cut_5']!, ndcgQ1);
    close(q1['recall_1']!, 1 / 2);
    close(q1['recall_5']!, 1);
    close(q1['recip_rank_5']!, 1);
    close(q1['P_1']!, 1);
    close(q1['P_5']!, 2 / 5);
    for (const q of ['q2', 'q3']) for (const v of Object.values(r.perQuery[q]!)) assert.equal(v, 0);
    close(r.mean['ndcg_cut_5']!, ndcgQ1 / 3);
    close(r.mean['recall_5']!, 1 / 3);
    close(r.mean['P_5']!, 2 / 5 / 3);
    close(r.mean['recip_rank_1']!, 1 / 3);
  });

  test('noRelevant: skip leaves the no-relevant query out of the mean', () => {
    const r = evaluateRun(run, qrels, { ks: [5], noRelevant: 'skip' });
    assert.equal(r.counted, 2);
    assert.deepEqual(r.skipped, ['q2', 'q9']);
    assert.equal(r.perQuery['q2'], undefined);
    close(r.mean['ndcg_cut_5']!, ndcgQ1 / 2);
  });

  test('missingFromRun: skip reproduces the pytrec_eval/BEIR mean', () => {
    const r = evaluateRun(run, qrels, { ks: [5], missingFromRun: 'skip', noRelevant: 'skip' });
    assert.equal(r.counted, 1);
    assert.deepEqual(r.skipped, ['q2', 'q3', 'q9']);
    close(r.mean['ndcg_cut_5']!, ndcgQ1);
  });

  test('matches trec_eval 10.0 (`-q -c`, float64 scores) on a mixed fixture', () => {
    // Output of `trec_eval -q -c -m ndcg_cut.2,5 -m recall.1,3,5 -m P.1,3,5,10 -m recip_rank` (and `-M 1 -m
    // recip_rank` for recip_rank_1) built from usnistgov/trec_eval f425365, printed to 4 decimals. The
    // fixture joins the cases above: g (graded), t (three-way tie), u (d9/d100/d10 tie), f (scores equal in
    // float32 only), q1, q2 (no relevant), q3 (missing from run), q9 (no qrels).
    const fixtureQrels = runOf({
      g: { d1: 3, d2: 2, d3: 1, d4: 0, d5: 2 },
      t: { d_a: 1 },
      q1: { a: 2, b: 1 },
      q2: { c: 0 },
      q3: { d: 1 },
      u: { d10: 1 },
      f: { d_a: 1 },
    });
    const fixtureRun = runOf({
      g: { d4: 0.5, d9: 0.7, d1: 0.8, d3: 0.9, d2: 0.6 },
      t: { d_a: 0.5, d_b: 0.5, d_c: 0.5 },
      q1: { a: 0.9, x: 0.8, b: 0.7 },
      q2: { c: 0.9 },
      q9: { a: 1 },
      u: { d10: 1, d9: 1, d100: 1 },
      f: { d_a: 1.0000000001, d_b: 1 },
    });
    const r = evaluateRun(fixtureRun, fixtureQrels, { ks: [1, 2, 3, 5, 10], scorePrecision: 'float64' });
    assert.equal(r.counted, 7);
    assert.deepEqual(r.skipped, ['q9']);
    const trecEval: Record<string, number> = {
      ndcg_cut_2: 0.3484,
      ndcg_cut_5: 0.5157,
      recall_1: 0.25,
      recall_3: 0.6429,
      recall_5: 0.6786,
      P_1: 0.4286,
      P_3: 0.3333,
      P_5: 0.2286,
      P_10: 0.1143,
      recip_rank_1: 0.4286,
      recip_rank_10: 0.5238, // every query retrieves < 10 docs, so this is plain recip_rank
    };
    for (const [name, value] of Object.entries(trecEval)) close(r.mean[name]!, value, 5e-5);
    const perQuery: Record<string, [number, number]> = {
      g: [0.6788, 0.6595],
      t: [0, 0.5],
      u: [0, 0.5],
      q1: [0.7602, 0.9502],
      f: [1, 1],
    };
    for (const [q, [n2, n5]] of Object.entries(perQuery)) {
      close(r.perQuery[q]!['ndcg_cut_2']!, n2, 5e-5);
      close(r.perQuery[q]!['ndcg_cut_5']!, n5, 5e-5);
    }
    // pytrec_eval (trec_eval 9.0.x, float scores) would tie f's documents and put d_b first:
    const f32 = evaluateRun(fixtureRun, fixtureQrels, { ks: [1] });
    assert.equal(f32.perQuery['f']!['P_1'], 0);
  });

  test('errors: bad cutoffs, nothing to average', () => {
    assert.throws(() => evaluateRun(run, qrels, { ks: [] }), /ks is empty/);
    assert.throws(() => evaluateRun(run, qrels, { ks: [5, 5] }), /duplicate cutoffs/);
    assert.throws(() => evaluateRun(run, qrels, { ks: [0] }), /positive integer/);
    assert.throws(() => evaluateRun(runOf({ q9: { a: 1 } }), runOf({}), { ks: [5] }), /no queries/);
  });
});

describe('aggregation', () => {
  test('mean', () => {
    close(mean([1, 2, 4]), 7 / 3);
    close(mean(Float64Array.from([0.5])), 0.5);
    assert.throws(() => mean([]), /empty/);
    assert.throws(() => mean([1, Number.NaN]), /index 1/);
  });

  test('aggregateByGroup keeps unknown datasets', () => {
    const groups: Record<string, string> = { A: 'cls', B: 'cls', C: 'vqa' };
    const r = aggregateByGroup(
      [
        { dataset: 'A', score: 0.5 },
        { dataset: 'X', score: 0.2 },
        { dataset: 'C', score: 0.9 },
        { dataset: 'B', score: 0.7 },
      ],
      (d) => groups[d],
    );
    assert.deepEqual(Object.keys(r.groups), ['cls', 'vqa']);
    close(r.groups['cls']!.mean, 0.6);
    assert.equal(r.groups['cls']!.count, 2);
    assert.deepEqual(r.groups['cls']!.datasets, ['A', 'B']);
    close(r.groups['vqa']!.mean, 0.9);
    assert.deepEqual(r.unknown, ['X']);
    close(r.overall, (0.5 + 0.2 + 0.9 + 0.7) / 4);
  });

  test('aggregateByGroup errors', () => {
    assert.throws(() => aggregateByGroup([], () => 'g'), /no results/);
    assert.throws(
      () =>
        aggregateByGroup(
          [
            { dataset: 'A', score: 1 },
            { dataset: 'A', score: 0 },
          ],
          () => 'g',
        ),
      /duplicate dataset 'A'/,
    );
    assert.throws(() => aggregateByGroup([{ dataset: 'A', score: Number.NaN }], () => 'g'), /NaN/);
  });
});
