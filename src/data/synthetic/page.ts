// Document pages of the generated world: a white page with a title word (font scale 2), a rule, a few lines of
// words and a small ruled table, all in the 5×7 bitmap font. Pages are sampled in families sharing a title, so that
// the pages of a family are minimally different (same title, different body) — the hard negatives of document
// retrieval.
import type { Rng } from '../rng.js';
import { GLYPH_HEIGHT, textWidth } from './font.js';
import { between, pick, sample } from './random.js';
import { BODY_WORDS, TABLE_HEADERS } from './vocabulary.js';

export interface Page {
  width: number;
  height: number;
  title: string;
  /** Words of each body line. */
  lines: string[][];
  table: { columns: string[]; rows: string[][] };
}

/** Page sizes (multiples of 28, at most 168×224): portrait, like document pages. */
export const PAGE_SIZES: readonly (readonly [number, number])[] = [
  [112, 140],
  [112, 168],
  [140, 168],
  [140, 196],
  [168, 196],
  [168, 224],
];

const MARGIN = 4;
const LINE_HEIGHT = GLYPH_HEIGHT + 2;
const ROW_HEIGHT = GLYPH_HEIGHT + 4;
const CELL_PAD = 2;

export interface PageLayout {
  margin: number;
  title: { x: number; y: number; scale: number };
  rule: number;
  lines: { text: string; x: number; y: number }[];
  table: {
    x: number;
    y: number;
    width: number;
    height: number;
    rowEdges: number[];
    columnEdges: number[];
    cells: { text: string; x: number; y: number }[];
  };
  /** The lowest pixel row used. */
  bottom: number;
}

/** Where everything of a page goes (pure function of the page). */
export function layoutPage(page: Page): PageLayout {
  const titleScale = textWidth(page.title, 2) <= page.width - 2 * MARGIN ? 2 : 1;
  const title = { x: MARGIN, y: MARGIN, scale: titleScale };
  const rule = MARGIN + GLYPH_HEIGHT * titleScale + 3;
  let y = rule + 4;
  const lines = page.lines.map((words) => {
    const line = { text: words.join(' '), x: MARGIN, y };
    y += LINE_HEIGHT;
    return line;
  });
  y += 3;
  const all = [page.table.columns, ...page.table.rows];
  const widths = page.table.columns.map((_, c) => Math.max(...all.map((r) => textWidth(r[c]!, 1))) + 2 * CELL_PAD + 1);
  const columnEdges = [MARGIN];
  for (const w of widths) columnEdges.push(columnEdges.at(-1)! + w);
  const rowEdges = all.map((_, r) => y + r * ROW_HEIGHT);
  rowEdges.push(y + all.length * ROW_HEIGHT);
  const cells = all.flatMap((row, r) =>
    row.map((text, c) => ({ text, x: columnEdges[c]! + CELL_PAD + 1, y: rowEdges[r]! + 2 })),
  );
  const table = {
    x: MARGIN,
    y,
    width: columnEdges.at(-1)! - MARGIN,
    height: all.length * ROW_HEIGHT,
    rowEdges,
    columnEdges,
    cells,
  };
  return { margin: MARGIN, title, rule, lines, table, bottom: y + table.height };
}

/** Whether the page's content fits inside it. */
export function pageFits(page: Page): boolean {
  const l = layoutPage(page);
  const widest = Math.max(
    l.title.x + textWidth(page.title, l.title.scale),
    ...l.lines.map((x) => x.x + textWidth(x.text, 1)),
    l.table.x + l.table.width,
  );
  return widest <= page.width - MARGIN && l.bottom <= page.height - MARGIN;
}

/** Every word shown on the page (title, body, table headers and cells). */
export function pageWords(page: Page): Set<string> {
  return new Set([page.title, ...page.lines.flat(), ...page.table.columns, ...page.table.rows.flat()]);
}

/** The body words of a page (the words of its lines), in reading order without repeats. */
export function bodyWords(page: Page): string[] {
  return [...new Set(page.lines.flat())];
}

const SHORT_WORDS = BODY_WORDS.filter((w) => w.length <= 6);

function sampleTable(rng: Rng): Page['table'] {
  const heads = sample(rng, TABLE_HEADERS, between(rng, 2, 3));
  const rows = Array.from({ length: between(rng, 2, 3) }, () =>
    heads.map((h) => (h.cell === 'number' ? String(between(rng, 1, 999)) : pick(rng, SHORT_WORDS))),
  );
  return { columns: heads.map((h) => h.header), rows };
}

/** A random page with the given title; body lines fill the width with distinct words. */
export function samplePage(rng: Rng, title: string): Page {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [width, height] = pick(rng, PAGE_SIZES);
    const used = new Set<string>();
    const lines: string[][] = [];
    // As many lines as the page has room for next to a table of up to 4 rows, at least 3 and at most 8.
    const room = Math.floor(
      (height - MARGIN - (MARGIN + GLYPH_HEIGHT * 2 + 7) - 3 - 4 * ROW_HEIGHT - MARGIN) / LINE_HEIGHT,
    );
    const nLines = between(rng, 3, Math.max(3, Math.min(8, room)));
    for (let i = 0; i < nLines; i++) {
      const words: string[] = [];
      const target = between(rng, 2, 4);
      for (let t = 0; t < 20 && words.length < target; t++) {
        const w = pick(rng, BODY_WORDS);
        if (used.has(w)) continue;
        if (textWidth([...words, w].join(' '), 1) > width - 2 * MARGIN) break;
        words.push(w);
        used.add(w);
      }
      if (words.length > 0) lines.push(words);
    }
    const page: Page = { width, height, title, lines, table: sampleTable(rng) };
    if (pageFits(page)) return page;
  }
  throw new Error(`samplePage: could not lay out a page titled ${title} in 50 attempts`);
}

/**
 * Query words for a page: its title and `n` of its body words, chosen so that no page of `others` shows all of
 * them (the page is then the only correct answer). Undefined when every draw in 30 collides.
 */
export function distinctiveWords(rng: Rng, page: Page, others: readonly Page[], n = 2): string[] | undefined {
  const body = bodyWords(page);
  if (body.length < n) return undefined;
  const otherWords = others.filter((p) => p !== page).map(pageWords);
  for (let t = 0; t < 30; t++) {
    const words = [page.title, ...sample(rng, body, n)];
    if (!otherWords.some((s) => words.every((w) => s.has(w)))) return words;
  }
  return undefined;
}
