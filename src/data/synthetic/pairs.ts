// Stage-2 training pairs in the MoCa / MMEB-train format (docs/training.md, Stage 2): one JSON Lines file per task
// subset under pairs/, rows {id, qry, qry_image_path, pos_text, pos_image_path, neg_text[], neg_image_path[]} with
// `<|image_1|>` marking the image and two hard negatives per row. Image paths are relative to pairs/ (the pair
// reader's default image root). The four MMEB meta-tasks are covered:
//   classification — cls_shape, cls_colour (image → class name);
//   VQA            — vqa (image + question → short answer; negatives: other answers of the same type);
//   retrieval      — ret_t2i (caption → image; negatives: one-edit variant scenes), ret_i2t (image → caption;
//                    negatives: the variants' captions), ret_doc (words → page; negatives: pages with the same title);
//   grounding      — ground (image + object name → crop; negatives: crops of the other objects of the scene).
// No training scene contains a held-out colour–shape combination.
import type { Rng } from '../rng.js';
import { type BuildContext, jsonl, relativeTo } from './context.js';
import { answerCandidates, caption, IMAGE_MARKER, PROMPTS, question, questionTypes } from './language.js';
import { distinctiveWords } from './page.js';
import {
  comboFilter,
  type CropItem,
  drawKind,
  LABEL_PROBABILITY,
  num,
  type PageItem,
  pageFamilies,
  sceneFamily,
  type SceneItem,
  storeCrop,
  storePage,
  storeScene,
} from './pools.js';
import { pick, sample, streamRng, STREAMS } from './random.js';
import { sampleScene, sceneKey } from './scene.js';
import { COLOURS, SHAPES } from './vocabulary.js';

const DIR = 'pairs';

export const PAIR_SUBSETS = ['cls_shape', 'cls_colour', 'vqa', 'ret_t2i', 'ret_i2t', 'ret_doc', 'ground'] as const;
export type PairSubsetName = (typeof PAIR_SUBSETS)[number];

interface Side {
  text: string;
  image?: string;
}

export interface PairRow {
  id: string;
  qry: string;
  qry_image_path: string;
  pos_text: string;
  pos_image_path: string;
  neg_text: string[];
  neg_image_path: string[];
}

function row(id: string, qry: Side, pos: Side, negs: readonly Side[]): PairRow {
  const img = (s: Side) => (s.image ? relativeTo(DIR, s.image) : '');
  return {
    id,
    qry: qry.text,
    qry_image_path: img(qry),
    pos_text: pos.text,
    pos_image_path: img(pos),
    neg_text: negs.map((n) => n.text),
    neg_image_path: negs.map(img),
  };
}

interface TrainPool {
  families: SceneItem[][];
  /** Extra one-object scenes for classification. */
  singles: SceneItem[];
  /** Crops of every object of the pair and multi scenes, by scene. */
  crops: Map<SceneItem, CropItem[]>;
  pages: PageItem[][];
}

async function buildTrainPool(ctx: BuildContext): Promise<TrainPool> {
  const seen = comboFilter(ctx.heldOut, 'seen');
  const rng = streamRng(ctx.seed, STREAMS.trainScenes);
  const families: SceneItem[][] = [];
  const crops = new Map<SceneItem, CropItem[]>();
  let scenes = 0;
  let cropCount = 0;
  const total = ctx.scale.trainFamilies;
  for (let f = 0; f < total; f++) {
    const kind = drawKind(rng);
    const family = sceneFamily(rng, { kind, allowed: seen, labelProbability: LABEL_PROBABILITY[kind] }, 3, seen);
    for (const item of family) {
      const canvas = await storeScene(ctx.store, `${DIR}/images/s${num(scenes++)}.png`, item);
      if (item.scene.kind === 'pair' || item.scene.kind === 'multi') {
        const list: CropItem[] = [];
        for (let i = 0; i < item.scene.objects.length; i++) {
          list.push(await storeCrop(ctx.store, `${DIR}/images/c${num(cropCount++)}.png`, item, canvas, i));
        }
        crops.set(item, list);
      }
    }
    families.push(family);
    ctx.progress({ stage: 'train', done: f + 1, total });
  }
  const singles: SceneItem[] = [];
  for (let i = 0; i < ctx.scale.trainSingles; i++) {
    const scene = sampleScene(rng, { kind: 'single', allowed: seen, labelProbability: LABEL_PROBABILITY.single });
    const item: SceneItem = { scene, key: sceneKey(scene) };
    await storeScene(ctx.store, `${DIR}/images/s${num(scenes++)}.png`, item);
    singles.push(item);
  }
  const pages = pageFamilies(streamRng(ctx.seed, STREAMS.trainPages), ctx.scale.trainPageFamilies, 3, 'train-p');
  let p = 0;
  for (const family of pages)
    for (const page of family) await storePage(ctx.store, `${DIR}/images/p${num(p++)}.png`, page);
  return { families, singles, crops, pages };
}

