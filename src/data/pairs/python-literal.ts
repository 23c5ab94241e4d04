// A safe parser for the Python literals MMEB-train / MoCa-CL-Pairs store their hard negatives in (spec §3.1):
// `neg_text` and `neg_image_path` are strings holding `str(list_of_str)`, e.g. `"['a', \"b's\", 'c\\n']"`, which
// MoCa turns back into lists with `eval()`. Here only the subset of Python that such a string can hold is accepted —
// a list of string literals, or one string literal — and nothing is ever evaluated.
//
// Accepted (as Python's `ast.literal_eval` reads it):
// - `[item, item, …]` with an optional trailing comma, `[]`, or a single string literal (→ a one-element list);
// - items are string literals: '…' or "…", triple-quoted '''…''' / """…""", the prefixes u/U (no-op) and r/R (raw),
//   and adjacent literals concatenated (`'a' "b"` → `'ab'`);
// - escapes in non-raw literals: \<newline> \\ \' \" \a \b \f \n \r \t \v, octal \o \oo \ooo, \xhh, \uhhhh,
//   \Uhhhhhhhh (≤ 10FFFF); any other backslash pair is kept as is (Python's behaviour for unknown escapes);
// - whitespace (space, tab, newline, CR, form feed), backslash-newline continuations and `#` comments between tokens.
// Refused with a {@link PythonLiteralError} naming what is wrong and where (a 0-based offset into the input, in
// UTF-16 code units): anything else — numbers, None, nested lists, tuples, bytes (b'…') and f-strings, `\N{…}`
// named escapes (no Unicode name table here), unterminated strings, missing commas, text after the literal.

/** A malformed literal: `offset` is where the problem is (0-based, UTF-16 code units into the parsed string). */
export class PythonLiteralError extends Error {
  override name = 'PythonLiteralError';
  constructor(
    /** What is wrong, without the position. */
    readonly problem: string,
    readonly offset: number,
  ) {
    super(`${problem} at offset ${offset}`);
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

const isOctal = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '7';
const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);

/** Shows the character at `i` for messages (`end of input` past the end). */
function shown(src: string, i: number): string {
  if (i >= src.length) return 'end of input';
  const cp = src.codePointAt(i)!;
  return `${JSON.stringify(String.fromCodePoint(cp))}`;
}

class Parser {
  i = 0;
  constructor(readonly src: string) {}

  fail(problem: string, at = this.i): never {
    throw new PythonLiteralError(problem, at);
  }

  /** Skips whitespace, `\`-newline continuations and `#` comments. */
  skipSpace(): void {
    const s = this.src;
    for (;;) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.i++;
      else if (c === '\\' && (s[this.i + 1] === '\n' || (s[this.i + 1] === '\r' && s[this.i + 2] === '\n'))) {
        this.i += s[this.i + 1] === '\n' ? 2 : 3;
      } else if (c === '#') {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else return;
    }
  }

  /** Whether a string literal (with an optional prefix) starts at the current position. */
  atString(): boolean {
    const m = /^[A-Za-z]{0,2}['"]/.exec(this.src.slice(this.i, this.i + 3));
    return m !== null;
  }

  /** One or more adjacent string literals, concatenated. */
  strings(): string {
    let out = this.string();
    for (;;) {
      const save = this.i;
      this.skipSpace();
      if (this.atString()) out += this.string();
      else {
        this.i = save;
        return out;
      }
    }
  }

  /** One string literal starting at the current position. */
  string(): string {
    const s = this.src;
    const start = this.i;
    let prefix = '';
    while (/[A-Za-z]/.test(s[this.i] ?? '')) prefix += s[this.i++];
    const p = prefix.toLowerCase();
    if (p !== '' && p !== 'u' && p !== 'r') {
      if (p.includes('b')) this.fail("bytes literals (b'…') are not strings", start);
      if (p.includes('f')) this.fail('f-strings are not literals', start);
      this.fail(`unknown string prefix ${JSON.stringify(prefix)}`, start);
    }
    const raw = p === 'r';
    const quote = s[this.i];
    if (quote !== "'" && quote !== '"') this.fail(`expected a string literal, found ${shown(s, start)}`, start);
    const triple = s[this.i + 1] === quote && s[this.i + 2] === quote;
    this.i += triple ? 3 : 1;
    // Runs of plain characters are taken as slices, so that building a string costs no per-character work.
    const parts: string[] = [];
    let run = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string literal', start);
      const c = s[this.i]!;
      if (c === quote && (!triple || (s[this.i + 1] === quote && s[this.i + 2] === quote))) {
        parts.push(s.slice(run, this.i));
        this.i += triple ? 3 : 1;
        return parts.join('');
      }
      if (c === '\n' && !triple) {
        this.fail('unterminated string literal (a line break inside a single-quoted string)', start);
      }
      if (c === '\\') {
        parts.push(s.slice(run, this.i));
        parts.push(raw ? this.rawEscape() : this.escape());
        run = this.i;
      } else {
        this.i++;
      }
    }
  }

