import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { writeRunReport } from '../../src/train/metrics.js';

import {
  downsample,
  ema,
  escapeXml,
  formatTick,
  lineChartSvg,
  niceTicks,
  renderReportHtml,
  reportChartNames,
  type ReportRecord,
} from '../../src/train/plot.js';

/** Minimal XML well-formedness check: balanced tags, quoted attributes, no stray '<' or bad '&'. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const tagRe = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  const checkText = (text: string): void => {
    assert.ok(!text.includes('<'), `stray '<' in text: ${text.slice(0, 80)}`);
    for (const amp of text.matchAll(/&[^;\s]*;?/g)) {
      assert.match(amp[0], /^&(amp|lt|gt|quot|#\d+);$/, `bad entity ${amp[0]}`);
    }
  };
  while ((m = tagRe.exec(xml)) !== null) {
    checkText(xml.slice(last, m.index));
    last = tagRe.lastIndex;
    for (const attr of m[3]!.matchAll(/="([^"]*)"/g)) checkText(attr[1]!);
    if (m[1]) assert.equal(stack.pop(), m[2], `closing </${m[2]}> does not match`);
    else if (!m[4]) stack.push(m[2]!);
  }
  checkText(xml.slice(last));
  assert.deepEqual(stack, [], 'unclosed tags');
}

function polylinePoints(svg: string): number[] {
  return [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1]!.trim().split(/\s+/).length);
}

describe('SVG line charts', () => {
  test('valid SVG with every finite point once; non-finite values split the line', () => {
    const a = Array.from({ length: 50 }, (_, i) => [i + 1, Math.exp(-i / 10)] as const);
    const b = Array.from(
      { length: 30 },
      (_, i) => [i * 2, i === 10 || i === 11 ? NaN : Math.sin(i)] as [number, number],
    );
    const svg = lineChartSvg(
      [
        { name: 'loss', points: a },
        { name: 'other', points: b },
      ],
      { title: 'loss', xLabel: 'step', yLabel: 'value' },
    );
    assertWellFormed(svg);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 640 280"/);
    assert.deepEqual(polylinePoints(svg), [50, 10, 18]);
    for (const coord of svg.matchAll(/points="([^"]*)"/g)) {
      for (const p of coord[1]!.split(' ')) {
        const [x, y] = p.split(',').map(Number);
        assert.ok(x! >= 64 && x! <= 624 && y! >= 30 && y! <= 236, `point ${p} outside the plot area`);
      }
    }
    assert.match(svg, />step<\/text>/);
    assert.match(svg, />other<\/text>/, 'legend names the series');
  });

  test('labels are escaped', () => {
    const evil = '<b>"mlm" & \'mae\'</b>';
    const svg = lineChartSvg(
      [
        {
          name: evil,
          points: [
            [0, 1],
            [1, 2],
          ],
        },
      ],
      { title: evil, xLabel: evil, yLabel: evil },
    );
    assertWellFormed(svg);
    assert.ok(!svg.includes('<b>'));
    assert.ok(svg.includes('&lt;b&gt;&quot;mlm&quot; &amp; &#39;mae&#39;&lt;/b&gt;'));
    assert.equal(escapeXml('a<b>&"\''), 'a&lt;b&gt;&amp;&quot;&#39;');
  });

  test('degenerate inputs: one point, a constant series, no data, log scale', () => {
    const one = lineChartSvg([{ name: 's', points: [[5, 2]] }]);
    assertWellFormed(one);
    assert.deepEqual(polylinePoints(one), [1]);
    assert.match(one, /<circle /, 'an isolated point stays visible');
    const flat = lineChartSvg([
      {
        name: 's',
        points: [
          [0, 3],
          [1, 3],
          [2, 3],
        ],
      },
    ]);
    assertWellFormed(flat);
    assert.ok(!/NaN|Infinity/.test(flat));
    const none = lineChartSvg([
      {
        name: 's',
        points: [
          [0, null],
          [1, NaN],
        ],
      },
    ]);
    assertWellFormed(none);
    assert.deepEqual(polylinePoints(none), []);
    const log = lineChartSvg(
      [
        {
          name: 's',
          points: [
            [0, 100],
            [1, 1],
            [2, 0.01],
          ],
        },
      ],
      { logY: true },
    );
    assertWellFormed(log);
    assert.match(log, />0\.01<\/text>/);
    assert.match(log, />100<\/text>/);
  });

  test('ticks and tick labels', () => {
    assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(1, 80, 4), [0, 20, 40, 60, 80]);
    assert.deepEqual(niceTicks(1, 80, 6), [0, 10, 20, 30, 40, 50, 60, 70, 80]);
    assert.deepEqual(niceTicks(0.13, 0.91, 4), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(3, 3), [3]);
    assert.equal(formatTick(2e-6), '2e-6');
    assert.equal(formatTick(1.5e-5), '1.5e-5');
    assert.equal(formatTick(1500), '1500');
    assert.equal(formatTick(250000), '2.5e5');
    assert.equal(formatTick(0.25), '0.25');
    assert.equal(formatTick(0), '0');
  });

  test('downsampling averages buckets; EMA skips gaps', () => {
    const pts = Array.from({ length: 10 }, (_, i) => [i, i] as [number, number]);
    assert.deepEqual(downsample(pts, 5), [
      [0.5, 0.5],
      [2.5, 2.5],
      [4.5, 4.5],
      [6.5, 6.5],
      [8.5, 8.5],
    ]);
    assert.equal(downsample(pts, 20).length, 10);
    const e = ema(
      [
        [0, 1],
        [1, null],
        [2, 3],
      ],
      0.5,
    );
    assert.equal(e[0]![1], 1);
    assert.equal(e[1]![1], null);
    assert.ok(Math.abs(e[2]![1]! - (0.5 * 0.5 * 1 + 0.5 * 3) / 0.75) < 1e-12);
  });
});

describe('HTML report', () => {
  const records: ReportRecord[] = Array.from({ length: 30 }, (_, i) => ({
    step: i + 1,
    lr: 1e-3 * Math.min(1, (i + 1) / 5),
    loss: i === 7 ? null : 2 / (i + 1),
    mlm_loss: 1.5 / (i + 1),
    mae_loss: 0.5 / (i + 1),
    grad_norm: 1,
    micro_batches: 4,
    elapsed_s: i,
    ...(i === 7 ? { skipped: true } : {}),
  }));

  test('one inline SVG per chart, self-contained, escaped summary', () => {
    const names = reportChartNames(records);
    assert.deepEqual(names, ['loss', 'mlm_loss', 'mae_loss', 'lr', 'grad_norm']);
    const html = renderReportHtml(records, {
      title: 'run <1>',
      summary: { 'last loss': '<0.1>' },
      config: { lr: 1e-3, note: '</pre><script>' },
    });
    assert.equal(html.match(/<svg /g)?.length, names.length);
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    assert.ok(!/<script|\ssrc=|\shref=|url\(/i.test(html), 'no scripts or external resources');
    assert.ok(html.includes('run &lt;1&gt;'));
    assert.ok(html.includes('&lt;0.1&gt;'));
    for (const svg of html.match(/<svg [\s\S]*?<\/svg>/g)!) assertWellFormed(svg);
    // Loss chart: raw curve (29 finite points in two runs around the gap) and its EMA.
    const lossSvg = html.match(/<svg [\s\S]*?<\/svg>/)![0];
    assert.deepEqual(polylinePoints(lossSvg), [7, 22, 7, 22]);
  });

  test('writeRunReport renders a run directory (also a partial one)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moca-report-'));
    try {
      writeFileSync(
        path.join(dir, 'metrics.jsonl'),
        records.map((r) => JSON.stringify(r)).join('\n') + '\n{"step": 31, "lr": 0.001, "lo', // torn last line
      );
      const file = writeRunReport(dir);
      const html = readFileSync(file, 'utf8');
      assert.equal(html.match(/<svg /g)?.length, 5);
      assert.match(html, /last step 30/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an empty run still renders', () => {
    const html = renderReportHtml([]);
    assert.match(html, /No steps recorded yet/);
    assert.ok(!html.includes('<svg'));
  });
});
