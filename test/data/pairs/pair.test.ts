// Pair rows: MMEB-train rows (placeholder rewrite / removal, image paths, MoCa's hard-negative filling rules incl. the
// seeded random replacement), text-only spellings, and bad rows named by row id, field and reason.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';

import {
  fillNegatives,
  PairDataError,
  parsePairRow,
  replaceEmptyNegatives,
  rowRng,
  type PairImage,
  type PairParseOptions,
  type PairSample,
} from '../../../src/data/pairs/index.js';
import { PAIR_FIXTURES, PHI, QWEN } from './helpers.js';

const ctx = { subset: 'sub', row: 7, file: '/data/sets/sub.jsonl' };

function mmeb(fields: Partial<Record<string, unknown>>): Record<string, unknown> {
  return {
    qry: 'q',
    qry_image_path: '',
    pos_text: 'p',
    pos_image_path: '',
    neg_text: '[]',
    neg_image_path: '[]',
    ...fields,
  };
}

function parse(value: unknown, options: PairParseOptions = {}, at = ctx): PairSample {
  return parsePairRow(value, at, options);
}

function pairError(fn: () => unknown): PairDataError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PairDataError, `expected a PairDataError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a PairDataError');
}

const texts = (s: PairSample): string[] => s.negatives.map((n) => n.text);
const path = (p: string): PairImage => ({ kind: 'path', path: p });

describe('MMEB rows', () => {
  test('placeholder rewritten where there is an image, removed where the path is ""', () => {
    const s = parse(
      mmeb({
        qry: `${PHI}\nRepresent the given image.\n`,
        qry_image_path: 'images/a.jpg',
        pos_text: `${PHI}\ncaption`,
        neg_text: `['${PHI}\\nn1', '${PHI}n2']`,
        neg_image_path: `['images/b.jpg', '']`,
      }),
    );
    assert.equal(s.id, 'sub:7');
    assert.equal(s.subset, 'sub');
    assert.equal(s.row, 7);
    assert.deepEqual(s.query, {
      text: `${QWEN}\nRepresent the given image.\n`,
      image: path('/data/sets/images/a.jpg'),
    });
    assert.deepEqual(s.positive, { text: '\ncaption', image: null });
    assert.deepEqual(s.negatives, [
      { text: `${QWEN}\nn1`, image: path('/data/sets/images/b.jpg') },
      { text: 'n2', image: null },
    ]);
  });

  test('image paths: imageRoot option, absolute paths, data: URIs, file: URLs, null = none', () => {
    const s = parse(mmeb({ qry: PHI, qry_image_path: 'x/q.png', pos_text: PHI, pos_image_path: '/abs/p.png' }), {
      imageRoot: '/root/img',
    });
    assert.deepEqual(s.query.image, path('/root/img/x/q.png'));
    assert.deepEqual(s.positive.image, path('/abs/p.png'));
    const d = parse(mmeb({ qry: PHI, qry_image_path: 'data:image/png;base64,AAAA', pos_image_path: null }));
    assert.deepEqual(d.query.image, { kind: 'data', uri: 'data:image/png;base64,AAAA' });
    assert.equal(d.positive.image, null);
    const f = parse(mmeb({ qry: PHI, qry_image_path: 'file:///tmp/q.png' }));
    assert.deepEqual(f.query.image, path('/tmp/q.png'));
    // default root: the data file's folder; without a file, the working directory
    const c = parsePairRow(mmeb({ qry: PHI, qry_image_path: 'q.png' }), { subset: 's', row: 0 });
    assert.deepEqual(c.query.image, path(resolve('q.png')));
  });

  test('filling: one negative repeated, three cut to two, ratio 3 repeats the last', () => {
    assert.deepEqual(texts(parse(mmeb({ neg_text: `['only']`, neg_image_path: `['']` }))), ['only', 'only']);
    assert.deepEqual(texts(parse(mmeb({ neg_text: `['a', 'b', 'c']`, neg_image_path: `['', '', '']` }))), ['a', 'b']);
    assert.deepEqual(texts(parse(mmeb({ neg_text: `['a', 'b']`, neg_image_path: `['', '']` }), { negativeRatio: 3 })), [
      'a',
      'b',
      'b',
    ]);
    assert.deepEqual(fillNegatives([], 2), []);
    assert.deepEqual(fillNegatives(['x'], 1), ['x']);
  });

  test('image list filled alike: a one-entry image list applies to every negative', () => {
    const s = parse(mmeb({ neg_text: `['${PHI}a', '${PHI}b']`, neg_image_path: `['i.png']` }), { imageRoot: '/r' });
    assert.deepEqual(s.negatives, [
      { text: `${QWEN}a`, image: path('/r/i.png') },
      { text: `${QWEN}b`, image: path('/r/i.png') },
    ]);
    // an empty image list: all negatives text-only
    assert.deepEqual(parse(mmeb({ neg_text: `['a', 'b']`, neg_image_path: '' })).negatives, [
      { text: 'a', image: null },
      { text: 'b', image: null },
    ]);
  });

  test('an empty negative text → the positive text when all negatives are identical', () => {
    assert.deepEqual(texts(parse(mmeb({ pos_text: 'POS', neg_text: `['', '']`, neg_image_path: `['', '']` }))), [
      'POS',
      'POS',
    ]);
    assert.deepEqual(texts(parse(mmeb({ pos_text: 'POS', neg_text: `['']`, neg_image_path: `['']` }))), ['POS', 'POS']);
    // the positive's placeholder follows the negative's own image path
    const s = parse(
      mmeb({ pos_text: `${PHI}P`, pos_image_path: 'p.png', neg_text: `['', '']`, neg_image_path: `['n.png', '']` }),
      { imageRoot: '/r' },
    );
    assert.deepEqual(s.negatives, [
      { text: `${QWEN}P`, image: path('/r/n.png') },
      { text: 'P', image: null },
    ]);
  });

  test('an empty negative text → a random non-empty one of the whole list, deterministic under the seed', () => {
    const row = mmeb({ neg_text: `['', 'alpha', 'beta', '']`, neg_image_path: `['', '', '', '']` });
    const seen = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const a = texts(parse(row, { seed }));
      assert.deepEqual(texts(parse(row, { seed })), a, 'same seed, same choice');
      assert.equal(a[1], 'alpha', 'the second kept negative is not empty');
      assert.ok(a[0] === 'alpha' || a[0] === 'beta');
      // the choice is the row's own stream: drawn from rowRng(seed, subset, row)
      assert.equal(a[0], ['alpha', 'beta'][rowRng(seed, 'sub', 7).int(2)]);
      seen.add(a[0]!);
    }
    assert.deepEqual([...seen].sort(), ['alpha', 'beta'], 'both candidates occur over seeds');
    // other rows / subsets draw from other streams
    const rows = new Set<string>();
    for (let r = 0; r < 40; r++) rows.add(texts(parse(row, { seed: 1 }, { ...ctx, row: r }))[0]!);
    assert.equal(rows.size, 2);
  });

  test('replaceEmptyNegatives: the positive only when the whole list is identical', () => {
    const never = () => assert.fail('no random draw needed');
    assert.deepEqual(replaceEmptyNegatives(['a', 'b'], ['a', 'b', ''], 'P', never), ['a', 'b']);
    assert.deepEqual(replaceEmptyNegatives(['', ''], ['', ''], 'P', never), ['P', 'P']);
    // kept part all empty but the whole list is not: random non-empty from the whole list
    assert.deepEqual(
      replaceEmptyNegatives(['', ''], ['', '', 'z'], 'P', () => rowRng(0, 's', 0)),
      ['z', 'z'],
    );
  });

  test('no negatives: [] / "" / negativeRatio 0 (neg fields then not even read)', () => {
    assert.deepEqual(parse(mmeb({ neg_text: '[]', neg_image_path: '[]' })).negatives, []);
    assert.deepEqual(parse(mmeb({ neg_text: '', neg_image_path: '' })).negatives, []);
    assert.deepEqual(parse(mmeb({ neg_text: null, neg_image_path: null })).negatives, []);
    const noNegFields = { qry: 'q', qry_image_path: '', pos_text: 'p', pos_image_path: '' };
    assert.deepEqual(parse(noNegFields, { negativeRatio: 0 }).negatives, []);
    assert.deepEqual(parse(mmeb({ neg_text: `['a']`, neg_image_path: `['']` }), { negativeRatio: 0 }).negatives, []);
  });

  test('MMEB-train plain-string negative ("No") and JSON-array negatives', () => {
    assert.deepEqual(texts(parse(mmeb({ neg_text: 'No', neg_image_path: '' }))), ['No', 'No']);
    assert.deepEqual(texts(parse(mmeb({ neg_text: ['x', 'y', 'z'], neg_image_path: ['', '', ''] }))), ['x', 'y']);
  });

  test('image bytes and the HF Image struct', () => {
    const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
    const s = parse(mmeb({ qry: PHI, qry_image_path: bytes, pos_text: PHI, pos_image_path: { bytes, path: 'x.png' } }));
    assert.deepEqual(s.query.image, { kind: 'bytes', bytes });
    assert.deepEqual(s.positive.image, { kind: 'bytes', bytes });
    const p = parse(mmeb({ qry: PHI, qry_image_path: { bytes: null, path: 'x.png' } }), { imageRoot: '/r' });
    assert.deepEqual(p.query.image, path('/r/x.png'));
    assert.equal(parse(mmeb({ qry_image_path: { bytes: null, path: null } })).query.image, null);
  });

  test('the row id is used when present', () => {
    assert.equal(parse(mmeb({ id: 'abc' })).id, 'sub:abc');
    assert.equal(parse(mmeb({ id: 12 })).id, 'sub:12');
  });

  test("agrees with a transcription of MoCa's __getitem__ on the fixture rows", () => {
    const expected = JSON.parse(readFileSync(join(PAIR_FIXTURES, 'mmeb_expected.json'), 'utf8')) as {
      qry: string;
      qry_image_path: string;
      pos_text: string;
      pos_image_path: string;
      neg_texts: (string | { oneOf: string[] })[];
      neg_image_paths: string[];
    }[];
    const lines = readFileSync(join(PAIR_FIXTURES, 'mmeb.jsonl'), 'utf8').split('\n');
    const img = (p: string): PairImage | null => (p === '' ? null : path(join(PAIR_FIXTURES, p)));
    expected.forEach((e, row) => {
      const s = parsePairRow(JSON.parse(lines[row]!), { subset: 'mmeb', row, file: join(PAIR_FIXTURES, 'mmeb.jsonl') });
      assert.deepEqual(s.query, { text: e.qry, image: img(e.qry_image_path) }, `row ${row}`);
      assert.deepEqual(s.positive, { text: e.pos_text, image: img(e.pos_image_path) }, `row ${row}`);
      assert.equal(s.negatives.length, e.neg_texts.length, `row ${row}`);
      s.negatives.forEach((n, k) => {
        const t = e.neg_texts[k]!;
        if (typeof t === 'string') assert.equal(n.text, t, `row ${row} negative ${k}`);
        else assert.ok(t.oneOf.includes(n.text), `row ${row} negative ${k}: ${n.text} not in ${t.oneOf.join('|')}`);
        assert.deepEqual(n.image, img(e.neg_image_paths[k]!), `row ${row} negative ${k}`);
      });
    });
    assert.equal(expected.length, 12);
  });
});

describe('text-only pairs', () => {
  test('{query, positive, negatives}', () => {
    const s = parse({ query: 'q', positive: 'p', negatives: ['n1', 'n2', 'n3'] });
    assert.deepEqual(s.query, { text: 'q', image: null });
    assert.deepEqual(s.positive, { text: 'p', image: null });
    assert.deepEqual(texts(s), ['n1', 'n2']);
  });

  test('{qry, pos, neg} and {anchor, positive, negative}; a string negative is one negative', () => {
    const a = parse({ qry: 'q', pos: 'p', neg: 'n' });
    assert.deepEqual([a.query.text, a.positive.text, texts(a)], ['q', 'p', ['n', 'n']]);
    const b = parse({ anchor: 'a', positive: 'p', negative: 'n' });
    assert.deepEqual([b.query.text, b.positive.text, texts(b)], ['a', 'p', ['n', 'n']]);
  });

  test('a positive list uses its first entry; no negatives field → none; empty negatives replaced', () => {
    const s = parse({ query: 'q', pos: ['p1', 'p2'], neg: ['', 'x'] });
    assert.equal(s.positive.text, 'p1');
    assert.deepEqual(texts(s), ['x', 'x']);
    assert.deepEqual(parse({ query: 'q', positive: 'p' }).negatives, []);
    assert.deepEqual(texts(parse({ query: 'q', positive: 'P', negatives: [''] })), ['P', 'P']);
  });

  test('placeholders in text-only rows are removed (there is no image)', () => {
    assert.equal(parse({ query: `${PHI}q`, positive: `${QWEN}p` }).query.text, 'q');
  });
});

describe('bad rows', () => {
  const cases: [string, unknown, string, string, RegExp][] = [
    ['not an object', [1, 2], 'row', 'bad_field', /must be an object, got an array/],
    ['missing pos_text', { qry: 'q', qry_image_path: '', neg_text: '[]' }, 'pos_text', 'bad_field', /missing/],
    ['missing neg_image_path', { ...mmeb({}), neg_image_path: undefined }, 'neg_image_path', 'bad_field', /missing/],
    ['qry not a string', mmeb({ qry: 5 }), 'qry', 'bad_field', /must be a string, got number 5/],
    [
      'malformed list',
      mmeb({ neg_text: `['a', 'b'` }),
      'neg_text',
      'bad_field',
      /malformed list literal: unterminated list \(no closing "\]"\) at offset 0/,
    ],
    ['non-string item', mmeb({ neg_text: `['a', 3]` }), 'neg_text', 'bad_field', /list item 1 .* at offset 6/],
    ['non-string item (JSON)', mmeb({ neg_text: ['a', 3] }), 'neg_text[1]', 'bad_field', /must be a string/],
    [
      'image without placeholder',
      mmeb({ pos_image_path: 'p.png' }),
      'pos_text',
      'placeholder_mismatch',
      /the text has 0 image placeholders .* but there is 1 image/,
    ],
    [
      'two placeholders, one image',
      mmeb({ qry: `${PHI}${PHI}`, qry_image_path: 'q.png' }),
      'qry',
      'placeholder_mismatch',
      /has 2 image placeholders/,
    ],
    [
      'negative image without placeholder',
      mmeb({ neg_text: `['a', '${PHI}b']`, neg_image_path: `['x.png', 'y.png']` }),
      'neg_text[0]/neg_image_path[0]',
      'placeholder_mismatch',
      /has 0 image placeholders/,
    ],
    [
      'list length mismatch',
      mmeb({ neg_text: `['a', 'b', 'c']`, neg_image_path: `['x.png', 'y.png']` }),
      'neg_image_path',
      'bad_field',
      /has 2 entries but neg_text has 3/,
    ],
    [
      'images without negative texts',
      mmeb({ neg_text: '[]', neg_image_path: `['x.png']` }),
      'neg_image_path',
      'bad_field',
      /has image\(s\) \(entry 0\) but neg_text has no entries/,
    ],
    ['remote image', mmeb({ qry_image_path: 'https://x/y.png' }), 'qry_image_path', 'bad_field', /remote image URLs/],
    ['empty query', mmeb({ qry: '' }), 'qry', 'bad_field', /empty: no text and no image/],
    ['text: bad positive', { query: 'q', positive: 5 }, 'positive', 'bad_field', /must be a string/],
    ['text: two spellings', { query: 'q', qry: 'r', positive: 'p' }, 'query/qry', 'bad_field', /several spellings/],
    ['text: no query', { positive: 'p' }, 'query/qry/anchor', 'bad_field', /missing/],
    ['text: empty positive list', { query: 'q', pos: [] }, 'pos', 'bad_field', /empty list/],
  ];
  for (const [name, row, field, reason, problem] of cases) {
    test(`${name} → ${reason} on ${field}`, () => {
      const e = pairError(() => parse(row));
      assert.equal(e.field, field);
      assert.equal(e.reason, reason);
      assert.match(e.problem, problem);
      assert.equal(e.subset, 'sub');
      assert.equal(e.location.row, 7);
      assert.equal(e.location.id, 'sub:7');
      assert.match(
        e.message,
        new RegExp(`^source "sub" row 7 \\(id sub:7, /data/sets/sub.jsonl\\): ${field.replace(/[[\]/]/g, '\\$&')}: `),
      );
    });
  }

  test('the row id names a bad row that has one', () => {
    const e = pairError(() => parse(mmeb({ id: 'r-1', qry: 5 })));
    assert.equal(e.location.id, 'sub:r-1');
  });

  test('negativeRatio must be a non-negative integer', () => {
    assert.throws(() => parse(mmeb({}), { negativeRatio: -1 }), RangeError);
    assert.throws(() => parse(mmeb({}), { negativeRatio: 1.5 }), RangeError);
  });
});
