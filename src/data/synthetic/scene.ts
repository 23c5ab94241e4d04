// Scenes of the generated world: a few coloured shapes on a light background, optionally with a word written in a
// band at the top or bottom. A scene is pure data (its ground truth); render.ts draws it and language.ts describes
// it. Four kinds:
//   single — one object;
//   count  — 1–4 identical objects, optionally one distractor of another shape and colour;
//   pair   — two objects in a clear spatial relation (one dominates the other's axis by a factor 2);
//   multi  — 2–4 objects, all shapes and all colours distinct (so "the red one" / "the star" is unambiguous).
// Placement keeps objects 10 px apart and 2 px from the edges, so every object is fully visible and its crop
// (grounding) shows it alone.
import type { Rng } from '../rng.js';
import { between, chance, pick } from './random.js';
import {
  BACKGROUNDS,
  COLOURS,
  LABEL_WORDS,
  RELATION_INVERSE,
  SHAPES,
  SIZES,
  TEXTURES,
  type BackgroundName,
  type ColourName,
  type Relation,
  type ShapeName,
  type SizeName,
  type TextureName,
} from './vocabulary.js';
import { GLYPH_HEIGHT, textWidth } from './font.js';

export type SceneKind = 'single' | 'count' | 'pair' | 'multi';

export interface SceneObject {
  shape: ShapeName;
  colour: ColourName;
  size: SizeName;
  /** Centre (pixels; half-integers so shapes are symmetric on the pixel grid). */
  cx: number;
  cy: number;
  /** Radius in pixels. */
  r: number;
}

export interface SceneLabel {
  text: string;
  position: 'top' | 'bottom';
  scale: number;
  x: number;
  y: number;
}

export interface Scene {
  kind: SceneKind;
  width: number;
  height: number;
  background: BackgroundName;
  texture: TextureName;
  textureSeed: number;
  /** count: the counted copies first, then the distractor (if any). pair: A then B, with A `relation` B. */
  objects: SceneObject[];
  /** count: how many copies of objects[0] there are. */
  count?: number;
  /** pair: the relation of objects[0] to objects[1]. */
  relation?: Relation;
  label?: SceneLabel;
}

/** Which colour–shape combinations a part of the world may use. */
export type ComboFilter = (colour: ColourName, shape: ShapeName) => boolean;

export const ANY_COMBO: ComboFilter = () => true;

/** Side lengths of scenes: multiples of the 28-px merged patch of Qwen2.5-VL. */
export const SCENE_SIDES = [56, 84, 112, 140, 168] as const;

const EDGE = 2;
const GAP = 10;

export function radiusOf(size: SizeName, width: number, height: number): number {
  const m = Math.min(width, height);
  return size === 'small' ? Math.max(8, Math.round(0.2 * m)) : Math.max(13, Math.round(0.32 * m));
}

/** The short description of an object: "red circle", or with size "small red circle". */
export function objectName(o: { colour: ColourName; shape: ShapeName; size?: SizeName }, withSize = false): string {
  return withSize && o.size ? `${o.size} ${o.colour} ${o.shape}` : `${o.colour} ${o.shape}`;
}

/** The vertical band free of the label. */
function freeBand(scene: Pick<Scene, 'height' | 'label'>): [number, number] {
  const l = scene.label;
  if (!l) return [0, scene.height];
  const band = GLYPH_HEIGHT * l.scale + 4;
  return l.position === 'top' ? [band, scene.height] : [0, scene.height - band];
}

function fits(
  o: SceneObject,
  scene: Pick<Scene, 'width' | 'height' | 'label'>,
  others: readonly SceneObject[],
): boolean {
  const [top, bottom] = freeBand(scene);
  if (o.cx - o.r < EDGE || o.cx + o.r > scene.width - EDGE) return false;
  if (o.cy - o.r < top + EDGE || o.cy + o.r > bottom - EDGE) return false;
  return others.every((p) => {
    const dx = p.cx - o.cx;
    const dy = p.cy - o.cy;
    const min = p.r + o.r + GAP;
    return dx * dx + dy * dy >= min * min;
  });
}

/** Whether every object is inside the scene, clear of the label and of the others. */
export function sceneFits(scene: Scene): boolean {
  return scene.objects.every((o, i) => fits(o, scene, scene.objects.slice(0, i)));
}

