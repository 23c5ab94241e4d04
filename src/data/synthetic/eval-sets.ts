// Evaluation sets of the generated world.
//
// MMEB layout (docs/evaluation.md; read by src/eval/mmeb.ts): eval/mmeb/<Dataset>.jsonl with rows {qry_text,
// qry_img_path, tgt_text[], tgt_img_path[]}, the positive at index 0, image paths relative to eval/mmeb (the
// harness's default image root), images under eval/mmeb/images/<Dataset>/; eval/mmeb/datasets.json gives each
// dataset's meta-task and IND/OOD split (the harness reads `<data>/datasets.json`).
//
// In-distribution sets use the training instructions, phrasings and only colour–shape combinations seen in
// training (on new scenes). OOD sets put a held-out combination in the queried object and use instructions and
// phrasings that no training or corpus text contains; Syn-RefGround-OOD also asks for objects by their relation to
// another object, a kind of reference the grounding pairs never use.
//
// BEIR layout (src/eval/beir.ts): eval/beir/Syn-Docs/{corpus.jsonl (_id, image), queries.jsonl (_id, text),
// qrels/test.tsv}, page images under its images/ folder; raw-text queries (ViDoRe style), one relevant page each.
import type { Rng } from '../rng.js';
import { type BuildContext, jsonl, relativeTo } from './context.js';
import {
  answerCandidates,
  caption,
  type Phrasing,
  PROMPTS,
  question,
  type QuestionType,
  relationalReference,
} from './language.js';
import type { EvalDatasetInfo, EvalDatasetSummary, EvalRowTruth } from './manifest.js';
import { distinctiveWords, type Page } from './page.js';
import {
  type Combo,
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
import { ANY_COMBO, objectName, sampleScene, sceneKey, type SceneKind } from './scene.js';
import { COLOURS, SHAPES } from './vocabulary.js';

export const MMEB_DIR = 'eval/mmeb';
export const BEIR_NAME = 'Syn-Docs';
export const BEIR_DIR = `eval/beir/${BEIR_NAME}`;

export interface MmebRow {
  qry_text: string;
  qry_img_path: string;
  tgt_text: string[];
  tgt_img_path: string[];
}

/** One input of an evaluation row and its meaning (see EvalRowTruth). */
interface Input {
  text: string;
  /** Path relative to the world root. */
  image?: string;
  meaning: string;
}

interface Built {
  info: EvalDatasetInfo;
  rows: MmebRow[];
  truth: EvalRowTruth[];
}

class DatasetBuilder {
  readonly rows: MmebRow[] = [];
  readonly truth: EvalRowTruth[] = [];
  constructor(readonly info: EvalDatasetInfo) {}

  /** Adds a row: the positive first, then the negatives in the given order. */
  add(query: Input, positive: Input, negatives: readonly Input[]): void {
    if (positive.meaning !== query.meaning) {
      throw new Error(`${this.info.name}: internal error: the positive does not mean what the query asks for`);
    }
    const meanings = new Set([positive.meaning]);
    for (const n of negatives) {
      if (meanings.has(n.meaning)) {
        throw new Error(`${this.info.name}: internal error: two candidates both mean ${JSON.stringify(n.meaning)}`);
      }
      meanings.add(n.meaning);
    }
    const img = (x: Input) => (x.image ? relativeTo(MMEB_DIR, x.image) : '');
    const candidates = [positive, ...negatives];
    this.rows.push({
      qry_text: query.text,
      qry_img_path: img(query),
      tgt_text: candidates.map((c) => c.text),
      tgt_img_path: candidates.map(img),
    });
    this.truth.push({ query: query.meaning, candidates: candidates.map((c) => c.meaning) });
  }

  done(): Built {
    return { info: this.info, rows: this.rows, truth: this.truth };
  }
}

const imageDir = (name: string) => `${MMEB_DIR}/images/${name}`;

interface SetContext {
  ctx: BuildContext;
  rng: Rng;
  seen: ReturnType<typeof comboFilter>;
  heldOut: readonly Combo[];
  rows: number;
}

async function classification(s: SetContext, info: EvalDatasetInfo, attribute: 'shape' | 'colour'): Promise<Built> {
  const b = new DatasetBuilder(info);
  const ood = info.split === 'ood';
  const classes: readonly string[] = attribute === 'shape' ? SHAPES : COLOURS;
  for (let i = 0; i < s.rows; i++) {
    // Classes cycle so every class is the answer equally often (chance is exactly 1/8 for a random embedding).
    let combo: Combo;
    if (ood) combo = s.heldOut[i % s.heldOut.length]!;
    else {
      const value = classes[i % classes.length]!;
      const options = (
        attribute === 'shape'
          ? COLOURS.map((colour) => ({ colour, shape: value as Combo['shape'] }))
          : SHAPES.map((shape) => ({ colour: value as Combo['colour'], shape }))
      ).filter((c) => s.seen(c.colour, c.shape));
      combo = pick(s.rng, options);
    }
    const scene = sampleScene(s.rng, {
      kind: 'single',
      first: combo,
      allowed: ood ? ANY_COMBO : s.seen,
      labelProbability: 0.2,
    });
    const item: SceneItem = { scene, key: sceneKey(scene) };
    await storeScene(s.ctx.store, `${imageDir(info.name)}/s${num(i)}.png`, item);
    const value = combo[attribute];
    const prompt = ood
      ? PROMPTS.shapeClassificationOod
      : attribute === 'shape'
        ? PROMPTS.shapeClassification
        : PROMPTS.colourClassification;
    const cls = (c: string): Input => ({ text: c, meaning: `${attribute}:${c}` });
    b.add(
      { text: prompt, image: item.path!, meaning: `${attribute}:${value}` },
      cls(value),
      s.rng.shuffle(classes.filter((c) => c !== value)).map(cls),
    );
  }
  return b.done();
}

const QUESTION_TYPES: readonly QuestionType[] = ['colour', 'shape', 'count', 'relation', 'size', 'word'];
const KINDS_FOR: Readonly<Record<QuestionType, readonly SceneKind[]>> = {
  colour: ['single', 'count', 'pair', 'multi'],
  shape: ['single', 'pair', 'multi'],
  count: ['count', 'multi'],
  relation: ['pair'],
  size: ['single', 'pair'],
  word: ['single', 'count', 'pair', 'multi'],
};

async function vqa(s: SetContext, info: EvalDatasetInfo): Promise<Built> {
  const b = new DatasetBuilder(info);
  const ood = info.split === 'ood';
  const phrasing: Phrasing = ood ? 'ood' : 'ind';
  for (let i = 0; i < s.rows; i++) {
    const type = QUESTION_TYPES[i % QUESTION_TYPES.length]!;
    const scene = sampleScene(s.rng, {
      kind: pick(s.rng, KINDS_FOR[type]),
      allowed: ood ? ANY_COMBO : s.seen,
      ...(ood ? { first: pick(s.rng, s.heldOut) } : {}),
      labelProbability: type === 'word' ? 1 : 0.15,
    });
    const item: SceneItem = { scene, key: sceneKey(scene) };
    await storeScene(s.ctx.store, `${imageDir(info.name)}/s${num(i)}.png`, item);
    const q = question(scene, type, phrasing);
    const [answer, ...others] = answerCandidates(s.rng, q, 10);
    const ans = (a: string): Input => ({ text: a, meaning: `answer:${a}` });
    b.add(
      {
        text: ood ? PROMPTS.vqaOod(q.question) : PROMPTS.vqa(q.question),
        image: item.path!,
        meaning: `answer:${q.answer}`,
      },
      ans(answer!),
      others.map(ans),
    );
  }
  return b.done();
}

/** `rows` families of a base scene and 3 one-edit variants, keys distinct across the whole set. */
function families(s: SetContext, ood: boolean): SceneItem[][] {
  const keys = new Set<string>();
  const allowed = ood ? ANY_COMBO : s.seen;
  return Array.from({ length: s.rows }, (_, i) => {
    const kind = drawKind(s.rng);
    const family = sceneFamily(
      s.rng,
      {
        kind,
        allowed,
        ...(ood ? { first: s.heldOut[i % s.heldOut.length]! } : {}),
        labelProbability: LABEL_PROBABILITY[kind],
      },
      4,
      allowed,
      keys,
    );
    for (const f of family) keys.add(f.key);
    return family;
  });
}

/** Six members of other families (hard negatives come from the row's own family). */
function easyNegatives<T>(s: SetContext, groups: readonly T[][], own: number, n = 6): T[] {
  return sample(s.rng, groups.filter((_, j) => j !== own).flat(), n);
}

async function textToImage(s: SetContext, info: EvalDatasetInfo): Promise<Built> {
  const b = new DatasetBuilder(info);
  const ood = info.split === 'ood';
  const fams = families(s, ood);
  let n = 0;
  for (const family of fams)
    for (const item of family) await storeScene(s.ctx.store, `${imageDir(info.name)}/s${num(n++)}.png`, item);
  const image = (item: SceneItem): Input => ({
    text: PROMPTS.imageTarget,
    image: item.path!,
    meaning: `scene:${item.key}`,
  });
  fams.forEach((family, r) => {
    const base = family[0]!;
    const text = ood
      ? PROMPTS.textToImageOod(caption(s.rng, base.scene, 'ood'))
      : PROMPTS.textToImage(caption(s.rng, base.scene, 'ind'));
    const negatives = [...family.slice(1), ...easyNegatives(s, fams, r)];
    b.add({ text, meaning: `scene:${base.key}` }, image(base), s.rng.shuffle(negatives.map(image)));
  });
  return b.done();
}

async function imageToText(s: SetContext, info: EvalDatasetInfo): Promise<Built> {
  const b = new DatasetBuilder(info);
  const fams = families(s, false);
  // Only the bases are drawn; the variants exist as captions (hard negatives).
  for (const [i, family] of fams.entries())
    await storeScene(s.ctx.store, `${imageDir(info.name)}/s${num(i)}.png`, family[0]!);
  const captionOf = (item: SceneItem): Input => ({
    text: caption(s.rng, item.scene, 'ind'),
    meaning: `scene:${item.key}`,
  });
  const bases = fams.map((f) => [f[0]!]);
  fams.forEach((family, r) => {
    const base = family[0]!;
    const negatives = [...family.slice(1), ...easyNegatives(s, bases, r)];
    b.add(
      { text: PROMPTS.imageToText, image: base.path!, meaning: `scene:${base.key}` },
      captionOf(base),
      s.rng.shuffle(negatives.map(captionOf)),
    );
  });
  return b.done();
}

/** Crops of other scenes whose object names are not among `taken`, up to `n` in all. */
function otherCrops(s: SetContext, all: readonly CropItem[][], own: number, taken: Set<string>, n: number): CropItem[] {
  const out: CropItem[] = [];
  for (const c of s.rng.shuffle(all.filter((_, j) => j !== own).flat())) {
    if (out.length >= n) break;
    if (taken.has(c.name)) continue;
    taken.add(c.name);
    out.push(c);
  }
  if (out.length < n) throw new Error('otherCrops: not enough distinct crops (too few evaluation rows)');
  return out;
}

async function grounding(s: SetContext, info: EvalDatasetInfo): Promise<Built> {
  const b = new DatasetBuilder(info);
  const ood = info.split === 'ood';
  const scenes: SceneItem[] = [];
  const crops: CropItem[][] = [];
  let c = 0;
  for (let i = 0; i < s.rows; i++) {
    const scene = ood
      ? sampleScene(s.rng, { kind: 'pair', first: s.heldOut[i % s.heldOut.length]!, labelProbability: 0.1 })
      : sampleScene(s.rng, { kind: pick(s.rng, ['pair', 'multi'] as const), allowed: s.seen, labelProbability: 0.1 });
    const item: SceneItem = { scene, key: sceneKey(scene) };
    const canvas = await storeScene(s.ctx.store, `${imageDir(info.name)}/s${num(i)}.png`, item);
    const list: CropItem[] = [];
    for (let k = 0; k < scene.objects.length; k++) {
      list.push(await storeCrop(s.ctx.store, `${imageDir(info.name)}/c${num(c++)}.png`, item, canvas, k));
    }
    scenes.push(item);
    crops.push(list);
  }
  const crop = (x: CropItem): Input => ({ text: PROMPTS.cropTarget, image: x.path, meaning: `object:${x.name}` });
  scenes.forEach((item, r) => {
    const own = crops[r]!;
    // OOD: the held-out object (objects[0]), by relation on even rows and by name on odd ones.
    const target = ood ? own[0]! : own[s.rng.int(own.length)]!;
    const text = ood
      ? PROMPTS.groundingOod(
          r % 2 === 0 ? relationalReference(item.scene) : `the ${objectName(item.scene.objects[0]!)}`,
        )
      : PROMPTS.grounding(target.name);
    const sameScene = own.filter((x) => x !== target);
    const taken = new Set(own.map((x) => x.name));
    const negatives = [...sameScene, ...otherCrops(s, crops, r, taken, 7 - sameScene.length)];
    b.add(
      { text, image: item.path!, meaning: `object:${target.name}` },
      crop(target),
      s.rng.shuffle(negatives.map(crop)),
    );
  });
  return b.done();
}

async function documents(s: SetContext, info: EvalDatasetInfo): Promise<Built> {
  const b = new DatasetBuilder(info);
  const fams = pageFamilies(s.rng, Math.max(4, Math.ceil(s.rows / 3)), 3, `${info.name}-p`);
  let n = 0;
  for (const family of fams)
    for (const p of family) await storePage(s.ctx.store, `${imageDir(info.name)}/p${num(n++)}.png`, p);
  const all = fams.flat().map((p) => p.page);
  const page = (p: PageItem): Input => ({ text: PROMPTS.documentTarget, image: p.path!, meaning: `page:${p.id}` });
  fams.forEach((family, f) => {
    for (const p of family) {
      if (b.rows.length >= s.rows) return;
      const words = distinctiveWords(s.rng, p.page, all);
      if (!words) continue;
      const negatives = [...family.filter((x) => x !== p), ...easyNegatives(s, fams, f, 7)];
      b.add(
        { text: PROMPTS.documentQuery(words.map((w) => w.toLowerCase()).join(' ')), meaning: `page:${p.id}` },
        page(p),
        s.rng.shuffle(negatives.map(page)),
      );
    }
  });
  return b.done();
}

/** The evaluation datasets: name, meta-task, split, description, and how to build them. */
const DATASETS: readonly (EvalDatasetInfo & { build: (s: SetContext, info: EvalDatasetInfo) => Promise<Built> })[] = [
  {
    name: 'Syn-Shape',
    metaTask: 'classification',
    split: 'ind',
    description:
      'Image of one object → its shape among the 8 shape names; seen colour–shape combinations, training instruction.',
    build: (s, i) => classification(s, i, 'shape'),
  },
  {
    name: 'Syn-Color',
    metaTask: 'classification',
    split: 'ind',
    description: 'Image of one object → its colour among the 8 colour names; seen combinations, training instruction.',
    build: (s, i) => classification(s, i, 'colour'),
  },
  {
    name: 'Syn-VQA',
    metaTask: 'vqa',
    split: 'ind',
    description:
      'Image + question (colour, shape, count, relation, size, written word; training phrasings) → answer among 10.',
    build: vqa,
  },
  {
    name: 'Syn-T2I',
    metaTask: 'retrieval',
    split: 'ind',
    description: 'Caption → image among 10: the scene, 3 one-edit variants of it (hard negatives) and 6 other scenes.',
    build: textToImage,
  },
  {
    name: 'Syn-I2T',
    metaTask: 'retrieval',
    split: 'ind',
    description: 'Image → caption among 10: its caption, captions of 3 one-edit variants and 6 other captions.',
    build: imageToText,
  },
  {
    name: 'Syn-DocRet',
    metaTask: 'retrieval',
    split: 'ind',
    description: 'Title and body words → document page among 10: the page, 2 pages with the same title, 7 others.',
    build: documents,
  },
  {
    name: 'Syn-Ground',
    metaTask: 'grounding',
    split: 'ind',
    description: 'Image + object name → crop of that object among 8: crops of the other objects and of other scenes.',
    build: grounding,
  },
  {
    name: 'Syn-Shape-OOD',
    metaTask: 'classification',
    split: 'ood',
    description: 'Shape of one object in a held-out colour–shape combination; an instruction never seen in training.',
    build: (s, i) => classification(s, i, 'shape'),
  },
  {
    name: 'Syn-VQA-OOD',
    metaTask: 'vqa',
    split: 'ood',
    description: 'Questions about a held-out colour–shape combination, in unseen question phrasings and instruction.',
    build: vqa,
  },
  {
    name: 'Syn-T2I-OOD',
    metaTask: 'retrieval',
    split: 'ood',
    description: 'Caption → image for scenes with a held-out combination; unseen caption phrasings and instruction.',
    build: textToImage,
  },
  {
    name: 'Syn-RefGround-OOD',
    metaTask: 'grounding',
    split: 'ood',
    description:
      'Crop of a held-out-combination object referred to by its relation to the other object or by name; unseen instruction.',
    build: grounding,
  },
];

export interface EvalOutput {
  datasets: EvalDatasetSummary[];
  truth: Record<string, EvalRowTruth[]>;
}

export async function buildMmebSets(ctx: BuildContext): Promise<EvalOutput> {
  const datasets: EvalDatasetSummary[] = [];
  const truth: Record<string, EvalRowTruth[]> = {};
  for (const [i, spec] of DATASETS.entries()) {
    const { build, ...info } = spec;
    const s: SetContext = {
      ctx,
      rng: streamRng(ctx.seed, STREAMS.eval, i + 1),
      seen: comboFilter(ctx.heldOut, 'seen'),
      heldOut: ctx.heldOut,
      rows: ctx.scale.evalRows,
    };
    const built = await build(s, info);
    const file = `${MMEB_DIR}/${info.name}.jsonl`;
    ctx.writeText(file, jsonl(built.rows));
    truth[info.name] = built.truth;
    datasets.push({ ...info, file, rows: built.rows.length, candidates: built.rows[0]?.tgt_text.length ?? 0 });
    ctx.progress({ stage: 'eval', done: i + 1, total: DATASETS.length });
  }
  ctx.writeText(
    `${MMEB_DIR}/datasets.json`,
    JSON.stringify(
      datasets.map(({ name, metaTask, split, description }) => ({ name, metaTask, split, description })),
      null,
      2,
    ) + '\n',
  );
  return { datasets, truth };
}

const QUERY_TEMPLATES = [
  (t: string, a: string, b: string) => `${t} ${a} ${b}`,
  (t: string, a: string, b: string) => `${t} page mentioning ${a} and ${b}`,
  (t: string, a: string, b: string) => `which ${t} lists ${a} and ${b}`,
];

export interface BeirOutput {
  name: string;
  dir: string;
  documents: number;
  queries: number;
  qrels: number;
  truth: Record<string, string>;
}

/** The BEIR document-retrieval set: page images, raw-text queries, one relevant page per query. */
export async function buildBeirSet(ctx: BuildContext): Promise<BeirOutput> {
  const rng = streamRng(ctx.seed, STREAMS.beir);
  const pages = pageFamilies(rng, Math.ceil(ctx.scale.beirPages / 3), 3, 'd').flat();
  for (const [i, p] of pages.entries()) await storePage(ctx.store, `${BEIR_DIR}/images/p${num(i)}.png`, p);
  const corpus = pages.map((p) => ({ _id: p.id, image: relativeTo(BEIR_DIR, p.path!) }));
  const all: Page[] = pages.map((p) => p.page);
  const queries: { _id: string; text: string }[] = [];
  const truth: Record<string, string> = {};
  for (const p of rng.shuffle([...pages])) {
    if (queries.length >= ctx.scale.beirQueries) break;
    const words = distinctiveWords(rng, p.page, all);
    if (!words) continue;
    const [t, a, b] = words.map((w) => w.toLowerCase()) as [string, string, string];
    const id = `q${num(queries.length)}`;
    queries.push({ _id: id, text: pick(rng, QUERY_TEMPLATES)(t, a, b) });
    truth[id] = p.id;
  }
  ctx.writeText(`${BEIR_DIR}/corpus.jsonl`, jsonl(corpus));
  ctx.writeText(`${BEIR_DIR}/queries.jsonl`, jsonl(queries));
  ctx.writeText(
    `${BEIR_DIR}/qrels/test.tsv`,
    'query-id\tcorpus-id\tscore\n' + queries.map((q) => `${q._id}\t${truth[q._id]}\t1\n`).join(''),
  );
  ctx.progress({ stage: 'beir', done: 1, total: 1 });
  return {
    name: BEIR_NAME,
    dir: BEIR_DIR,
    documents: corpus.length,
    queries: queries.length,
    qrels: queries.length,
    truth,
  };
}
