import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'moca-cli-embed-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function moca(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const PH = '<|vision_start|><|image_pad|><|vision_end|>';

before(async () => {
  const r = moca('init', '--preset', 'tiny', '--output', 'model', '--seed', '3');
  assert.equal(r.status, 0, r.stderr);
  const img = await sharp({ create: { width: 50, height: 30, channels: 3, background: '#336699' } })
    .png()
    .toBuffer();
  writeFileSync(path.join(dir, 'img.png'), img);
  const rows = [
    { id: 'q1', text: `${PH}\nRepresent the given image.\n`, images: ['img.png'] },
    {
      id: 'q2',
      content: [
        { type: 'image', image: 'img.png' },
        { type: 'text', text: '\nRepresent the given image.\n' },
      ],
    },
    { id: 't1', text: 'A cat and a dog' },
  ];
  const bad = [
    'this is not json',
    JSON.stringify({ id: 'missing', text: PH, images: ['nope.png'] }),
    JSON.stringify({ id: 'count', text: 'no placeholder', images: ['img.png'] }),
  ];
  writeFileSync(path.join(dir, 'good.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(
    path.join(dir, 'mixed.jsonl'),
    [JSON.stringify(rows[0]), ...bad, JSON.stringify(rows[2])].join('\n') + '\n',
  );
});

describe('moca embed / tokenize / init', () => {
  test('init writes the Hugging Face files', () => {
    for (const f of [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'preprocessor_config.json',
    ]) {
      assert.ok(existsSync(path.join(dir, 'model', f)), f);
    }
  });

  test('embed writes one normalised vector per row, in order; raw and typed forms agree', () => {
    const r = moca(
      'embed',
      '--model',
      'model',
      '--input',
      'good.jsonl',
      '--output',
      'good.out.jsonl',
      '--batch-size',
      '2',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'stdout stays clean');
    const out = readJsonl(path.join(dir, 'good.out.jsonl'));
    assert.deepEqual(
      out.map((o) => o.id),
      ['q1', 'q2', 't1'],
    );
    const [a, b] = out.map((o) => o.embedding as number[]);
    assert.equal(a!.length, 64);
    assert.deepEqual(a, b);
    assert.ok(Math.abs(Math.hypot(...a!) - 1) < 1e-5);
    assert.ok(!existsSync(path.join(dir, 'good.out.jsonl.errors.jsonl')), 'no errors file when nothing failed');
  });

  test('bad rows go to the errors file with row id / line and reason; the run continues; exit 1', () => {
    const r = moca('embed', '--model', 'model', '--input', 'mixed.jsonl', '--output', 'mixed.out.jsonl');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /2 embedded .*3 failed/);
    assert.deepEqual(
      readJsonl(path.join(dir, 'mixed.out.jsonl')).map((o) => o.id),
      ['q1', 't1'],
    );
    const errors = readJsonl(path.join(dir, 'mixed.out.jsonl.errors.jsonl'));
    assert.equal(errors.length, 3);
    const byLine = new Map(errors.map((e) => [e.line, e]));
    assert.match(String(byLine.get(2)!.error), /invalid JSON/);
    assert.equal(byLine.get(3)!.id, 'missing');
    assert.match(String(byLine.get(3)!.error), /nope\.png/);
    assert.equal(byLine.get(4)!.id, 'count');
    assert.match(String(byLine.get(4)!.error), /placeholder/);
  });

  test('--strict stops at the first bad row and does not publish a partial output', () => {
    const r = moca(
      'embed',
      '--model',
      'model',
      '--input',
      'mixed.jsonl',
      '--output',
      'strict.out.jsonl',
      '--strict',
      '--errors',
      'strict.err',
    );
    assert.equal(r.status, 1);
    assert.ok(!existsSync(path.join(dir, 'strict.out.jsonl')));
    assert.ok(readJsonl(path.join(dir, 'strict.err')).length >= 1);
  });

  test('bad options and a missing model fail with a one-line reason', () => {
    const a = moca('embed', '--model', 'model', '--input', 'good.jsonl', '--output', 'x.jsonl', '--batch-size', '0');
    assert.notEqual(a.status, 0);
    assert.match(a.stderr, /expected a positive integer, got '0'/);
    const b = moca('embed', '--model', 'no-such-model', '--input', 'good.jsonl', '--output', 'x.jsonl');
    assert.equal(b.status, 1);
    assert.match(b.stderr, /^moca: .*no-such-model/m);
  });

  test('tokenize maps {"id","text"} to {"id","ids"} with the model tokenizer, no special tokens added', () => {
    writeFileSync(
      path.join(dir, 'texts.jsonl'),
      [JSON.stringify({ id: 'a', text: 'hi' }), JSON.stringify({ id: 'b', text: PH })].join('\n'),
    );
    const r = moca('tokenize', '--tokenizer', 'model', '--input', 'texts.jsonl', '--output', 'ids.jsonl');
    assert.equal(r.status, 0, r.stderr);
    const out = readJsonl(path.join(dir, 'ids.jsonl'));
    // Byte-level tokens without merges: 'h' and 'i' are their byte-level symbols' ids.
    assert.equal((out[0]!.ids as number[]).length, 2);
    const config = JSON.parse(readFileSync(path.join(dir, 'model', 'config.json'), 'utf8')) as Record<string, number>;
    assert.deepEqual(out[1]!.ids, [config.vision_start_token_id, config.image_token_id, config.vision_end_token_id]);
  });
});