  /** In a raw literal a backslash escapes nothing, but it keeps the next character (a quote) from ending it. */
  rawEscape(): string {
    const s = this.src;
    const next = s[this.i + 1];
    if (next === undefined) this.fail('unterminated string literal (a backslash at the end)', this.i);
    this.i += 2;
    return '\\' + next;
  }

  /** A backslash escape in a non-raw literal (this.i at the backslash). */
  escape(): string {
    const s = this.src;
    const at = this.i;
    const c = s[at + 1];
    if (c === undefined) this.fail('unterminated string literal (a backslash at the end)', at);
    if (c === '\n') {
      this.i += 2;
      return '';
    }
    if (c === '\r' && s[at + 2] === '\n') {
      this.i += 3;
      return '';
    }
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) {
      this.i += 2;
      return simple;
    }
    if (isOctal(c)) {
      let j = at + 1;
      let digits = '';
      while (digits.length < 3 && isOctal(s[j])) digits += s[j++];
      this.i = j;
      return String.fromCharCode(parseInt(digits, 8));
    }
    if (c === 'x' || c === 'u' || c === 'U') {
      const n = c === 'x' ? 2 : c === 'u' ? 4 : 8;
      const hex = s.slice(at + 2, at + 2 + n);
      if (hex.length !== n || ![...hex].every(isHex)) {
        this.fail(`truncated \\${c} escape (needs ${n} hex digits)`, at);
      }
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) this.fail(`\\U escape beyond U+10FFFF (${hex})`, at);
      this.i = at + 2 + n;
      return String.fromCodePoint(cp);
    }
    if (c === 'N') this.fail('named Unicode escapes (\\N{…}) are not supported', at);
    // Unknown escape: Python keeps the backslash and the character.
    this.i += 2;
    return '\\' + c;
  }

  /** `[` already consumed: items up to the closing `]`. */
  list(open: number): string[] {
    const s = this.src;
    const items: string[] = [];
    for (;;) {
      this.skipSpace();
      if (this.i >= s.length) this.fail('unterminated list (no closing "]")', open);
      if (s[this.i] === ']') {
        this.i++;
        return items;
      }
      if (s[this.i] === ',') {
        this.fail(items.length === 0 ? 'a comma before the first list item' : 'two commas in a row (an empty item)');
      }
      if (!this.atString()) {
        const what = s[this.i] === '[' ? 'a nested list' : s[this.i] === '(' ? 'a tuple' : shown(s, this.i);
        this.fail(`list item ${items.length} must be a string literal, found ${what}`);
      }
      items.push(this.strings());
      this.skipSpace();
      if (s[this.i] === ',') {
        this.i++;
        continue;
      }
      if (s[this.i] === ']') continue;
      if (this.i >= s.length) this.fail('unterminated list (no closing "]")', open);
      this.fail(`expected "," or "]" after list item ${items.length - 1}, found ${shown(s, this.i)}`);
    }
  }

  parse(): string[] {
    const s = this.src;
    this.skipSpace();
    if (this.i >= s.length) this.fail('empty input (expected a list or a string literal)', 0);
    let out: string[];
    if (s[this.i] === '[') {
      const open = this.i++;
      out = this.list(open);
    } else if (this.atString()) {
      out = [this.strings()];
    } else {
      this.fail(`expected "[" or a string literal, found ${shown(s, this.i)}`);
    }
    this.skipSpace();
    if (this.i < s.length) this.fail(`unexpected ${shown(s, this.i)} after the literal`);
    return out;
  }
}

/**
 * Parses a Python literal list of strings (or one string literal → a one-element list) without evaluating anything;
 * throws {@link PythonLiteralError} (with the offset) when `source` is not such a literal.
 */
export function parsePythonStringList(source: string): string[] {
  return new Parser(source).parse();
}

/** Whether `source` (after leading whitespace) looks like it is meant to be a Python literal: `[` or a quote. */
export function looksLikePythonLiteral(source: string): boolean {
  return /^\s*(?:\[|[uUrR]?['"])/.test(source);
}