function classificationRows(rng: Rng, pool: TrainPool, subset: 'cls_shape' | 'cls_colour'): PairRow[] {
  const rows: PairRow[] = [];
  for (const item of [...pool.families.flat(), ...pool.singles]) {
    if (item.scene.kind !== 'single') continue;
    const o = item.scene.objects[0]!;
    const [prompt, value, classes] =
      subset === 'cls_shape'
        ? [PROMPTS.shapeClassification, o.shape as string, SHAPES as readonly string[]]
        : [PROMPTS.colourClassification, o.colour as string, COLOURS as readonly string[]];
    const negs = sample(
      rng,
      classes.filter((c) => c !== value),
      2,
    );
    rows.push(
      row(
        `${subset}-${num(rows.length)}`,
        { text: prompt, image: item.path! },
        { text: value },
        negs.map((text) => ({ text })),
      ),
    );
  }
  return rows;
}

function vqaRows(rng: Rng, pool: TrainPool): PairRow[] {
  return pool.families.flat().map((item, i) => {
    const q = question(item.scene, pick(rng, questionTypes(item.scene)));
    const [answer, ...negs] = answerCandidates(rng, q, 3);
    return row(
      `vqa-${num(i)}`,
      { text: PROMPTS.vqa(q.question), image: item.path! },
      { text: answer! },
      negs.map((text) => ({ text })),
    );
  });
}

function retrievalRows(rng: Rng, pool: TrainPool, direction: 't2i' | 'i2t'): PairRow[] {
  const rows: PairRow[] = [];
  for (const family of pool.families) {
    const captions = family.map((item) => caption(rng, item.scene));
    family.forEach((item, k) => {
      const others = family.map((_, j) => j).filter((j) => j !== k);
      const id = `ret_${direction}-${num(rows.length)}`;
      rows.push(
        direction === 't2i'
          ? row(
              id,
              { text: PROMPTS.textToImage(captions[k]!) },
              { text: PROMPTS.imageTarget, image: item.path! },
              others.map((j) => ({ text: PROMPTS.imageTarget, image: family[j]!.path! })),
            )
          : row(
              id,
              { text: PROMPTS.imageToText, image: item.path! },
              { text: captions[k]! },
              others.map((j) => ({ text: captions[j]! })),
            ),
      );
    });
  }
  return rows;
}

function documentRows(rng: Rng, pool: TrainPool): PairRow[] {
  const all = pool.pages.flat().map((p) => p.page);
  const rows: PairRow[] = [];
  for (const family of pool.pages) {
    family.forEach((item, k) => {
      const words = distinctiveWords(rng, item.page, all);
      if (!words) return;
      rows.push(
        row(
          `ret_doc-${num(rows.length)}`,
          { text: PROMPTS.documentQuery(words.map((w) => w.toLowerCase()).join(' ')) },
          { text: PROMPTS.documentTarget, image: item.path! },
          family.filter((_, j) => j !== k).map((p) => ({ text: PROMPTS.documentTarget, image: p.path! })),
        ),
      );
    });
  }
  return rows;
}

function groundingRows(rng: Rng, pool: TrainPool): PairRow[] {
  const rows: PairRow[] = [];
  const allCrops = [...pool.crops.values()].flat();
  for (const [item, crops] of pool.crops) {
    const target = crops[rng.int(crops.length)]!;
    const negs = rng.shuffle(crops.filter((c) => c !== target)).slice(0, 2);
    for (let t = 0; negs.length < 2; t++) {
      // A two-object scene has one other object: the second negative comes from another scene.
      if (t > 1000) throw new Error('groundingRows: too few crops for a second negative');
      const c = pick(rng, allCrops);
      if (c.source !== item && c.name !== target.name && !negs.some((n) => n.name === c.name)) negs.push(c);
    }
    rows.push(
      row(
        `ground-${num(rows.length)}`,
        { text: PROMPTS.grounding(target.name), image: item.path! },
        { text: PROMPTS.cropTarget, image: target.path },
        negs.map((c) => ({ text: PROMPTS.cropTarget, image: c.path })),
      ),
    );
  }
  return rows;
}

/** The query and positive texts of a row without image markers (causal-LM warm-up text). */
export function pairText(r: PairRow): string {
  const clean = (t: string) => t.replaceAll(IMAGE_MARKER, '').trim();
  return `${clean(r.qry)}\n${clean(r.pos_text)}`;
}

export interface PairsOutput {
  files: Record<PairSubsetName, string>;
  counts: Record<PairSubsetName, number>;
  rows: Record<PairSubsetName, PairRow[]>;
}

export async function buildPairs(ctx: BuildContext): Promise<PairsOutput> {
  const pool = await buildTrainPool(ctx);
  const rng = streamRng(ctx.seed, STREAMS.pairs);
  const rows: Record<PairSubsetName, PairRow[]> = {
    cls_shape: classificationRows(rng, pool, 'cls_shape'),
    cls_colour: classificationRows(rng, pool, 'cls_colour'),
    vqa: vqaRows(rng, pool),
    ret_t2i: retrievalRows(rng, pool, 't2i'),
    ret_i2t: retrievalRows(rng, pool, 'i2t'),
    ret_doc: documentRows(rng, pool),
    ground: groundingRows(rng, pool),
  };
  const files = {} as Record<PairSubsetName, string>;
  const counts = {} as Record<PairSubsetName, number>;
  PAIR_SUBSETS.forEach((name, i) => {
    files[name] = `${DIR}/${name}.jsonl`;
    counts[name] = rows[name].length;
    ctx.writeText(files[name], jsonl(rows[name]));
    ctx.progress({ stage: 'pairs', done: i + 1, total: PAIR_SUBSETS.length });
  });
  return { files, counts, rows };
}
