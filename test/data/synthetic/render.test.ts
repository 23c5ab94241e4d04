// Pixel-level checks of the generated world's rasteriser: bitmap glyphs land where the font says, shapes have their
// colour inside and leave the background outside, areas match geometry, textures stay light, crops contain their
// object, and PNG encoding round-trips the pixels.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import sharp from 'sharp';

import {
  BACKGROUND_RGB,
  Canvas,
  canRender,
  COLOUR_RGB,
  cropBox,
  drawText,
  encodePng,
  FONT_CHARACTERS,
  glyph,
  GLYPH_HEIGHT,
  GLYPH_WIDTH,
  INK,
  interiorPoint,
  layoutPage,
  PAGE_RGB,
  pixelHash,
  renderPage,
  renderScene,
  type Page,
  type Rgb,
  type Scene,
  SHAPES,
  type ShapeName,
  textureOffset,
  textWidth,
} from '../../../src/data/synthetic/index.js';

const WHITE: Rgb = [255, 255, 255];

function scene(shape: ShapeName, overrides: Partial<Scene> = {}): Scene {
  return {
    kind: 'single',
    width: 112,
    height: 112,
    background: 'white',
    texture: 'plain',
    textureSeed: 1,
    objects: [{ shape, colour: 'red', size: 'large', cx: 56.5, cy: 56.5, r: 30 }],
    ...overrides,
  };
}

describe('bitmap font', () => {
  test('every glyph is 5×7 and no two characters share a bitmap', () => {
    const seen = new Map<string, string>();
    for (const ch of FONT_CHARACTERS) {
      const g = glyph(ch);
      assert.equal(g.length, GLYPH_WIDTH * GLYPH_HEIGHT);
      const key = g.map((b) => (b ? '#' : '.')).join('');
      assert.ok(!seen.has(key), `${JSON.stringify(ch)} has the same bitmap as ${JSON.stringify(seen.get(key))}`);
      seen.set(key, ch);
    }
    for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') assert.ok(FONT_CHARACTERS.includes(c), c);
  });

  test('text is drawn with integer scaling at the requested place', () => {
    const canvas = new Canvas(40, 30, WHITE);
    drawText(canvas, 'LT', 2, 3, 2, INK);
    // "L": the left column and the bottom row are ink; the pixel right of the stem at the top is not.
    for (let gy = 0; gy < 7; gy++) {
      assert.deepEqual(canvas.get(2, 3 + gy * 2), INK, `L stem row ${gy}`);
      assert.deepEqual(canvas.get(3, 3 + gy * 2 + 1), INK, 'scale 2 fills a 2×2 block');
    }
    for (let gx = 0; gx < 5; gx++) assert.deepEqual(canvas.get(2 + gx * 2, 3 + 6 * 2), INK, `L base col ${gx}`);
    assert.deepEqual(canvas.get(4, 3), WHITE);
    // "T" starts one glyph advance (6 font pixels = 12 px) later: its top bar spans 10 px, its stem is the middle column.
    for (let x = 14; x < 24; x++) assert.deepEqual(canvas.get(x, 3), INK, `T bar x=${x}`);
    assert.deepEqual(canvas.get(18, 3 + 12), INK);
    assert.deepEqual(canvas.get(14, 3 + 12), WHITE);
    // The spacing column between the glyphs stays white, and nothing is drawn outside the text box.
    for (let y = 3; y < 17; y++) assert.deepEqual(canvas.get(12, y), WHITE);
    assert.equal(textWidth('LT', 2), 22);
    for (let y = 0; y < 30; y++) for (const x of [0, 1, 24, 39]) assert.deepEqual(canvas.get(x, y), WHITE);
  });

  test('unknown characters are refused with the character named', () => {
    assert.equal(canRender('Hello world 42%'), true);
    assert.equal(canRender('é'), false);
    assert.throws(() => drawText(new Canvas(10, 10), 'é', 0, 0, 1, INK), /no glyph for "é"/);
  });
});

