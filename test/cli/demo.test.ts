// `moca demo --quick` end to end (the README's first command, at smoke-test size): it must finish, print the
// ablation table, and write a report with every section and valid numbers; a second run reuses finished stages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import type { DemoRun } from '../../src/demo/index.js';

const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'moca-cli-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function demo(): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, 'demo', '--quick', '--output', 'out'], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SCORE_KEYS = ['classification', 'vqa', 'retrieval', 'grounding', 'ind', 'ood', 'overall', 'ndcg5'] as const;

describe('moca demo --quick', () => {
  test('runs end to end and writes the report, results and index', () => {
    const r = demo();
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    // stdout: the table, the verdict, searches, file locations.
    assert.match(r.stdout, /\| Model \| Cls \| VQA \| Ret \| Ground \| IND \| OOD \| Overall \| Doc nDCG@5 \|/);
    assert.match(r.stdout, /\| cl-only \|/);
    assert.match(r.stdout, /\| moca \|/);
    assert.match(r.stdout, /Δ moca − cl-only/);
    assert.match(r.stdout, /MoCa \(continual pre-training \+ fine-tuning\) versus fine-tuning alone/);
    assert.match(r.stdout, /## Example searches/);
    // Progress went to stderr, with every stage.
    for (const stage of ['generating the world', 'causal LM pre-training', 'arm cl-only', 'arm moca', 'indexing'])
      assert.ok(r.stderr.includes(stage), `stderr mentions "${stage}"`);

    const out = path.join(dir, 'out');
    const run = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as DemoRun;
    assert.deepEqual(
      run.runs.map((x) => x.arm),
      ['cl-only', 'moca'],
    );
    for (const scored of [...run.runs, ...run.bases]) {
      for (const k of SCORE_KEYS) {
        const v = scored.scores[k];
        assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${k} = ${String(v)} is a fraction`);
      }
      assert.ok(Object.keys(scored.scores.datasets).length >= 8, 'per-dataset scores');
    }
    // What each arm got: MoCa has a continual pre-training stage before the same contrastive stage.
    const stagesOf = (arm: string) => run.runs.find((x) => x.arm === arm)!.stages.map((s) => s.stage);
    assert.deepEqual(stagesOf('cl-only'), ['init', 'causal-lm', 'cl']);
    assert.deepEqual(stagesOf('moca'), ['init', 'causal-lm', 'cpt', 'cl']);
    for (const x of run.runs) for (const s of x.stages) assert.ok(s.seconds >= 0 && Number.isFinite(s.seconds));
    // The models are real HF-layout directories.
    for (const x of run.runs) assert.ok(existsSync(path.join(x.model, 'model.safetensors')), x.model);
    // Example searches ran against the index, 5 hits each, sorted by score.
    assert.ok(run.search !== null && run.search.examples.length >= 2);
    for (const ex of run.search.examples) {
      assert.equal(ex.results.length, 5);
      for (let i = 1; i < ex.results.length; i++) assert.ok(ex.results[i - 1]!.score >= ex.results[i]!.score);
    }

    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    for (const section of [
      "MoCa's claim in miniature",
      'What each arm got',
      'Training curves',
      'Per dataset',
      'Searches over the evaluation images',
      'Files',
    ])
      assert.ok(html.includes(section), `report.html has "${section}"`);
    assert.ok((html.match(/<svg/g) ?? []).length >= 4, 'bar chart and loss curves');
    assert.ok(html.includes('data:image/png;base64,'), 'thumbnails are embedded');
    assert.ok(!/NaN|undefined/.test(html), 'no NaN or undefined in the report');
    assert.match(readFileSync(path.join(out, 'results.md'), 'utf8'), /\| moca \|/);
    // Each stage's own training report and metrics exist.
    assert.ok(existsSync(path.join(out, 'runs', 'seed-1', 'moca', 'cpt', 'metrics.jsonl')));
    assert.ok(existsSync(path.join(out, 'eval', 'seed-1', 'moca', 'mmeb', 'report.html')));
  });

  test('a second run reuses the finished stages and reproduces the numbers', () => {
    const before = JSON.parse(readFileSync(path.join(dir, 'out', 'results.json'), 'utf8')) as DemoRun;
    const r = demo();
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /causal-lm: done earlier/);
    assert.match(r.stderr, /cpt: done earlier/);
    const again = JSON.parse(readFileSync(path.join(dir, 'out', 'results.json'), 'utf8')) as DemoRun;
    assert.deepEqual(
      again.runs.map((x) => x.scores),
      before.runs.map((x) => x.scores),
    );
  });
});
