// The built-in tables of the evaluation benchmarks (spec §4): the 36 MMEB-eval datasets with their meta-task and
// IND/OOD split, the 7 ViDoRe-v2 tasks, and the paper's headline numbers (spec §4.3) for side-by-side display.

export type MetaTask = 'classification' | 'vqa' | 'retrieval' | 'grounding';
export type MmebSplit = 'IND' | 'OOD';

export interface MmebDataset {
  /** The name as in spec §4.1 (the MMEB-eval subset name). */
  readonly name: string;
  readonly metaTask: MetaTask;
  /** IND: the dataset is also in MMEB-train; OOD: it is not. */
  readonly split: MmebSplit;
}

/** Meta-tasks in the paper's column order. */
export const META_TASKS: readonly MetaTask[] = ['classification', 'vqa', 'retrieval', 'grounding'];

/** Column headers of the paper's table (§4.3). */
export const META_TASK_LABELS: Readonly<Record<MetaTask, string>> = {
  classification: 'Cls',
  vqa: 'VQA',
  retrieval: 'Ret',
  grounding: 'Ground',
};

function group(metaTask: MetaTask, entries: readonly (readonly [string, MmebSplit])[]): MmebDataset[] {
  return entries.map(([name, split]) => Object.freeze({ name, metaTask, split }));
}

/** The 36 MMEB-eval datasets, in the order of spec §4.1. */
export const MMEB_DATASETS: readonly MmebDataset[] = Object.freeze([
  ...group('classification', [
    ['ImageNet-1K', 'IND'],
    ['N24News', 'IND'],
    ['HatefulMemes', 'IND'],
    ['VOC2007', 'IND'],
    ['SUN397', 'IND'],
    ['Place365', 'OOD'],
    ['ImageNet-A', 'OOD'],
    ['ImageNet-R', 'OOD'],
    ['ObjectNet', 'OOD'],
    ['Country211', 'OOD'],
  ]),
  ...group('vqa', [
    ['OK-VQA', 'IND'],
    ['A-OKVQA', 'IND'],
    ['DocVQA', 'IND'],
    ['InfographicsVQA', 'IND'],
    ['ChartQA', 'IND'],
    ['Visual7W', 'IND'],
    ['ScienceQA', 'OOD'],
    ['VizWiz', 'OOD'],
    ['GQA', 'OOD'],
    ['TextVQA', 'OOD'],
  ]),
  ...group('retrieval', [
    ['VisDial', 'IND'],
    ['CIRR', 'IND'],
    ['VisualNews_t2i', 'IND'],
    ['VisualNews_i2t', 'IND'],
    ['MSCOCO_t2i', 'IND'],
    ['MSCOCO_i2t', 'IND'],
    ['NIGHTS', 'IND'],
    ['WebQA', 'IND'],
    ['FashionIQ', 'OOD'],
    ['Wiki-SS-NQ', 'OOD'],
    ['OVEN', 'OOD'],
    ['EDIS', 'OOD'],
  ]),
  ...group('grounding', [
    ['MSCOCO', 'IND'],
    ['RefCOCO', 'OOD'],
    ['RefCOCO-Matching', 'OOD'],
    ['Visual7W-Pointing', 'OOD'],
  ]),
]);

/**
 * The lookup key of a dataset name: lower case, with `-`, `_` and white space removed (so `ImageNet_1K`,
 * `imagenet-1k` and `ImageNet-1K` are the same dataset). Distinct datasets keep distinct keys.
 */
export function datasetKey(name: string): string {
  return name.toLowerCase().replace(/[-_\s]+/g, '');
}

const MMEB_BY_KEY: ReadonlyMap<string, MmebDataset> = new Map(MMEB_DATASETS.map((d) => [datasetKey(d.name), d]));

/** The MMEB dataset of this name (case and `-`/`_` differences tolerated), or undefined for an unknown name. */
export function mmebInfo(name: string): MmebDataset | undefined {
  return MMEB_BY_KEY.get(datasetKey(name));
}

/** The 7 ViDoRe-v2 tasks, in the order of the paper's figure (spec §4.2). */
export const VIDORE_V2_TASKS: readonly string[] = Object.freeze([
  'ESG_Human',
  'Eco_Mul',
  'Bio',
  'ESG_Syn',
  'ESG_Syn_Mul',
  'Bio_Mul',
  'Eco',
]);

const VIDORE_BY_KEY: ReadonlyMap<string, string> = new Map(VIDORE_V2_TASKS.map((t) => [datasetKey(t), t]));

/** The canonical ViDoRe-v2 task name for this name (same tolerance as mmebInfo), or undefined. */
export function vidoreTask(name: string): string | undefined {
  return VIDORE_BY_KEY.get(datasetKey(name));
}

/** One MMEB row of the paper's headline table: Precision@1 in percent. */
export interface MmebReference {
  readonly model: string;
  readonly metaTasks: Readonly<Record<MetaTask, number>>;
  readonly ind: number;
  readonly ood: number;
  readonly overall: number;
}

/** MoCa rows of the paper's MMEB table (spec §4.3), Precision@1 in percent. */
export const MMEB_PAPER_REFERENCE: readonly MmebReference[] = Object.freeze([
  {
    model: 'MoCa-3B (paper)',
    metaTasks: { classification: 59.8, vqa: 62.9, retrieval: 70.6, grounding: 88.6 },
    ind: 72.3,
    ood: 61.5,
    overall: 67.5,
  },
  {
    model: 'MoCa-7B (paper)',
    metaTasks: { classification: 65.8, vqa: 64.7, retrieval: 75.0, grounding: 92.4 },
    ind: 74.7,
    ood: 67.6,
    overall: 71.5,
  },
]);

/** One ViDoRe-v2 row of the paper's figure: nDCG@5 in percent per task and the average. */
export interface VidoreReference {
  readonly model: string;
  readonly tasks: Readonly<Record<string, number>>;
  readonly average: number;
}

/** MoCa rows of the paper's ViDoRe-v2 figure (spec §4.3), nDCG@5 in percent. */
export const VIDORE_PAPER_REFERENCE: readonly VidoreReference[] = Object.freeze([
  {
    model: 'MoCa-3B (paper)',
    tasks: { ESG_Human: 63.3, Eco_Mul: 57.3, Bio: 62.5, ESG_Syn: 58.3, ESG_Syn_Mul: 54.8, Bio_Mul: 59.8, Eco: 62.8 },
    average: 59.8,
  },
  {
    model: 'MoCa-7B (paper)',
    tasks: { ESG_Human: 58.8, Eco_Mul: 57.6, Bio: 63.2, ESG_Syn: 55.3, ESG_Syn_Mul: 51.4, Bio_Mul: 61.3, Eco: 63.8 },
    average: 58.8,
  },
]);
