// Everything the generated world says: MoCa/MMEB-style instruction prompts, captions of scenes (training phrasings
// and held-out "OOD" phrasings that never appear in training data), visual questions with their answers, and the
// descriptive sentences of the unlabelled corpus. Texts are generated from a scene's ground truth only, so what a
// text says is exactly what the image shows.
import type { Rng } from '../rng.js';
import { bodyWords, type Page } from './page.js';
import { chance, pick, sample } from './random.js';
import { countGroup, objectName, type Scene, type SceneObject } from './scene.js';
import {
  COLOURS,
  COUNT_WORDS,
  LABEL_WORDS,
  RELATION_INVERSE,
  SHAPE_PLURALS,
  SHAPES,
  SIZES,
  type Relation,
} from './vocabulary.js';

/** The MMEB image marker; the loaders rewrite it to Qwen's vision placeholder. */
export const IMAGE_MARKER = '<|image_1|>';

/**
 * Instruction prompts. Training pairs and in-distribution evaluation use the MMEB/MoCa wordings (spec §1.8); the
 * OOD evaluation sets use the `…Ood` wordings, which no training row contains.
 */
export const PROMPTS = {
  shapeClassification: `${IMAGE_MARKER}\nRepresent the given image for shape classification\n`,
  colourClassification: `${IMAGE_MARKER}\nRepresent the given image for colour classification\n`,
  shapeClassificationOod: `${IMAGE_MARKER}\nWhich geometric figure appears in this picture?\n`,
  vqa: (question: string) => `${IMAGE_MARKER}\nRepresent the given image with the following question: ${question}\n`,
  vqaOod: (question: string) => `${IMAGE_MARKER}\nAnswer this question about the picture: ${question}\n`,
  textToImage: (caption: string) => `Find me an everyday image that matches the given caption: ${caption}\n`,
  textToImageOod: (caption: string) => `Retrieve the picture that fits this description: ${caption}\n`,
  imageTarget: `${IMAGE_MARKER}\nRepresent the given image.\n`,
  imageToText: `${IMAGE_MARKER}\nFind an image caption describing the given everyday image.\n`,
  documentQuery: (words: string) => `Find the document page that contains the words: ${words}\n`,
  documentTarget: `${IMAGE_MARKER}\nRepresent the given document image.\n`,
  grounding: (object: string) =>
    `${IMAGE_MARKER}\nSelect the portion of the image that isolates the object of "${object}".\n`,
  groundingOod: (expression: string) => `${IMAGE_MARKER}\nCrop out the part of the picture showing ${expression}.\n`,
  cropTarget: `${IMAGE_MARKER}\nRepresent the given cropped image of the object.\n`,
} as const;

export type Phrasing = 'ind' | 'ood';

const RELATION_PHRASE: Readonly<Record<Relation, string>> = {
  'left of': 'to the left of',
  'right of': 'to the right of',
  above: 'above',
  below: 'below',
};

/** Answer word of a relation question. */
export const RELATION_ANSWER: Readonly<Record<Relation, string>> = {
  'left of': 'left',
  'right of': 'right',
  above: 'above',
  below: 'below',
};

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');
const withArticle = (phrase: string) => `${article(phrase)} ${phrase}`;

