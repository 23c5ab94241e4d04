// Pools of rendered content shared by the parts of the world: families of minimally different scenes (a base scene
// and one-edit variants of it), families of pages sharing a title, object crops, and the held-out colour–shape
// combinations. Everything is written through the ImageStore, which records the ground truth.
import type { Rng } from '../rng.js';
import type { ImageStore } from './image-store.js';
import { type Page, samplePage } from './page.js';
import { pick, streamRng, STREAMS } from './random.js';
import type { Canvas } from './raster.js';
import { cropBox, renderPage, renderScene } from './render.js';
import {
  ANY_COMBO,
  type ComboFilter,
  randomEdit,
  sampleScene,
  type Scene,
  type SceneEdit,
  sceneKey,
  type SceneKind,
  type SceneRequest,
} from './scene.js';
import { COLOURS, SHAPES, TITLE_WORDS, type ColourName, type ShapeName } from './vocabulary.js';

export interface Combo {
  colour: ColourName;
  shape: ShapeName;
}

/**
 * The held-out colour–shape combinations of a seed: one shape per colour along a seeded permutation, so every colour
 * and every shape is held out exactly once (8 of the 64 combinations). They never occur in a training pair.
 */
export function heldOutCombos(seed: number): Combo[] {
  const rng = streamRng(seed, STREAMS.heldOut);
  const shapes = rng.shuffle([...SHAPES]);
  return COLOURS.map((colour, i) => ({ colour, shape: shapes[i]! }));
}

export function comboFilter(heldOut: readonly Combo[], include: 'seen' | 'all'): ComboFilter {
  if (include === 'all') return ANY_COMBO;
  const banned = new Set(heldOut.map((c) => `${c.colour} ${c.shape}`));
  return (colour, shape) => !banned.has(`${colour} ${shape}`);
}

export interface SceneItem {
  scene: Scene;
  key: string;
  /** Image path relative to the world root (absent for scenes that are only described, never drawn). */
  path?: string;
  /** How it differs from its family's base (absent for the base). */
  edit?: SceneEdit;
}

const KINDS: readonly SceneKind[] = [
  'single',
  'single',
  'single',
  'count',
  'count',
  'pair',
  'pair',
  'pair',
  'multi',
  'multi',
];

/** A scene kind with weights single 30 %, count 20 %, pair 30 %, multi 20 %. */
export function drawKind(rng: Rng): SceneKind {
  return pick(rng, KINDS);
}

export const LABEL_PROBABILITY: Readonly<Record<SceneKind, number>> = {
  single: 0.3,
  count: 0.15,
  pair: 0.15,
  multi: 0.15,
};

/**
 * A base scene and `size − 1` one-edit variants of it, all with distinct keys (and none in `avoidKeys`). Retries
 * with a new base when the base admits too few edits.
 */
export function sceneFamily(
  rng: Rng,
  request: SceneRequest,
  size: number,
  editsAllowed: ComboFilter,
  avoidKeys: ReadonlySet<string> = new Set(),
): SceneItem[] {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = sampleScene(rng, request);
    const items: SceneItem[] = [{ scene: base, key: sceneKey(base) }];
    if (avoidKeys.has(items[0]!.key)) continue;
    const keys = new Set([...avoidKeys, items[0]!.key]);
    while (items.length < size) {
      const v = randomEdit(rng, base, editsAllowed, keys);
      if (!v) break;
      const key = sceneKey(v.scene);
      keys.add(key);
      items.push({ scene: v.scene, key, edit: v.edit });
    }
    if (items.length === size) return items;
  }
  throw new Error(`sceneFamily: no ${request.kind} scene with ${size - 1} distinct variants in 50 attempts`);
}

/** Renders and stores a scene; returns its canvas (for crops). */
export async function storeScene(store: ImageStore, rel: string, item: SceneItem): Promise<Canvas> {
  const canvas = renderScene(item.scene);
  await store.put(rel, canvas, {
    kind: 'scene',
    key: item.key,
    scene: item.scene,
    ...(item.edit ? { edit: item.edit } : {}),
  });
  item.path = rel;
  return canvas;
}

export interface CropItem {
  /** Path relative to the world root. */
  path: string;
  source: SceneItem;
  objectIndex: number;
  /** "colour shape" of the object: what a grounding query names. */
  name: string;
}

/** Cuts and stores the crop of object `i` of a stored scene. */
export async function storeCrop(
  store: ImageStore,
  rel: string,
  item: SceneItem,
  canvas: Canvas,
  objectIndex: number,
): Promise<CropItem> {
  const o = item.scene.objects[objectIndex]!;
  const box = cropBox(item.scene, o);
  await store.put(rel, canvas.crop(box.x, box.y, box.width, box.height), {
    kind: 'crop',
    source: item.path!,
    objectIndex,
    object: { shape: o.shape, colour: o.colour, size: o.size },
    box,
  });
  return { path: rel, source: item, objectIndex, name: `${o.colour} ${o.shape}` };
}

export interface PageItem {
  id: string;
  page: Page;
  path?: string;
}

/** `families` families of `size` pages, each family sharing a title. */
export function pageFamilies(rng: Rng, families: number, size: number, idPrefix: string): PageItem[][] {
  let n = 0;
  return Array.from({ length: families }, () => {
    const title = pick(rng, TITLE_WORDS);
    return Array.from({ length: size }, () => ({
      id: `${idPrefix}${String(n++).padStart(5, '0')}`,
      page: samplePage(rng, title),
    }));
  });
}

export async function storePage(store: ImageStore, rel: string, item: PageItem): Promise<void> {
  await store.put(rel, renderPage(item.page), { kind: 'page', id: item.id, page: item.page });
  item.path = rel;
}

/** `n` zero-padded. */
export const num = (n: number, width = 5) => String(n).padStart(width, '0');
