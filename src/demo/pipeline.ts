// `moca demo`, end to end: a generated multimodal world → a tokenizer trained on it → a small Qwen2.5-VL-shaped
// model pre-trained causally (the stand-in for "a causal VLM") → the ablation arms (A: contrastive fine-tuning
// only; B: MoCa's continual pre-training, then the same fine-tuning; optional others) for each seed → evaluation
// on the world's MMEB-format tasks and document retrieval → a vector index with example searches → report.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { generateWorld, type WorldManifest } from '../data/synthetic/index.js';
import { writeFileAtomic } from '../eval/report.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { setNumThreads } from '../torch/index.js';
import { readJsonl } from '../util/jsonl.js';
import { formatDuration } from '../util/progress.js';
import { ARM_DESCRIPTIONS, type ArmName, DEMO_SETTINGS, type DemoScale, type DemoSettings } from './config.js';
import { evaluateModel, type ModelScores } from './evaluate.js';
import { type DemoSearchExample, buildDemoIndex } from './search.js';
import {
  causalLmStage,
  collectTexts,
  contrastiveStage,
  cptStage,
  initBaseModel,
  runStage,
  type StageRecord,
} from './stages.js';

export interface DemoOptions {
  /** Where everything goes (world, models, runs, evaluations, index, report). */
  output: string;
  scale: DemoScale;
  /** Training seeds: each gets its own base model and arms; the world is shared. */
  seeds: readonly number[];
  /** Seed of the generated world. */
  worldSeed: number;
  /** Arms to run ('cl-only' and 'moca' are always included). */
  arms: readonly ArmName[];
  threads?: number;
  /** Skip the index and example searches. */
  noIndex?: boolean;
  log?: (line: string) => void;
}

/** What one arm of one seed got and scored. */
export interface ArmRun {
  arm: ArmName;
  seed: number;
  stages: StageRecord[];
  model: string;
  scores: ModelScores;
}

export interface DemoRun {
  options: { scale: DemoScale; seeds: number[]; worldSeed: number; arms: ArmName[]; threads: number };
  settings: DemoSettings;
  world: { dir: string; summary: Record<string, unknown> };
  /** The causal base of each seed (and its scores without fine-tuning, as a floor). */
  bases: { seed: number; stages: StageRecord[]; model: string; scores: ModelScores }[];
  runs: ArmRun[];
  search: { index: string; examples: DemoSearchExample[] } | null;
  seconds: number;
}

/** The files of the generated world the pipeline uses. */
export interface WorldLayout {
  corpus: string;
  lm: string;
  pairs: { name: string; path: string }[];
  mmebDir: string;
  imageRoot: string;
  beirDir: string;
}

/** The files of a generated world, from its manifest (image paths are relative to the file that names them). */
export function worldLayout(dir: string): WorldLayout {
  const manifestFile = path.join(dir, 'manifest.json');
  if (!existsSync(manifestFile)) throw new Error(`generated world: ${manifestFile} missing`);
  const { files } = JSON.parse(readFileSync(manifestFile, 'utf8')) as WorldManifest;
  const at = (p: string) => path.join(dir, p);
  const layout: WorldLayout = {
    corpus: at(files.corpus),
    lm: at(files.lm),
    pairs: Object.entries(files.pairs).map(([name, p]) => ({ name, path: at(p) })),
    mmebDir: at(files.mmeb),
    imageRoot: at(files.mmeb),
    beirDir: at(files.beir),
  };
  for (const p of [layout.corpus, layout.lm, layout.mmebDir, layout.beirDir, ...layout.pairs.map((x) => x.path)])
    if (!existsSync(p)) throw new Error(`generated world: ${p} missing`);
  if (layout.pairs.length === 0) throw new Error(`generated world: no pair sets in ${manifestFile}`);
  return layout;
}

/**
 * Image → caption documents from the image-to-caption pairs (`<image>\n<caption>`), for the causal pre-training of
 * the base: the stand-in for the captioning data a real VLM is pre-trained on. Returns the file's path.
 */