/** The relation of `a` to `b` when one axis clearly dominates (twice the other), else undefined. */
export function relationOf(a: SceneObject, b: SceneObject): Relation | undefined {
  const dx = b.cx - a.cx;
  const dy = b.cy - a.cy;
  if (Math.abs(dx) >= 2 * Math.abs(dy) && dx !== 0) return dx > 0 ? 'left of' : 'right of';
  if (Math.abs(dy) >= 2 * Math.abs(dx) && dy !== 0) return dy > 0 ? 'above' : 'below';
  return undefined;
}

/** Tries to place an object of radius r: a random half-integer centre that fits, or undefined after 200 tries. */
function place(
  rng: Rng,
  scene: Pick<Scene, 'width' | 'height' | 'label'>,
  base: Omit<SceneObject, 'cx' | 'cy'>,
  others: readonly SceneObject[],
  accept: (o: SceneObject) => boolean = () => true,
): SceneObject | undefined {
  const [top, bottom] = freeBand(scene);
  const lx = Math.ceil(base.r + EDGE);
  const hx = Math.floor(scene.width - base.r - EDGE - 1);
  const ly = Math.ceil(top + base.r + EDGE);
  const hy = Math.floor(bottom - base.r - EDGE - 1);
  if (hx < lx || hy < ly) return undefined;
  for (let t = 0; t < 200; t++) {
    const o = { ...base, cx: between(rng, lx, hx) + 0.5, cy: between(rng, ly, hy) + 0.5 };
    if (fits(o, scene, others) && accept(o)) return o;
  }
  return undefined;
}

function sampleLabel(rng: Rng, width: number, height: number): SceneLabel {
  const text = pick(rng, LABEL_WORDS);
  const scale = height >= 112 && textWidth(text, 2) <= width - 8 ? 2 : 1;
  const position = chance(rng, 0.5) ? 'top' : 'bottom';
  const x = Math.floor((width - textWidth(text, scale)) / 2);
  const y = position === 'top' ? 2 : height - GLYPH_HEIGHT * scale - 2;
  return { text, position, scale, x, y };
}

/** A colour–shape pair allowed by `allowed` and different from those in `avoid` (by colour and by shape). */
function sampleCombo(
  rng: Rng,
  allowed: ComboFilter,
  avoid: readonly { colour: ColourName; shape: ShapeName }[],
): { colour: ColourName; shape: ShapeName } {
  const options: { colour: ColourName; shape: ShapeName }[] = [];
  for (const colour of COLOURS) {
    if (avoid.some((a) => a.colour === colour)) continue;
    for (const shape of SHAPES) {
      if (!avoid.some((a) => a.shape === shape) && allowed(colour, shape)) options.push({ colour, shape });
    }
  }
  return pick(rng, options);
}

export interface SceneRequest {
  kind: SceneKind;
  /** Combinations the scene may contain (default: all). */
  allowed?: ComboFilter;
  /** The colour and shape of objects[0] (overrides `allowed` for it). */
  first?: { colour: ColourName; shape: ShapeName };
  /** Probability of a written word (default 0). */
  labelProbability?: number;
}

/** A random scene of the requested kind. Deterministic in the generator's state. */
export function sampleScene(rng: Rng, request: SceneRequest): Scene {
  const allowed = request.allowed ?? ANY_COMBO;
  for (let attempt = 0; attempt < 100; attempt++) {
    const minSide = request.kind === 'single' ? 56 : 84;
    const sides = SCENE_SIDES.filter((s) => s >= minSide);
    const width = pick(rng, sides);
    const height = pick(rng, sides);
    const label = chance(rng, request.labelProbability ?? 0) ? sampleLabel(rng, width, height) : undefined;
    const frame = { width, height, ...(label ? { label } : {}) };
    const objects = sampleObjects(rng, request, allowed, frame);
    if (!objects) continue;
    return {
      kind: request.kind,
      width,
      height,
      background: pick(rng, BACKGROUNDS),
      texture: pick(rng, TEXTURES),
      textureSeed: rng.nextUint32() & 0x7fffffff,
      ...objects,
      ...(label ? { label } : {}),
    };
  }
  throw new Error(`sampleScene: could not place a ${request.kind} scene in 100 attempts`);
}

type Placed = Pick<Scene, 'objects' | 'count' | 'relation'>;

