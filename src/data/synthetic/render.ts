// Drawing scenes and document pages onto canvases, and cutting object crops for the grounding tasks.
import { drawText } from './font.js';
import type { Page } from './page.js';
import { layoutPage } from './page.js';
import { Canvas, drawShape, hline, paintBackground, vline } from './raster.js';
import type { Scene, SceneObject } from './scene.js';
import { BACKGROUND_RGB, COLOUR_RGB, INK, PAGE_RGB, RULE_RGB } from './vocabulary.js';

export function renderScene(scene: Scene): Canvas {
  const canvas = new Canvas(scene.width, scene.height);
  paintBackground(canvas, BACKGROUND_RGB[scene.background], scene.texture, scene.textureSeed);
  for (const o of scene.objects) drawShape(canvas, o.shape, o.cx, o.cy, o.r, COLOUR_RGB[o.colour]);
  const l = scene.label;
  if (l) drawText(canvas, l.text, l.x, l.y, l.scale, INK);
  return canvas;
}

/** Minimum crop side: one merged Qwen2.5-VL patch. */
export const MIN_CROP = 28;

/** The crop box of an object: its bounding square plus a margin, at least 28 px a side, inside the image. */
export function cropBox(
  scene: Pick<Scene, 'width' | 'height'>,
  o: SceneObject,
): { x: number; y: number; width: number; height: number } {
  const margin = Math.max(3, Math.round(o.r / 3));
  const span = (c: number, limit: number): [number, number] => {
    let lo = Math.floor(c - o.r - margin);
    let hi = Math.ceil(c + o.r + margin);
    if (hi - lo < MIN_CROP) {
      const grow = MIN_CROP - (hi - lo);
      lo -= Math.floor(grow / 2);
      hi += Math.ceil(grow / 2);
    }
    if (lo < 0) [lo, hi] = [0, Math.min(limit, hi - lo)];
    if (hi > limit) [lo, hi] = [Math.max(0, lo - (hi - limit)), limit];
    return [lo, hi];
  };
  const [x0, x1] = span(o.cx, scene.width);
  const [y0, y1] = span(o.cy, scene.height);
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

export function renderPage(page: Page): Canvas {
  const canvas = new Canvas(page.width, page.height, PAGE_RGB);
  const layout = layoutPage(page);
  drawText(canvas, page.title, layout.title.x, layout.title.y, layout.title.scale, INK);
  hline(canvas, layout.margin, page.width - layout.margin - 1, layout.rule, RULE_RGB);
  for (const line of layout.lines) drawText(canvas, line.text, line.x, line.y, 1, INK);
  const t = layout.table;
  for (const y of t.rowEdges) hline(canvas, t.x, t.x + t.width, y, RULE_RGB);
  for (const x of t.columnEdges) vline(canvas, x, t.y, t.y + t.height, RULE_RGB);
  for (const cell of t.cells) drawText(canvas, cell.text, cell.x, cell.y, 1, INK);
  return canvas;
}
