// The safe Python-literal parser of MMEB-train's neg_text / neg_image_path fields: checked against Python's own
// ast.literal_eval (fixture literals.json, written by tools/gen_pair_fixtures.py) and hand-derived error offsets.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { negativeList, parsePythonStringList, PythonLiteralError } from '../../../src/data/pairs/index.js';
import { PAIR_FIXTURES } from './helpers.js';

interface Case {
  literal: string;
  value?: string[];
  invalid?: true;
}

const cases = JSON.parse(readFileSync(join(PAIR_FIXTURES, 'literals.json'), 'utf8')) as Case[];

/** Runs `fn`, expects a PythonLiteralError, returns it. */
function literalError(fn: () => unknown): PythonLiteralError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PythonLiteralError, `expected a PythonLiteralError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a PythonLiteralError');
}

describe('parsePythonStringList', () => {
  test('agrees with ast.literal_eval on every valid fixture literal (str(list) output included)', () => {
    const valid = cases.filter((c) => !c.invalid);
    assert.ok(valid.length >= 25);
    for (const c of valid) assert.deepEqual(parsePythonStringList(c.literal), c.value, JSON.stringify(c.literal));
  });

  test('refuses every literal ast.literal_eval refuses (or that is not a list of strings)', () => {
    const invalid = cases.filter((c) => c.invalid);
    assert.ok(invalid.length >= 20);
    for (const c of invalid) literalError(() => parsePythonStringList(c.literal));
  });

  test('quotes, nested quotes, empty entries, trailing comma, whitespace', () => {
    assert.deepEqual(parsePythonStringList(`['a', "b's", 'c\\n']`), ['a', "b's", 'c\n']);
    assert.deepEqual(parsePythonStringList(`[ "say 'hi'" , 'x"y' ]`), ["say 'hi'", 'x"y']);
    assert.deepEqual(parsePythonStringList(`['', "", '']`), ['', '', '']);
    assert.deepEqual(parsePythonStringList(`['a', 'b',]`), ['a', 'b']);
    assert.deepEqual(parsePythonStringList(` \n\t[\n 'a' ,\n\t'b'\n] \n`), ['a', 'b']);
    assert.deepEqual(parsePythonStringList('[]'), []);
    assert.deepEqual(parsePythonStringList('[ ]'), []);
  });

  test('escapes: \\n \\t \\\\ \\\' \\" \\xNN \\uNNNN \\UNNNNNNNN, octal, unknown ones kept', () => {
    assert.deepEqual(parsePythonStringList(String.raw`['\n\t\\\'\"']`), ['\n\t\\\'"']);
    assert.deepEqual(parsePythonStringList(String.raw`['\x41\x7f\xe9']`), ['A\x7fé']);
    assert.deepEqual(parsePythonStringList(String.raw`['\u00e9\u2028', '\U0001F600']`), ['é\u2028', '😀']);
    assert.deepEqual(parsePythonStringList(String.raw`['\0\7\101\1011']`), ['\0\x07A' + 'A1']);
    assert.deepEqual(parsePythonStringList(String.raw`['\d\w\8']`), ['\\d\\w\\8']);
    assert.deepEqual(parsePythonStringList(String.raw`[r'\n\'']`), ["\\n\\'"]);
  });

  test('unicode passes through (BMP and astral)', () => {
    assert.deepEqual(parsePythonStringList(`['日本語', '🙂é']`), ['日本語', '🙂é']);
  });

  test('a plain string literal is one element; adjacent literals concatenate', () => {
    assert.deepEqual(parsePythonStringList(`'just one'`), ['just one']);
    assert.deepEqual(parsePythonStringList(`"a" 'b'`), ['ab']);
    assert.deepEqual(parsePythonStringList(`['a' 'b', 'c']`), ['ab', 'c']);
  });

  test('malformed input: what is wrong and where (character offset)', () => {
    const cases: [string, RegExp, number][] = [
      ['', /empty input/, 0],
      [`['a'`, /unterminated list/, 0],
      [`['a',, 'b']`, /two commas in a row/, 5],
      [`[,]`, /a comma before the first list item/, 1],
      [`['a' 'b' c]`, /expected "," or "\]" after list item 0, found "c"/, 9],
      [`['a', 1]`, /list item 1 must be a string literal, found "1"/, 6],
      [`['a', None]`, /list item 1 must be a string literal, found "N"/, 6],
      [`[['a']]`, /list item 0 must be a string literal, found a nested list/, 1],
      [`'unterminated`, /unterminated string literal/, 0],
      [`['ok', 'a\nb']`, /line break inside a single-quoted string/, 7],
      [String.raw`['\x4']`, /truncated \\x escape \(needs 2 hex digits\)/, 2],
      [String.raw`['ab\U00110000']`, /beyond U\+10FFFF/, 4],
      [String.raw`['\N{DASH}']`, /named Unicode escapes/, 2],
      [`b'x'`, /bytes literals/, 0],
      [`['a'] extra`, /unexpected "e" after the literal/, 6],
      [`['a'],`, /unexpected "," after the literal/, 5],
      [`('a', 'b')`, /expected "\[" or a string literal, found "\("/, 0],
    ];
    for (const [src, problem, offset] of cases) {
      const e = literalError(() => parsePythonStringList(src));
      assert.match(e.problem, problem, JSON.stringify(src));
      assert.equal(e.offset, offset, `offset of ${JSON.stringify(src)}: ${e.message}`);
      assert.match(e.message, new RegExp(`at offset ${offset}$`));
    }
  });
});

describe('negativeList (a neg_text / neg_image_path field)', () => {
  test('"" → none; list or string literal → parsed; other text → one plain negative', () => {
    assert.deepEqual(negativeList(''), []);
    assert.deepEqual(negativeList('  '), []);
    assert.deepEqual(negativeList('[]'), []);
    assert.deepEqual(negativeList(`['a', 'b']`), ['a', 'b']);
    assert.deepEqual(negativeList(`'quoted'`), ['quoted']);
    assert.deepEqual(negativeList('No'), ['No']);
    assert.deepEqual(negativeList(`'Tis the season`), [`'Tis the season`]);
  });

  test('a malformed list is an error, not plain text', () => {
    const e = literalError(() => negativeList(`['a', 'b'`));
    assert.match(e.message, /unterminated list/);
  });
});
