// Input rows: MoCa raw form and typed form, normalisation, errors, MMEB placeholder rewrite.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import {
  countImagePlaceholders,
  decodeDataUri,
  InputError,
  MMEB_IMAGE_PLACEHOLDER,
  parseInputJsonl,
  parseInputRow,
  QWEN_IMAGE_PLACEHOLDER as IMG,
  rewriteMmebPlaceholder,
} from '../../src/processing/inputs.js';

const base = '/data/set';
const PNG_URI = 'data:image/png;base64,iVBORw0KGgo=';

/** Asserts that `fn` throws an InputError whose message contains every fragment. */
function throwsWith(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${f}`);
    return true;
  });
}

describe('the two forms normalise identically', () => {
  test('one image then text', () => {
    const raw = parseInputRow(
      { id: 'q1', text: `${IMG}\nRepresent the given image.\n`, images: ['img/a.png'] },
      { baseDir: base },
    );
    const typed = parseInputRow(
      {
        id: 'q1',
        content: [
          { type: 'image', image: 'img/a.png' },
          { type: 'text', text: '\nRepresent the given image.\n' },
        ],
      },
      { baseDir: base },
    );
    assert.deepEqual(raw, typed);
    assert.deepEqual(raw, {
      id: 'q1',
      text: `${IMG}\nRepresent the given image.\n`,
      images: [{ kind: 'path', path: '/data/set/img/a.png' }],
    });
  });

  test('interleaved images, data URIs and absolute paths, text verbatim', () => {
    const raw = parseInputRow(
      { id: 'm', text: `  Compare ${IMG} with${IMG}:\tsame? `, images: [PNG_URI, '/abs/b.jpg'] },
      { baseDir: base },
    );
    const typed = parseInputRow(
      {
        id: 'm',
        content: [
          { type: 'text', text: '  Compare ' },
          { type: 'image', image: PNG_URI },
          { type: 'text', text: ' with' },
          { type: 'image', image: '/abs/b.jpg' },
          { type: 'text', text: ':\tsame? ' },
        ],
      },
      { baseDir: base },
    );
    assert.deepEqual(raw, typed);
    assert.deepEqual(raw.images, [
      { kind: 'data', uri: PNG_URI },
      { kind: 'path', path: '/abs/b.jpg' },
    ]);
  });

  test('text only; images optional in the raw form; integer ids; extra fields ignored', () => {
    assert.deepEqual(parseInputRow({ id: 7, text: 'plane', label: 'x' }), { id: '7', text: 'plane', images: [] });
    assert.deepEqual(parseInputRow({ id: '7', content: [{ type: 'text', text: 'plane' }] }), {
      id: '7',
      text: 'plane',
      images: [],
    });
    assert.deepEqual(parseInputRow({ id: 'e', content: [] }), { id: 'e', text: '', images: [] });
  });

  test('relative paths resolve against baseDir; file: URLs become paths', () => {
    const row = parseInputRow(
      { id: 'p', text: IMG + IMG, images: ['../up.png', pathToFileURL('/x/y z.png').href] },
      { baseDir: base },
    );
    assert.deepEqual(row.images, [
      { kind: 'path', path: '/data/up.png' },
      { kind: 'path', path: '/x/y z.png' },
    ]);
    const cwd = parseInputRow({ id: 'c', text: IMG, images: ['a.png'] });
    assert.deepEqual(cwd.images, [{ kind: 'path', path: join(process.cwd(), 'a.png') }]);
  });
});

describe('errors name the row and the field', () => {
  test('typed form', () => {
    const row = (content: unknown) => () => parseInputRow({ id: 'q7', content });
    throwsWith(
      row([
        { type: 'text', text: 'a' },
        { type: 'image', image: 'x.png' },
        { type: 'video', video: 'v.mp4' },
      ]),
      "row 'q7': content[2].type must be 'text' or 'image'",
    );
    throwsWith(row([{ type: 'text', text: 5 }]), "row 'q7': content[0].text must be a string");
    throwsWith(row([{ type: 'image' }]), "row 'q7': content[0].image must be a non-empty string");
    throwsWith(row([{ type: 'image', image: '' }]), "row 'q7': content[0].image");
    throwsWith(row(['text']), "row 'q7': content[0] must be an object");
    throwsWith(row('text'), "row 'q7': content must be an array");
    throwsWith(row([{ type: 'text', text: `a${IMG}` }]), "row 'q7': content[0].text contains");
    throwsWith(
      row([
        { type: 'text', text: '<|vision_start|><|image_pad|>' },
        { type: 'text', text: '<|vision_end|>' },
      ]),
      "row 'q7'",
      '1 image placeholder',
      '0 image item',
    );
  });

  test('raw form', () => {
    throwsWith(() => parseInputRow({ id: 'r1', text: 3 }), "row 'r1': text must be a string");
    throwsWith(() => parseInputRow({ id: 'r1', text: IMG, images: 'a.png' }), "row 'r1': images must be an array");
    throwsWith(() => parseInputRow({ id: 'r1', text: IMG + IMG, images: ['a.png', 2] }), "row 'r1': images[1]");
    throwsWith(
      () => parseInputRow({ id: 'r2', text: `${IMG} and ${IMG}`, images: ['a.png'] }),
      "row 'r2'",
      '2 image placeholder(s)',
      '1 entry',
    );
    throwsWith(() => parseInputRow({ id: 'r3', text: 'no image', images: ['a.png'] }), "row 'r3'", '0 image');
  });

  test('shape and id', () => {
    throwsWith(() => parseInputRow({ text: 'x' }, { index: 3 }), 'row #3: id must be');
    throwsWith(() => parseInputRow({ id: '', text: 'x' }), 'id must be');
    throwsWith(() => parseInputRow({ id: 1.5, text: 'x' }), 'id must be');
    throwsWith(() => parseInputRow([1], { index: 0 }), 'row #0: must be a JSON object');
    throwsWith(() => parseInputRow({ id: 'b', text: 'x', content: [] }), "row 'b': has both");
    throwsWith(() => parseInputRow({ id: 'n' }), "row 'n': needs");
  });

  test('image references', () => {
    throwsWith(
      () => parseInputRow({ id: 'u', text: IMG, images: ['https://example.com/a.png'] }),
      "row 'u': images[0]",
      'remote image URLs are not supported',
    );
    throwsWith(() => parseInputRow({ id: 'd', text: IMG, images: ['data:image/png;base64'] }), 'malformed data: URI');
  });

  test('JSON Lines: line numbers, blank lines skipped', () => {
    const rows = parseInputJsonl(`{"id":"a","text":"x"}\n\n{"id":"b","content":[{"type":"image","image":"i.png"}]}\n`, {
      baseDir: base,
    });
    assert.deepEqual(
      rows.map((r) => [r.id, r.text, r.images.length]),
      [
        ['a', 'x', 0],
        ['b', IMG, 1],
      ],
    );
    throwsWith(() => parseInputJsonl('{"id":"a","text":"x"}\n{oops'), 'line 2: invalid JSON');
    throwsWith(
      () => parseInputJsonl('{"id":"a","text":"x"}\n\n{"id":"z","content":[{"type":"audio"}]}'),
      'line 3:',
      "row 'z'",
    );
  });
});

describe('MMEB placeholder rewrite and helpers', () => {
  test('<|image_1|> becomes the Qwen placeholder', () => {
    assert.equal(
      rewriteMmebPlaceholder(`${MMEB_IMAGE_PLACEHOLDER}\nRepresent the given image for classification\n`, true),
      `${IMG}\nRepresent the given image for classification\n`,
    );
  });

  test('removed when the row has no image (the newline stays, as in MoCa)', () => {
    assert.equal(
      rewriteMmebPlaceholder(`${MMEB_IMAGE_PLACEHOLDER}\nFind the caption\n`, false),
      '\nFind the caption\n',
    );
    assert.equal(rewriteMmebPlaceholder(`a ${IMG} b`, false), 'a  b');
    assert.equal(rewriteMmebPlaceholder('plane', false), 'plane');
  });

  test('countImagePlaceholders', () => {
    assert.equal(countImagePlaceholders(`${IMG}${IMG}x${IMG}`), 3);
    assert.equal(countImagePlaceholders('<|vision_start|><|image_pad|>'), 0);
  });

  test('decodeDataUri', () => {
    const png = decodeDataUri(PNG_URI);
    assert.equal(png.mediaType, 'image/png');
    assert.deepEqual([...png.data.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    const txt = decodeDataUri('data:,a%20b');
    assert.equal(txt.mediaType, 'text/plain;charset=US-ASCII');
    assert.equal(txt.data.toString('latin1'), 'a b');
    assert.throws(() => decodeDataUri('nope'), InputError);
  });
});
