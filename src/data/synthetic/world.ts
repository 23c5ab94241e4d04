// generateWorld: the whole generated multimodal world in one folder, deterministic in its integer seed.
//
//   <out>/manifest.json                      counts, files, held-out combinations, digest, ground truth
//   <out>/corpus.jsonl, lm.jsonl              stage-1 interleaved corpus; causal-LM warm-up text
//   <out>/images/                             the corpus's images
//   <out>/pairs/<subset>.jsonl, pairs/images/ stage-2 pairs (MoCa format), 7 subsets over the 4 meta-tasks
//   <out>/eval/mmeb/<Dataset>.jsonl, datasets.json, images/<Dataset>/   MMEB-style evaluation (IND and OOD)
//   <out>/eval/beir/Syn-Docs/                 BEIR document retrieval
//
// Image paths inside each data file are relative to that file's folder, which is the default image root of every
// loader here (stage-1 sources, pair subsets, `moca eval mmeb`, `moca eval beir`).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { SCALES, textWriter, type BuildContext, type ProgressEvent } from './context.js';
import { buildCorpus } from './corpus.js';
import { BEIR_DIR, buildBeirSet, buildMmebSets, MMEB_DIR } from './eval-sets.js';
import { ImageStore } from './image-store.js';
import type { WorldManifest, WorldScale } from './manifest.js';
import { buildPairs, PAIR_SUBSETS } from './pairs.js';
import { heldOutCombos } from './pools.js';
import { COLOURS, LABEL_WORDS, RELATIONS, SHAPES, SIZES, TITLE_WORDS } from './vocabulary.js';

export interface GenerateWorldOptions {
  /** Any safe integer; the same seed gives the same world (same pixels and files) on every machine. */
  seed: number;
  /** quick (tests, smoke runs), default (the demo), full (longer runs). Default 'default'. */
  scale?: WorldScale;
  /**
   * Whether the unlabelled corpus may show held-out colour–shape combinations (default true: the corpus stands for
   * broad unlabelled data; only the labelled pairs hold them out). False keeps them out of the corpus too.
   */
  heldOutInCorpus?: boolean;
  /** Progress of the stages (images are the slow part). */
  onProgress?: (event: ProgressEvent) => void;
}

const FORMAT = 'moca-ts-synthetic-world';
const MANIFEST = 'manifest.json';
/** Written first, so that a world whose generation was interrupted (no manifest yet) is still recognised as one. */
const MARKER = '.synthetic-world';
const OWNED = [MARKER, MANIFEST, 'corpus.jsonl', 'lm.jsonl', 'images', 'pairs', 'eval'];

function hasFormat(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { format?: unknown }).format === FORMAT;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` ready: created if missing; a previous (complete or interrupted) world in it is removed, other files
 * are left alone; a non-empty folder that holds no world is refused.
 */
function prepareOutput(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  else if (readdirSync(dir).length > 0) {
    if (!hasFormat(path.join(dir, MANIFEST)) && !hasFormat(path.join(dir, MARKER))) {
      throw new Error(
        `generateWorld: ${dir} is not empty and holds no generated world (${MANIFEST}); use a new folder`,
      );
    }
    for (const name of OWNED) rmSync(path.join(dir, name), { recursive: true, force: true });
  }
  writeFileSync(path.join(dir, MARKER), JSON.stringify({ format: FORMAT }) + '\n');
}

function digestOf(texts: ReadonlyMap<string, string>, images: WorldManifest['truth']['images']): string {
  const entries = [
    ...[...texts].map(([p, h]) => `${p}\t${h}`),
    ...Object.entries(images).map(([p, t]) => `${p}\t${t.pixels}`),
  ].sort();
  return createHash('sha256').update(entries.join('\n')).digest('hex');
}

/** Generates the world into `outDir` and returns its manifest (also written to `<outDir>/manifest.json`). */
export async function generateWorld(outDir: string, options: GenerateWorldOptions): Promise<WorldManifest> {
  const { seed } = options;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`generateWorld: seed must be an integer, got ${seed}`);
  const scale = options.scale ?? 'default';
  if (!(scale in SCALES)) {
    throw new RangeError(`generateWorld: scale must be one of ${Object.keys(SCALES).join(', ')}, got ${scale}`);
  }
  const root = path.resolve(outDir);
  prepareOutput(root);
  const textHashes = new Map<string, string>();
  const store = new ImageStore(root);
  const heldOut = heldOutCombos(seed);
  const heldOutInCorpus = options.heldOutInCorpus ?? true;
  const ctx: BuildContext = {
    root,
    seed,
    scale: SCALES[scale],
    store,
    heldOut,
    heldOutInCorpus,
    writeText: textWriter(root, textHashes),
    progress: (e) => options.onProgress?.(e),
  };

  const pairs = await buildPairs(ctx);
  const corpus = await buildCorpus(
    ctx,
    PAIR_SUBSETS.flatMap((s) => pairs.rows[s]),
  );
  const mmeb = await buildMmebSets(ctx);
  const beir = await buildBeirSet(ctx);
  await store.flush();

  const images = store.truth;
  const kinds = { scene: 0, page: 0, crop: 0 };
  const byPart: Record<string, number> = {};
  for (const [p, t] of Object.entries(images)) {
    kinds[t.kind]++;
    const part = p.startsWith('pairs/')
      ? 'pairs'
      : p.startsWith('eval/')
        ? p.split('/').slice(0, 4).join('/')
        : 'corpus';
    byPart[part] = (byPart[part] ?? 0) + 1;
  }
  const manifest: WorldManifest = {
    format: FORMAT,
    version: 1,
    seed,
    scale,
    imagePaths: "relative to the folder of the file that names them (each loader's default image root)",
    vocabulary: {
      shapes: SHAPES,
      colours: COLOURS,
      sizes: SIZES,
      relations: RELATIONS,
      labelWords: LABEL_WORDS,
      titleWords: TITLE_WORDS,
    },
    heldOutCombos: heldOut,
    heldOutInCorpus,
    files: {
      corpus: 'corpus.jsonl',
      lm: 'lm.jsonl',
      pairs: pairs.files,
      mmeb: MMEB_DIR,
      datasetTable: `${MMEB_DIR}/datasets.json`,
      beir: BEIR_DIR,
    },
    counts: {
      images: { scenes: kinds.scene, pages: kinds.page, crops: kinds.crop, total: store.size },
      imagesByPart: byPart,
      corpus: corpus.corpus,
      lm: corpus.lm,
      pairs: pairs.counts,
      eval: mmeb.datasets,
      beir: { name: beir.name, documents: beir.documents, queries: beir.queries, qrels: beir.qrels },
    },
    digest: digestOf(textHashes, images),
    truth: { images, eval: mmeb.truth, beir: beir.truth },
  };
  textWriter(root, new Map())(MANIFEST, JSON.stringify(manifest) + '\n');
  ctx.progress({ stage: 'write', done: 1, total: 1 });
  return manifest;
}
