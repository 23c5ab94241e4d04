// A hand-written 5×7 bitmap font (upper-case letters, digits and a few symbols) for the generated world's labels
// and document pages.
//
// Why not SVG text through sharp/librsvg: that renders with whatever fonts fontconfig finds on the machine, so the
// same seed would give different pixels (and different PNG bytes) on different machines — the world must be
// byte-identical everywhere. A fixed bitmap font drawn by integer scaling has no such dependency, and its glyphs
// are crisp at the tiny sizes (7–21 px high) our 56–224 px images allow.
import type { Rgb } from './vocabulary.js';
import type { Canvas } from './raster.js';

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Blank columns between glyphs (before scaling). */
export const GLYPH_SPACING = 1;

// Each glyph: 7 rows of 5 columns, '#' = ink.
const GLYPH_ROWS: Readonly<Record<string, string>> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  "'": '.##.. ..#.. .#... ..... ..... ..... .....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
};

/** Glyph bitmaps: 35 booleans, row-major. */
const GLYPHS: ReadonlyMap<string, readonly boolean[]> = new Map(
  Object.entries(GLYPH_ROWS).map(([ch, rows]) => {
    const bits = rows.split(' ');
    if (bits.length !== GLYPH_HEIGHT || bits.some((r) => r.length !== GLYPH_WIDTH)) {
      throw new Error(`font: glyph ${JSON.stringify(ch)} is not ${GLYPH_WIDTH}×${GLYPH_HEIGHT}`);
    }
    return [
      ch,
      bits
        .join('')
        .split('')
        .map((c) => c === '#'),
    ];
  }),
);

/** The characters the font can draw. */
export const FONT_CHARACTERS: readonly string[] = [...GLYPHS.keys()];

/** Whether every character of `text` (after upper-casing) has a glyph. */
export function canRender(text: string): boolean {
  return [...text.toUpperCase()].every((c) => GLYPHS.has(c));
}

/** The bitmap of one character (upper-cased), or an error naming it. */
export function glyph(ch: string): readonly boolean[] {
  const g = GLYPHS.get(ch.toUpperCase());
  if (!g) throw new Error(`font: no glyph for ${JSON.stringify(ch)} (the font has A–Z, 0–9 and ${"' .,:-+/%?!#"})`);
  return g;
}

/** Width in pixels of `text` drawn at integer `scale` (no trailing spacing). */
export function textWidth(text: string, scale: number): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * (GLYPH_WIDTH + GLYPH_SPACING) - GLYPH_SPACING) * scale;
}

/** Height in pixels of one line of text at `scale`. */
export function textHeight(scale: number): number {
  return GLYPH_HEIGHT * scale;
}

/**
 * Draws `text` (upper-cased) with its top-left corner at (x, y), each font pixel a `scale`×`scale` block of
 * `colour`. Pixels outside the canvas are clipped.
 */
export function drawText(canvas: Canvas, text: string, x: number, y: number, scale: number, colour: Rgb): void {
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`drawText: scale must be a positive integer`);
  let penX = x;
  for (const ch of text) {
    const bits = glyph(ch);
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        if (bits[gy * GLYPH_WIDTH + gx]) canvas.fillRect(penX + gx * scale, y + gy * scale, scale, scale, colour);
      }
    }
    penX += (GLYPH_WIDTH + GLYPH_SPACING) * scale;
  }
}
