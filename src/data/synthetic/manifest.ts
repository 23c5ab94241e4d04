// The manifest of a generated world (manifest.json, also returned by generateWorld): what was generated, where, how
// many, and the ground truth an oracle needs — every image's content and the meaning of every evaluation input.
import type { Page } from './page.js';
import type { Scene, SceneEdit } from './scene.js';
import type { ColourName, ShapeName, SizeName } from './vocabulary.js';

export type WorldScale = 'quick' | 'default' | 'full';

export type MetaTask = 'classification' | 'vqa' | 'retrieval' | 'grounding';

interface ImageTruthBase {
  width: number;
  height: number;
  /** First 16 hex digits of the SHA-256 of `width`, `height` and the raw RGB bytes (machine independent). */
  pixels: string;
}

export interface SceneImageTruth extends ImageTruthBase {
  kind: 'scene';
  /** The scene's canonical meaning (sceneKey). */
  key: string;
  scene: Scene;
  /** For a one-edit variant of another scene (a hard negative): what was changed. */
  edit?: SceneEdit;
}

export interface CropImageTruth extends ImageTruthBase {
  kind: 'crop';
  /** The scene image it was cut from (path relative to the world root). */
  source: string;
  /** Index of the object in the source scene. */
  objectIndex: number;
  object: { shape: ShapeName; colour: ColourName; size: SizeName };
  box: { x: number; y: number; width: number; height: number };
}

export interface PageImageTruth extends ImageTruthBase {
  kind: 'page';
  id: string;
  page: Page;
}

export type ImageTruth = SceneImageTruth | CropImageTruth | PageImageTruth;

/**
 * The meaning of each input of one evaluation row: equal strings mean "the same thing" (an ideal embedding maps
 * them to the same point). The positive candidate (index 0) has the query's meaning; no other candidate does.
 */
export interface EvalRowTruth {
  query: string;
  candidates: string[];
}

export interface EvalDatasetInfo {
  name: string;
  metaTask: MetaTask;
  split: 'ind' | 'ood';
  description: string;
}

export interface EvalDatasetSummary extends EvalDatasetInfo {
  /** The dataset file, relative to the world root. */
  file: string;
  rows: number;
  /** Candidates per row. */
  candidates: number;
}

export interface WorldManifest {
  format: 'moca-ts-synthetic-world';
  version: 1;
  seed: number;
  scale: WorldScale;
  /** How image paths in the data files are written. */
  imagePaths: string;
  vocabulary: {
    shapes: readonly string[];
    colours: readonly string[];
    sizes: readonly string[];
    relations: readonly string[];
    labelWords: readonly string[];
    titleWords: readonly string[];
  };
  /** Colour–shape combinations absent from every training pair; the OOD evaluation sets are built on them. */
  heldOutCombos: { colour: ColourName; shape: ShapeName }[];
  /** Whether the unlabelled corpus may show held-out combinations (it is unlabelled data, not task supervision). */
  heldOutInCorpus: boolean;
  /** Paths relative to the world root. */
  files: {
    corpus: string;
    lm: string;
    pairs: Record<string, string>;
    mmeb: string;
    datasetTable: string;
    beir: string;
  };
  counts: {
    images: { scenes: number; pages: number; crops: number; total: number };
    imagesByPart: Record<string, number>;
    corpus: { documents: number; withImages: number; textOnly: number; imageReferences: number };
    lm: { documents: number };
    pairs: Record<string, number>;
    eval: EvalDatasetSummary[];
    beir: { name: string; documents: number; queries: number; qrels: number };
  };
  /**
   * SHA-256 over every text file's bytes and every image's pixel hash (sorted by path): equal digests mean equal
   * worlds, whatever PNG encoder wrote the images.
   */
  digest: string;
  truth: {
    /** By path relative to the world root. */
    images: Record<string, ImageTruth>;
    /** By dataset name: one entry per row, in file order. */
    eval: Record<string, EvalRowTruth[]>;
    /** BEIR query id → the id of its one relevant page. */
    beir: Record<string, string>;
  };
}