export async function writeCaptionCorpus(world: WorldLayout, file: string): Promise<string> {
  const source = world.pairs.find((p) => p.name === 'ret_i2t');
  if (!source) throw new Error('generated world: no ret_i2t pair set for the caption corpus');
  const lines: string[] = [];
  for await (const rec of readJsonl(source.path)) {
    if (!('value' in rec)) throw new Error(`${source.path}:${rec.line}: ${rec.error}`);
    const row = rec.value as { id?: string; qry_image_path?: string; pos_text?: string };
    if (!row.qry_image_path || !row.pos_text) continue;
    lines.push(
      JSON.stringify({
        id: `caption-${row.id ?? lines.length}`,
        text: `${QWEN_IMAGE_PLACEHOLDER}\n${row.pos_text}`,
        // Paths relative to the new file's folder.
        images: [path.relative(path.dirname(file), path.join(path.dirname(source.path), row.qry_image_path))],
      }),
    );
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, lines.join('\n') + '\n');
  return file;
}

export async function runDemo(options: DemoOptions): Promise<DemoRun> {
  const t0 = performance.now();
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const settings = DEMO_SETTINGS[options.scale];
  const threads = options.threads ?? 2;
  setNumThreads(threads);
  const arms: ArmName[] = ['cl-only', 'moca', ...options.arms.filter((a) => a !== 'cl-only' && a !== 'moca')];
  const out = path.resolve(options.output);
  mkdirSync(out, { recursive: true });
  const elapsed = () => formatDuration((performance.now() - t0) / 1000);
  const step = (msg: string) => log(`\n[demo ${elapsed()}] ${msg}`);

  // 1. The world.
  step(`generating the world (scale ${options.scale}, seed ${options.worldSeed})`);
  const worldDir = path.join(out, 'world');
  const worldStage = await runStage(
    worldDir,
    'world',
    async () => {
      const manifest = await generateWorld(worldDir, { seed: options.worldSeed, scale: options.scale });
      return { output: worldDir, details: { ...manifest.counts } };
    },
    log,
  );
  const world = worldLayout(worldDir);
  const texts = await collectTexts([world.corpus, world.lm], ['text']);
  const captions = await writeCaptionCorpus(world, path.join(out, 'data', 'captions.jsonl'));

  const bases: DemoRun['bases'] = [];
  const runs: ArmRun[] = [];
  for (const seed of options.seeds) {
    const seedDir = path.join(out, 'runs', `seed-${seed}`);
    const evalDir = path.join(out, 'eval', `seed-${seed}`);
    // 2. Tokenizer + random model, 3. causal pre-training: the "causal VLM" both arms start from.
    step(`seed ${seed}: tokenizer (byte-level BPE on the world's texts) and a random Qwen2.5-VL-shaped model`);
    const init = await runStage(
      path.join(seedDir, 'init'),
      'init',
      async () => {
        const info = await initBaseModel(path.join(seedDir, 'init', 'model'), texts, settings, seed);
        return { output: path.join(seedDir, 'init', 'model'), details: info };
      },
      log,
    );
    step(`seed ${seed}: causal LM pre-training of the base (${settings.lm.steps} steps)`);
    const lm = await runStage(
      path.join(seedDir, 'base-lm'),
      'causal-lm',
      () =>
        causalLmStage({
          modelDir: init.output,
          // The interleaved corpus and its text-only version, plus image → caption documents: as in a VLM's own
          // pre-training, captions follow their images, so next-token prediction teaches the vision tower what
          // it sees.
          sources: [world.corpus, world.lm, captions],
          outputDir: path.join(seedDir, 'base-lm'),
          settings,
          budget: settings.lm,
          seed,
          label: `seed ${seed} causal LM`,
          // LLaVA's alignment recipe: the (here random) patch encoder stays frozen and the merger learns to
          // project it; trained from scratch on a language loss the encoder collapses to a constant output.
          trainVision: 'merger',
        }),
      log,
    );
    step(`seed ${seed}: evaluating the base without fine-tuning (causal attention, last-token pooling)`);
    const baseScores = await evaluateModel({
      modelDir: lm.output,
      mmebDir: world.mmebDir,
      imageRoot: world.imageRoot,
      beirDir: world.beirDir,
      outputDir: path.join(evalDir, 'base'),
      name: `base (seed ${seed})`,
      limit: settings.evalLimit,
      attention: 'causal',
      pooling: 'last',
      threads,
    });
    bases.push({ seed, stages: [init, lm], model: lm.output, scores: baseScores });

    const subsets = world.pairs.map((p) => `${p.name}=${p.path}`);
    for (const arm of arms) {
      const armDir = path.join(seedDir, arm);
      step(`seed ${seed}, arm ${arm}: ${ARM_DESCRIPTIONS[arm]}`);
      const stages: StageRecord[] = [];
      let start = lm.output;
      const documentStage = { sources: [world.corpus], settings, budget: settings.cpt, seed };
      if (arm === 'moca' || arm === 'moca-no-mlm' || arm === 'moca-no-mae') {
        const cpt = await runStage(
          path.join(armDir, 'cpt'),
          arm === 'moca' ? 'cpt' : `cpt (${arm.slice(5)})`,
          () =>
            cptStage({
              ...documentStage,
              modelDir: start,
              outputDir: path.join(armDir, 'cpt'),
              label: `seed ${seed} ${arm} CPT`,
              useMlm: arm !== 'moca-no-mlm',
              useMae: arm !== 'moca-no-mae',
            }),
          log,
        );
        stages.push(cpt);
        start = cpt.output;
      } else if (arm === 'lm-matched') {
        const more = await runStage(
          path.join(armDir, 'lm'),
          'causal-lm (matched)',
          () =>
            causalLmStage({
              ...documentStage,
              modelDir: start,
              outputDir: path.join(armDir, 'lm'),
              label: `seed ${seed} matched causal LM`,
              trainVision: 'merger',
            }),
          log,
        );
        stages.push(more);
        start = more.output;
      }
      const causal = arm === 'causal-cl';
      const cl = await runStage(
        path.join(armDir, 'cl'),
        'cl',
        () =>
          contrastiveStage({
            modelDir: start,
            subsets,
            outputDir: path.join(armDir, 'cl'),
            settings,
            seed,
            label: `seed ${seed} ${arm} CL`,
            ...(causal ? { attention: 'causal' as const, pooling: 'last' as const } : {}),
          }),
        log,
      );
      stages.push(cl);
      step(`seed ${seed}, arm ${arm}: evaluating`);
      const scores = await evaluateModel({
        modelDir: cl.output,
        mmebDir: world.mmebDir,
        imageRoot: world.imageRoot,
        beirDir: world.beirDir,
        outputDir: path.join(evalDir, arm),
        name: `${arm} (seed ${seed})`,
        limit: settings.evalLimit,
        ...(causal ? { attention: 'causal' as const, pooling: 'last' as const } : {}),
        threads,
      });
      runs.push({ arm, seed, stages: [init, lm, ...stages], model: cl.output, scores });
      log(
        `  ${arm}: overall P@1 ${pct(scores.overall)}, IND ${pct(scores.ind)}, OOD ${pct(scores.ood)}, ` +
          `doc nDCG@5 ${pct(scores.ndcg5)}`,
      );
    }
  }

  // An index over the evaluation images with the first seed's MoCa model, and a few searches.
  let search: DemoRun['search'] = null;
  if (!options.noIndex) {
    const first = runs.find((r) => r.arm === 'moca')!;
    step('indexing the evaluation images with the MoCa model and running example searches');
    search = await buildDemoIndex({
      modelDir: first.model,
      mmebDir: world.mmebDir,
      imageRoot: world.imageRoot,
      beirDir: world.beirDir,
      indexDir: path.join(out, 'index'),
      log,
    });
  }

  return {
    options: { scale: options.scale, seeds: [...options.seeds], worldSeed: options.worldSeed, arms, threads },
    settings,
    world: { dir: worldDir, summary: worldStage.details ?? {} },
    bases,
    runs,
    search,
    seconds: (performance.now() - t0) / 1000,
  };
}

export function pct(v: number | null): string {
  return v === null ? '—' : (100 * v).toFixed(1);
}
