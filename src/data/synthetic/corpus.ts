// The unlabelled stage-1 corpus (docs/training.md, Stage 1): corpus.jsonl rows {id, text, images[]} whose text holds
// one `<|vision_start|><|image_pad|><|vision_end|>` per image in order — documents mixing 1–3 images (scenes and
// document pages from the corpus's own pool, never used by pairs or evaluation) with sentences describing them, so
// masked words and masked patches can be predicted from the other modality — and text-only documents (descriptions
// of undrawn scenes, page contents as prose, facts about the world's vocabulary).
//
// lm.jsonl is the causal-LM warm-up text: every corpus document with its image placeholders removed, followed by the
// query and positive texts of the training pairs (8 pairs per document, image markers removed, instructions kept so
// the warm-up sees the task wording). No evaluation text is included.
import { QWEN_IMAGE_PLACEHOLDER } from '../../processing/inputs.js';
import type { Rng } from '../rng.js';
import { type BuildContext, jsonl } from './context.js';
import { describePage, describeScene, pageText, worldFacts } from './language.js';
import { samplePage } from './page.js';
import { type PairRow, pairText } from './pairs.js';
import {
  comboFilter,
  drawKind,
  LABEL_PROBABILITY,
  num,
  type PageItem,
  pageFamilies,
  type SceneItem,
  storePage,
  storeScene,
} from './pools.js';
import { between, chance, pick, streamRng, STREAMS } from './random.js';
import { sampleScene, sceneKey } from './scene.js';
import { TITLE_WORDS } from './vocabulary.js';

export interface CorpusRow {
  id: string;
  text: string;
  images: string[];
}

type Visual = { kind: 'scene'; item: SceneItem } | { kind: 'page'; item: PageItem };

const INTROS = [
  'A few pictures from the collection.',
  'Notes on some images.',
  'Look at the following.',
  'Here is what the pictures show.',
  'Some shapes and some pages.',
];

const OUTROS = ['That is all for this set.', 'These were the pictures.', 'End of the notes.'];

function describe(rng: Rng, v: Visual): string[] {
  return v.kind === 'scene' ? describeScene(rng, v.item.scene) : describePage(rng, v.item.page);
}

function imageDocument(rng: Rng, visuals: readonly Visual[]): { text: string; images: string[] } {
  const blocks: string[] = [];
  if (chance(rng, 0.4)) blocks.push(pick(rng, INTROS));
  visuals.forEach((v, j) => {
    const sentences = describe(rng, v).join(' ');
    const layout = pick(rng, ['before', 'after', 'figure'] as const);
    blocks.push(
      layout === 'before'
        ? `${QWEN_IMAGE_PLACEHOLDER}\n${sentences}`
        : layout === 'after'
          ? `${sentences}\n${QWEN_IMAGE_PLACEHOLDER}`
          : `Figure ${j + 1}: ${QWEN_IMAGE_PLACEHOLDER} ${sentences}`,
    );
  });
  if (chance(rng, 0.25)) blocks.push(pick(rng, OUTROS));
  return { text: blocks.join('\n'), images: visuals.map((v) => v.item.path!) };
}

function textOnlyDocument(rng: Rng, allowed: ReturnType<typeof comboFilter>): string {
  switch (pick(rng, ['scene', 'scene', 'page', 'facts'] as const)) {
    case 'scene': {
      const n = between(rng, 1, 3);
      return Array.from({ length: n }, () => {
        const kind = drawKind(rng);
        const scene = sampleScene(rng, { kind, allowed, labelProbability: LABEL_PROBABILITY[kind] });
        return `${pick(rng, ['Imagine a picture.', 'Picture this.', 'Think of an image.'])} ${describeScene(rng, scene).join(' ')}`;
      }).join('\n');
    }
    case 'page':
      return pageText(samplePage(rng, pick(rng, TITLE_WORDS)));
    case 'facts':
      return rng.shuffle(worldFacts(rng)).join(' ');
  }
}

const stripPlaceholders = (text: string) =>
  text
    .replaceAll(QWEN_IMAGE_PLACEHOLDER, '')
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').trim())
    .filter((l) => l.length > 0)
    .join('\n');

export interface CorpusOutput {
  corpus: { documents: number; withImages: number; textOnly: number; imageReferences: number };
  lm: { documents: number };
}

export async function buildCorpus(ctx: BuildContext, pairRows: readonly PairRow[]): Promise<CorpusOutput> {
  const allowed = comboFilter(ctx.heldOut, ctx.heldOutInCorpus ? 'all' : 'seen');
  const rng = streamRng(ctx.seed, STREAMS.corpusScenes);
  const visuals: Visual[] = [];
  const { corpusScenes, corpusPages, textOnlyDocuments } = ctx.scale;
  for (let i = 0; i < corpusScenes; i++) {
    const kind = drawKind(rng);
    const scene = sampleScene(rng, { kind, allowed, labelProbability: LABEL_PROBABILITY[kind] });
    const item: SceneItem = { scene, key: sceneKey(scene) };
    await storeScene(ctx.store, `images/s${num(i)}.png`, item);
    visuals.push({ kind: 'scene', item });
    ctx.progress({ stage: 'corpus', done: i + 1, total: corpusScenes + corpusPages });
  }
  const pages = pageFamilies(streamRng(ctx.seed, STREAMS.corpusPages), corpusPages, 1, 'corpus-p').flat();
  for (const [i, item] of pages.entries()) {
    await storePage(ctx.store, `images/p${num(i)}.png`, item);
    visuals.push({ kind: 'page', item });
    ctx.progress({ stage: 'corpus', done: corpusScenes + i + 1, total: corpusScenes + corpusPages });
  }

  const text = streamRng(ctx.seed, STREAMS.corpusText);
  text.shuffle(visuals);
  const docs: { text: string; images: string[] }[] = [];
  for (let i = 0; i < visuals.length;) {
    const k = Math.min(between(text, 1, 3), visuals.length - i);
    docs.push(imageDocument(text, visuals.slice(i, i + k)));
    i += k;
  }
  const withImages = docs.length;
  for (let i = 0; i < textOnlyDocuments; i++) docs.push({ text: textOnlyDocument(text, allowed), images: [] });
  text.shuffle(docs);
  const rows: CorpusRow[] = docs.map((d, i) => ({ id: `doc-${num(i)}`, text: d.text, images: d.images }));
  ctx.writeText('corpus.jsonl', jsonl(rows));

  const lm: { id: string; text: string }[] = rows.map((r) => ({ id: '', text: stripPlaceholders(r.text) }));
  for (let i = 0; i < pairRows.length; i += 8) {
    lm.push({
      id: '',
      text: pairRows
        .slice(i, i + 8)
        .map(pairText)
        .join('\n'),
    });
  }
  lm.forEach((r, i) => (r.id = `lm-${num(i)}`));
  ctx.writeText('lm.jsonl', jsonl(lm));
  return {
    corpus: {
      documents: rows.length,
      withImages,
      textOnly: rows.length - withImages,
      imageReferences: rows.reduce((n, r) => n + r.images.length, 0),
    },
    lm: { documents: lm.length },
  };
}