function sampleObjects(
  rng: Rng,
  request: SceneRequest,
  allowed: ComboFilter,
  frame: Pick<Scene, 'width' | 'height' | 'label'>,
): Placed | undefined {
  const { width, height } = frame;
  const firstCombo = request.first ?? sampleCombo(rng, allowed, []);
  const objects: SceneObject[] = [];
  const add = (
    combo: { colour: ColourName; shape: ShapeName },
    size: SizeName,
    accept?: (o: SceneObject) => boolean,
  ) => {
    const o = place(rng, frame, { ...combo, size, r: radiusOf(size, width, height) }, objects, accept);
    if (o) objects.push(o);
    return o !== undefined;
  };
  switch (request.kind) {
    case 'single':
      return add(firstCombo, pick(rng, SIZES)) ? { objects } : undefined;
    case 'count': {
      const count = between(rng, 1, 4);
      const size: SizeName = count >= 3 ? 'small' : pick(rng, SIZES);
      for (let i = 0; i < count; i++) if (!add(firstCombo, size)) return undefined;
      if (chance(rng, 0.5) && !add(sampleCombo(rng, allowed, [firstCombo]), 'small')) return undefined;
      return { objects, count };
    }
    case 'pair': {
      const relation = pick(rng, ['left of', 'right of', 'above', 'below'] as const);
      if (!add(firstCombo, pick(rng, SIZES))) return undefined;
      const a = objects[0]!;
      const combo = sampleCombo(rng, allowed, [firstCombo]);
      // B is placed so that A has `relation` to it.
      if (!add(combo, pick(rng, SIZES), (b) => relationOf(a, b) === relation)) return undefined;
      return { objects, relation };
    }
    case 'multi': {
      const n = between(rng, 2, 4);
      if (!add(firstCombo, n >= 3 ? 'small' : pick(rng, SIZES))) return undefined;
      for (let i = 1; i < n; i++) {
        if (!add(sampleCombo(rng, allowed, objects), n >= 3 ? 'small' : pick(rng, SIZES))) return undefined;
      }
      return { objects };
    }
  }
}

/** The object descriptions of a scene that its canonical key and captions use. */
export function countGroup(scene: Scene): { main: SceneObject; count: number; distractor?: SceneObject } {
  const count = scene.count ?? 1;
  const distractor = scene.objects[count];
  return { main: scene.objects[0]!, count, ...(distractor ? { distractor } : {}) };
}

/**
 * The canonical meaning of a scene: what its captions say, independent of wording and of exact positions. Two scenes
 * with the same key are indistinguishable by the world's captions (the retrieval tasks never offer both).
 */
export function sceneKey(scene: Scene): string {
  let key: string;
  switch (scene.kind) {
    case 'single':
      key = `single:${objectName(scene.objects[0]!, true)}`;
      break;
    case 'count': {
      const g = countGroup(scene);
      key = `count:${g.count}x${objectName(g.main)}` + (g.distractor ? `+${objectName(g.distractor)}` : '');
      break;
    }
    case 'pair': {
      const [a, b] = scene.objects as [SceneObject, SceneObject];
      const rel = scene.relation!;
      // Canonical direction: "left of" / "above".
      key =
        rel === 'left of' || rel === 'above'
          ? `pair:${objectName(a, true)}|${rel}|${objectName(b, true)}`
          : `pair:${objectName(b, true)}|${RELATION_INVERSE[rel]}|${objectName(a, true)}`;
      break;
    }
    case 'multi':
      key = `multi:${scene.objects
        .map((o) => objectName(o))
        .sort()
        .join(',')}`;
      break;
  }
  return scene.label ? `${key}|word=${scene.label.text}` : key;
}

export type EditKind = 'colour' | 'shape' | 'size' | 'count' | 'relation' | 'word';

export interface SceneEdit {
  kind: EditKind;
  /** What changed, e.g. "red → blue". */
  change: string;
}

/**
 * A minimally different scene: one attribute of one object (or of the counted group) changed, the count changed by
 * one, the two objects of a pair swapped (the relation reversed), or the written word replaced. Positions, sizes and
 * the background stay the same where the edit allows. Returns undefined when no edit of the drawn kind is possible
 * (the caller draws again). The result respects `allowed` and has a different {@link sceneKey}.
 */