/** "a, b and c" */
function list(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

function countPhrase(count: number, o: SceneObject): string {
  return `${COUNT_WORDS[count]} ${o.colour} ${count === 1 ? o.shape : SHAPE_PLURALS[o.shape]}`;
}

/** Objects of a multi scene from left to right. */
function leftToRight(scene: Scene): SceneObject[] {
  return [...scene.objects].sort((a, b) => a.cx - b.cx);
}

/**
 * A caption of the scene: every fact its {@link sceneKey} holds, in one of the phrasings of `phrasing` (training
 * and in-distribution evaluation share the 'ind' phrasings; 'ood' phrasings are held out for OOD evaluation).
 */
export function caption(rng: Rng, scene: Scene, phrasing: Phrasing = 'ind'): string {
  const word = scene.label?.text;
  const ood = phrasing === 'ood';
  let text: string;
  switch (scene.kind) {
    case 'single': {
      const o = scene.objects[0]!;
      text = ood
        ? `there is just one ${o.colour} ${o.shape}, and it is ${o.size}`
        : pick(rng, [withArticle(objectName(o, true)), `a single ${objectName(o, true)}`]);
      break;
    }
    case 'count': {
      const g = countGroup(scene);
      const extra = g.distractor ? withArticle(objectName(g.distractor)) : undefined;
      if (ood) {
        const shapes = g.count === 1 ? g.main.shape : SHAPE_PLURALS[g.main.shape];
        text = `exactly ${COUNT_WORDS[g.count]} ${shapes} coloured ${g.main.colour} can be seen`;
        if (extra) text += `, plus ${extra}`;
      } else {
        text = countPhrase(g.count, g.main) + (extra ? ` and ${extra}` : '');
      }
      break;
    }
    case 'pair': {
      const [a, b] = scene.objects as [SceneObject, SceneObject];
      const rel = scene.relation!;
      const an = withArticle(objectName(a, true));
      const bn = withArticle(objectName(b, true));
      if (ood) text = `one can see ${an} placed ${RELATION_PHRASE[rel]} ${bn}`;
      else
        text = chance(rng, 0.5)
          ? `${an} ${RELATION_PHRASE[rel]} ${bn}`
          : `${bn} ${RELATION_PHRASE[RELATION_INVERSE[rel]]} ${an}`;
      break;
    }
    case 'multi': {
      const names = leftToRight(scene).map((o) => withArticle(objectName(o)));
      text = ood
        ? `a picture containing ${names.slice(0, -1).join(', ')} as well as ${names.at(-1)}`
        : chance(rng, 0.5)
          ? list(names)
          : `${COUNT_WORDS[names.length]} shapes: ${list(names)}`;
      break;
    }
  }
  if (word) text += ood ? `, with the text "${word}" printed on it` : ` and the word "${word}"`;
  return text;
}

/** A referring expression for objects[0] of a pair scene by its relation to objects[1]: "the object above the red star". */
export function relationalReference(scene: Scene): string {
  if (scene.kind !== 'pair') throw new Error('relationalReference: needs a pair scene');
  return `the object ${RELATION_PHRASE[scene.relation!]} the ${objectName(scene.objects[1]!)}`;
}

export type QuestionType = 'colour' | 'shape' | 'count' | 'relation' | 'size' | 'word';

export interface Question {
  type: QuestionType;
  question: string;
  answer: string;
}

/** Every answer of a question type (the candidate pool of VQA). */
export const ANSWERS: Readonly<Record<QuestionType, readonly string[]>> = {
  colour: COLOURS,
  shape: SHAPES,
  count: COUNT_WORDS.slice(1),
  relation: Object.values(RELATION_ANSWER),
  size: SIZES,
  word: LABEL_WORDS.map((w) => w.toLowerCase()),
};

/** Question types that can be asked about a scene (about objects[0] where the question names an object). */
export function questionTypes(scene: Scene): QuestionType[] {
  const types: QuestionType[] = [];
  if (scene.kind !== 'count') types.push('colour', 'shape');
  if (scene.kind === 'count' || scene.kind === 'multi') types.push('count');
  if (scene.kind === 'pair') types.push('relation');
  if (scene.kind === 'single' || scene.kind === 'pair') types.push('size');
  if (scene.label) types.push('word');
  if (scene.kind === 'count') types.push('colour');
  return types;
}

/**
 * A question of the given type about the scene and its answer. Questions about an object ask about objects[0]
 * (the OOD sets put a held-out colour–shape combination there).
 */
export function question(scene: Scene, type: QuestionType, phrasing: Phrasing = 'ind'): Question {
  const ood = phrasing === 'ood';
  const o = scene.objects[0]!;
  switch (type) {
    case 'colour': {
      if (scene.kind === 'count') {
        const plural = scene.count === 1 ? o.shape : SHAPE_PLURALS[o.shape];
        const verb = scene.count === 1 ? 'is' : 'are';
        return {
          type,
          question: ood ? `Which colour do the ${SHAPE_PLURALS[o.shape]} have?` : `What colour ${verb} the ${plural}?`,
          answer: o.colour,
        };
      }
      return {
        type,
        question: ood ? `Which colour does the ${o.shape} have?` : `What colour is the ${o.shape}?`,
        answer: o.colour,
      };
    }
    case 'shape':
      return {
        type,
        question: ood ? `Name the shape of the ${o.colour} item.` : `What shape is the ${o.colour} object?`,
        answer: o.shape,
      };
    case 'count': {
      if (scene.kind === 'count') {
        return {
          type,
          question: ood
            ? `Count the ${o.colour} ${SHAPE_PLURALS[o.shape]} in the picture.`
            : `How many ${o.colour} ${SHAPE_PLURALS[o.shape]} are there?`,
          answer: COUNT_WORDS[scene.count!]!,
        };
      }
      return {
        type,
        question: ood ? 'Count the shapes in the picture.' : 'How many objects are there?',
        answer: COUNT_WORDS[scene.objects.length]!,
      };
    }
    case 'relation': {
      if (scene.kind !== 'pair') throw new Error('question: relation questions need a pair scene');
      const b = scene.objects[1]!;
      return {
        type,
        question: ood
          ? `In which direction from the ${objectName(b)} is the ${objectName(o)}?`
          : `Where is the ${objectName(o)} relative to the ${objectName(b)}?`,
        answer: RELATION_ANSWER[scene.relation!],
      };
    }
    case 'size':
      return {
        type,
        question: ood
          ? `Would you call the ${objectName(o)} small or large?`
          : `Is the ${objectName(o)} small or large?`,
        answer: o.size,
      };
    case 'word': {
      if (!scene.label) throw new Error('question: word questions need a labelled scene');
      return {
        type,
        question: ood ? 'Read the text printed in the picture.' : 'What word is written in the image?',
        answer: scene.label.text.toLowerCase(),
      };
    }
  }
}

/**
 * `n` VQA candidate answers with the correct one first: the other answers of the same type first (shuffled), then
 * answers of other types, all distinct.
 */
export function answerCandidates(rng: Rng, q: Question, n: number): string[] {
  const same = rng.shuffle(ANSWERS[q.type].filter((a) => a !== q.answer));
  const others = rng.shuffle(
    (Object.keys(ANSWERS) as QuestionType[])
      .filter((t) => t !== q.type)
      .flatMap((t) => ANSWERS[t])
      .filter((a) => a !== q.answer && !same.includes(a)),
  );
  return [q.answer, ...[...same, ...[...new Set(others)]].slice(0, n - 1)];
}

// ---------------------------------------------------------------------------------------------------------
// Corpus prose

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six'];

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function backgroundSentence(rng: Rng, scene: Scene): string {
  const texture =
    scene.texture === 'plain'
      ? ''
      : pick(rng, [` with a faint ${scene.texture} pattern`, `, lightly textured with ${scene.texture}`]);
  return pick(rng, [
    `The background is ${scene.background}${texture}.`,
    `Everything sits on a ${scene.background} background${texture}.`,
  ]);
}

/** Several sentences describing a scene (varied templates, random order of the facts after the first). */
export function describeScene(rng: Rng, scene: Scene): string[] {
  const first = capitalise(
    pick(rng, [
      `the picture shows ${caption(rng, scene)}.`,
      `in this image we see ${caption(rng, scene)}.`,
      `this is an image of ${caption(rng, scene)}.`,
      `here you can see ${caption(rng, scene)}.`,
    ]),
  );
  const facts: string[] = [backgroundSentence(rng, scene)];
  const o = scene.objects[0]!;
  switch (scene.kind) {
    case 'single':
      facts.push(
        pick(rng, [`The ${o.shape} is ${o.colour}.`, `Its colour is ${o.colour}.`, `The only object is a ${o.shape}.`]),
        `The ${o.shape} is ${o.size}.`,
      );
      break;
    case 'count': {
      const n = scene.count!;
      facts.push(
        n === 1
          ? `There is exactly one ${o.shape}.`
          : pick(rng, [
              `There are ${COUNT_WORDS[n]} ${SHAPE_PLURALS[o.shape]}.`,
              `Counting them gives ${COUNT_WORDS[n]}.`,
            ]),
        `All of the ${n === 1 ? o.shape : SHAPE_PLURALS[o.shape]} ${n === 1 ? 'is' : 'are'} ${o.colour}.`,
      );
      break;
    }
    case 'pair': {
      const b = scene.objects[1]!;
      const rel = scene.relation!;
      facts.push(
        `The ${objectName(o)} is ${RELATION_PHRASE[rel]} the ${objectName(b)}.`,
        `The ${objectName(b)} is ${RELATION_PHRASE[RELATION_INVERSE[rel]]} the ${objectName(o)}.`,
        `The ${o.shape} is ${o.size} and the ${b.shape} is ${b.size}.`,
      );
      break;
    }
    case 'multi': {
      const ordered = leftToRight(scene);
      facts.push(
        `There are ${COUNT_WORDS[ordered.length]} objects.`,
        `From left to right: ${list(ordered.map((x) => withArticle(objectName(x))))}.`,
        `The leftmost object is the ${objectName(ordered[0]!)} and the rightmost is the ${objectName(ordered.at(-1)!)}.`,
      );
      break;
    }
  }
  if (scene.label) {
    facts.push(
      pick(rng, [
        `The word ${scene.label.text} is written at the ${scene.label.position}.`,
        `At the ${scene.label.position} it says ${scene.label.text}.`,
      ]),
    );
  }
  return [first, ...rng.shuffle(facts).slice(0, 1 + rng.int(facts.length))];
}

/** Several sentences describing a document page. */
export function describePage(rng: Rng, page: Page): string[] {
  const words = bodyWords(page);
  const t = page.table;
  const sentences = [
    pick(rng, [
      `This page is titled ${page.title}.`,
      `The document is a ${page.title.toLowerCase()} page.`,
      `The title of the page is ${page.title}.`,
    ]),
    `It has ${NUMBER_WORDS[page.lines.length] ?? page.lines.length} lines of text mentioning ${list(sample(rng, words, Math.min(3, words.length)))}.`,
    `The first line reads ${page.lines[0]!.join(' ')}.`,
    `A small table with the columns ${list(t.columns)} lists ${list(t.rows.map((r) => r.join(' ')))}.`,
  ];
  return [sentences[0]!, ...rng.shuffle(sentences.slice(1)).slice(0, 1 + rng.int(3))];
}

/** A page's full text content as plain prose (title, lines, table rows), for text-only documents. */
export function pageText(page: Page): string {
  const table = page.table.rows.map((r) => page.table.columns.map((c, i) => `${c} ${r[i]}`).join(', ')).join('; ');
  return `${page.title}. ${page.lines.map((l) => l.join(' ')).join('. ')}. Table: ${table}.`;
}

/** Sentences that state facts of the world itself (vocabulary lessons for the text-only documents). */
export function worldFacts(rng: Rng): string[] {
  const c = pick(rng, COLOURS);
  const s = pick(rng, SHAPES);
  const s2 = pick(
    rng,
    SHAPES.filter((x) => x !== s),
  );
  return [
    `A ${s} and a ${s2} are both shapes.`,
    `${capitalise(c)} is a colour.`,
    `Pictures in this collection show ${list(sample(rng, [...SHAPES], 3).map((x) => SHAPE_PLURALS[x]))} in colours such as ${list(sample(rng, [...COLOURS], 3))}.`,
    `When something is ${RELATION_PHRASE['left of']} a ${s}, the ${s} is ${RELATION_PHRASE['right of']} it.`,
    `When something is above a ${s2}, the ${s2} is below it.`,
  ];
}