describe('shapes', () => {
  for (const shape of SHAPES) {
    test(`${shape}: its colour inside, the background in the corners and outside its radius`, () => {
      const s = scene(shape);
      const canvas = renderScene(s);
      const o = s.objects[0]!;
      const [ux, uy] = interiorPoint(shape);
      assert.deepEqual(canvas.get(Math.floor(o.cx + ux * o.r), Math.floor(o.cy + uy * o.r)), COLOUR_RGB.red);
      const bg = BACKGROUND_RGB.white;
      for (const [x, y] of [
        [0, 0],
        [111, 0],
        [0, 111],
        [111, 111],
        [Math.floor(o.cx + 0.98 * o.r), Math.floor(o.cy - 0.98 * o.r)],
        [Math.floor(o.cx + o.r + 2), Math.floor(o.cy)],
        [Math.floor(o.cx), Math.floor(o.cy - o.r - 2)],
      ] as const) {
        assert.deepEqual(canvas.get(x, y), bg, `(${x}, ${y})`);
      }
    });
  }

  test('the ring has a hole; the circle has none', () => {
    assert.deepEqual(renderScene(scene('ring')).get(56, 56), BACKGROUND_RGB.white);
    assert.deepEqual(renderScene(scene('circle')).get(56, 56), COLOUR_RGB.red);
  });

  test('areas match geometry: πr² for the circle, (1.6r)² for the square, within anti-aliasing', () => {
    const covered = (c: Canvas) => {
      // Coverage of each pixel from its green channel: background 250 → 0, red's 39 → 1 (linear blend).
      let sum = 0;
      for (let y = 0; y < c.height; y++) {
        for (let x = 0; x < c.width; x++) sum += (250 - c.get(x, y)[1]) / (250 - COLOUR_RGB.red[1]);
      }
      return sum;
    };
    const r = 30;
    const circle = covered(renderScene(scene('circle')));
    assert.ok(Math.abs(circle - Math.PI * r * r) / (Math.PI * r * r) < 0.01, `circle area ${circle}`);
    const square = covered(renderScene(scene('square')));
    assert.ok(Math.abs(square - (1.6 * r) ** 2) / (1.6 * r) ** 2 < 0.01, `square area ${square}`);
  });

  test('textures stay within ±8 of the background colour; plain is flat', () => {
    for (const texture of ['plain', 'noise', 'stripes', 'checker'] as const) {
      for (let y = 0; y < 40; y++) {
        for (let x = 0; x < 40; x++) {
          const o = textureOffset(texture, x, y, 12345);
          assert.ok(Math.abs(o) <= 8, `${texture} (${x}, ${y}) offset ${o}`);
          if (texture === 'plain') assert.equal(o, 0);
        }
      }
    }
    const noisy = renderScene(scene('circle', { texture: 'noise', background: 'pale blue' }));
    const [r, g, b] = noisy.get(1, 1);
    const [br, bgc, bb] = BACKGROUND_RGB['pale blue'];
    assert.ok(Math.abs(r - br) <= 5 && Math.abs(g - bgc) <= 5 && Math.abs(b - bb) <= 5);
  });

  test('a crop holds its whole object, is at least 28 px a side and lies inside the image', () => {
    const s: Scene = scene('star', {
      width: 84,
      height: 56,
      objects: [{ shape: 'star', colour: 'blue', size: 'small', cx: 6.5, cy: 50.5, r: 6 }],
    });
    const box = cropBox(s, s.objects[0]!);
    assert.ok(box.width >= 28 && box.height >= 28);
    assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= 84 && box.y + box.height <= 56);
    assert.ok(box.x <= 0.5 && box.x + box.width >= 12.5 && box.y <= 44.5 && box.y + box.height >= 56);
  });
});

describe('pages and PNG', () => {
  const page: Page = {
    width: 112,
    height: 140,
    title: 'MENU',
    lines: [['APPLE', 'BREAD'], ['TEA']],
    table: { columns: ['ITEM', 'QTY'], rows: [['SOUP', '12']] },
  };

  test('a page is white with the title in ink where the layout puts it', () => {
    const canvas = renderPage(page);
    const l = layoutPage(page);
    assert.deepEqual(canvas.get(0, 0), PAGE_RGB);
    assert.deepEqual(canvas.get(111, 139), PAGE_RGB);
    // "M" at scale 2: its left stem is ink at every row; the pixel between M's legs in the bottom row is paper.
    for (let y = 0; y < 14; y++) assert.deepEqual(canvas.get(l.title.x, l.title.y + y), INK);
    assert.deepEqual(canvas.get(l.title.x + 4, l.title.y + 13), PAGE_RGB);
  });

  test('PNG encoding keeps every pixel; the pixel hash depends on content only', async () => {
    const canvas = renderScene(scene('hexagon', { texture: 'noise' }));
    const png = await encodePng(canvas);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    assert.deepEqual(new Uint8Array(data), canvas.data);
    assert.equal(pixelHash(canvas), pixelHash(renderScene(scene('hexagon', { texture: 'noise' }))));
    assert.notEqual(pixelHash(canvas), pixelHash(renderScene(scene('hexagon', { texture: 'noise', textureSeed: 2 }))));
  });
});