export function editScene(
  rng: Rng,
  scene: Scene,
  kind: EditKind,
  allowed: ComboFilter = ANY_COMBO,
): { scene: Scene; edit: SceneEdit } | undefined {
  const clone: Scene = structuredClone(scene);
  const objects = clone.objects;
  const usedColours = new Set(objects.map((o) => o.colour));
  const usedShapes = new Set(objects.map((o) => o.shape));
  // The counted copies of a count scene change together; any other object alone.
  const count = scene.count ?? 1;
  const groups: number[][] =
    scene.kind === 'count'
      ? [Array.from({ length: count }, (_, k) => k), ...(objects.length > count ? [[count]] : [])]
      : objects.map((_, i) => [i]);
  const target = pick(rng, groups);
  const first = objects[target[0]!]!;
  let edit: SceneEdit;
  switch (kind) {
    case 'colour': {
      const options = COLOURS.filter((c) => !usedColours.has(c) && allowed(c, first.shape));
      if (options.length === 0) return undefined;
      const to = pick(rng, options);
      edit = { kind, change: `${first.colour} → ${to}` };
      for (const i of target) objects[i]!.colour = to;
      break;
    }
    case 'shape': {
      const options = SHAPES.filter((s) => !usedShapes.has(s) && allowed(first.colour, s));
      if (options.length === 0) return undefined;
      const to = pick(rng, options);
      edit = { kind, change: `${first.shape} → ${to}` };
      for (const i of target) objects[i]!.shape = to;
      break;
    }
    case 'size': {
      if (scene.kind !== 'single' && scene.kind !== 'pair') return undefined;
      const to: SizeName = first.size === 'small' ? 'large' : 'small';
      edit = { kind, change: `${first.size} → ${to}` };
      for (const i of target) {
        objects[i]!.size = to;
        objects[i]!.r = radiusOf(to, clone.width, clone.height);
      }
      break;
    }
    case 'count': {
      if (scene.kind !== 'count') return undefined;
      const up = count === 1 || (count < 4 && chance(rng, 0.5));
      if (up) {
        const { shape, colour, size, r } = objects[0]!;
        const copy = place(rng, clone, { shape, colour, size, r }, objects);
        if (!copy) return undefined;
        objects.splice(count, 0, copy);
      } else {
        objects.splice(count - 1, 1);
      }
      clone.count = up ? count + 1 : count - 1;
      edit = { kind, change: `${count} → ${clone.count}` };
      break;
    }
    case 'relation': {
      if (scene.kind !== 'pair') return undefined;
      const [a, b] = objects as [SceneObject, SceneObject];
      [a.cx, b.cx, a.cy, b.cy] = [b.cx, a.cx, b.cy, a.cy];
      clone.relation = RELATION_INVERSE[scene.relation!];
      edit = { kind, change: `${scene.relation} → ${clone.relation}` };
      break;
    }
    case 'word': {
      const from = clone.label;
      if (!from) return undefined;
      const to = pick(
        rng,
        LABEL_WORDS.filter((w) => w !== from.text),
      );
      const x = Math.floor((clone.width - textWidth(to, from.scale)) / 2);
      if (x < 1) return undefined;
      clone.label = { ...from, text: to, x };
      edit = { kind, change: `${from.text} → ${to}` };
      break;
    }
  }
  if (!sceneFits(clone)) return undefined;
  if (clone.kind === 'pair' && relationOf(clone.objects[0]!, clone.objects[1]!) !== clone.relation) return undefined;
  if (sceneKey(clone) === sceneKey(scene)) return undefined;
  return { scene: clone, edit };
}

/** Edit kinds that apply to a scene. */
export function editKinds(scene: Scene): EditKind[] {
  const kinds: EditKind[] = ['colour', 'shape'];
  if (scene.kind === 'single' || scene.kind === 'pair') kinds.push('size');
  if (scene.kind === 'count') kinds.push('count');
  if (scene.kind === 'pair') kinds.push('relation');
  if (scene.label) kinds.push('word');
  return kinds;
}

/** A minimally different scene with a random applicable edit (undefined when none worked in 20 draws). */
export function randomEdit(
  rng: Rng,
  scene: Scene,
  allowed: ComboFilter = ANY_COMBO,
  avoidKeys: ReadonlySet<string> = new Set(),
): { scene: Scene; edit: SceneEdit } | undefined {
  const kinds = editKinds(scene);
  for (let t = 0; t < 20; t++) {
    const r = editScene(rng, scene, pick(rng, kinds), allowed);
    if (r && !avoidKeys.has(sceneKey(r.scene))) return r;
  }
  return undefined;
}
