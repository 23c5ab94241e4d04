// The generated world (quick scale): deterministic by seed, readable by the project's own loaders, its evaluation
// tasks solvable (an oracle built from the ground truth scores 100 %) and non-trivial (constant and random
// embeddings score 0 / chance), and its OOD sets really held out from training.
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { BadRowRecorder } from '../../../src/data/errors.js';
import { loadPairSubset } from '../../../src/data/pairs/index.js';
import { DataSource, START_CURSOR } from '../../../src/data/source.js';
import { parseSourceSpec } from '../../../src/data/source-spec.js';
import {
  Canvas,
  generateWorld,
  PAIR_SUBSETS,
  pixelHash,
  PROMPTS,
  type ImageTruth,
  type WorldManifest,
} from '../../../src/data/synthetic/index.js';
import { readBeirDataset } from '../../../src/eval/beir.js';
import { parseDatasetTable } from '../../../src/eval/report.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../../../src/processing/inputs.js';
import {
  beirMetrics,
  constantEmbedding,
  oneHot,
  precision,
  randomEmbedding,
  readRows,
  worldPath,
} from './embeddings.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'moca-world-'));
const A = path.join(tmp, 'a');
const C = path.join(tmp, 'c');
let world: WorldManifest;
let worldC: WorldManifest;

before(async () => {
  world = await generateWorld(A, { seed: 7, scale: 'quick' });
  worldC = await generateWorld(C, { seed: 8, scale: 'quick', heldOutInCorpus: false });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file under `dir`, as POSIX paths relative to it, sorted. */
function listFiles(dir: string): string[] {
  const walk = (d: string, prefix: string): string[] =>
    readdirSync(d).flatMap((name) => {
      const rel = prefix ? `${prefix}/${name}` : name;
      return statSync(path.join(d, name)).isDirectory() ? walk(path.join(d, name), rel) : [rel];
    });
  return walk(dir, '').sort();
}

function readJsonl<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

/** All training text (corpus, LM warm-up, pair files) as one string. */
function trainingText(dir: string, m: WorldManifest): string {
  return [m.files.corpus, m.files.lm, ...Object.values(m.files.pairs)]
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

const heldOutNames = (m: WorldManifest) => m.heldOutCombos.map((c) => `${c.colour} ${c.shape}`);

function objectsOf(t: ImageTruth): { colour: string; shape: string }[] {
  return t.kind === 'scene' ? t.scene.objects : t.kind === 'crop' ? [t.object] : [];
}

describe('determinism', () => {
  test('another seed gives another world; the same seed, regenerated over it, gives byte-identical files', async () => {
    assert.notEqual(worldC.digest, world.digest);
    const a = world.truth.images;
    const c = worldC.truth.images;
    const samePixels = Object.keys(a).filter((p) => c[p]?.pixels === a[p]!.pixels).length;
    assert.ok(samePixels < Object.keys(a).length / 20, `${samePixels} images identical across seeds`);
    const corpus = (d: string) => readFileSync(path.join(d, 'corpus.jsonl'), 'utf8');
    assert.notEqual(corpus(C), corpus(A));

    // Regenerating seed 7 into the seed-8 folder — made to look interrupted (no manifest, a stale file) and holding
    // a file of someone else — replaces that world, keeps the foreign file and reproduces the first world exactly.
    rmSync(path.join(C, 'manifest.json'));
    writeFileSync(path.join(C, 'pairs', 'stale.jsonl'), '{}\n');
    writeFileSync(path.join(C, 'stage.json'), '{}\n');
    const again = await generateWorld(C, { seed: 7, scale: 'quick' });
    assert.equal(again.digest, world.digest);
    assert.ok(existsSync(path.join(C, 'stage.json')));
    rmSync(path.join(C, 'stage.json'));
    const files = listFiles(A);
    assert.deepEqual(listFiles(C), files);
    for (const f of files) {
      assert.ok(readFileSync(path.join(A, f)).equals(readFileSync(path.join(C, f))), `${f} differs between runs`);
    }
  });

  test('other non-empty folders are refused; bad options are named', async () => {
    const other = path.join(tmp, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'mine');
    await assert.rejects(generateWorld(other, { seed: 1, scale: 'quick' }), /not empty and holds no generated world/);
    assert.ok(existsSync(path.join(other, 'notes.txt')));
    await assert.rejects(generateWorld(path.join(tmp, 'x'), { seed: 1.5 }), /seed must be an integer/);
    await assert.rejects(
      generateWorld(path.join(tmp, 'y'), { seed: 1, scale: 'huge' as 'quick' }),
      /scale must be one of quick, default, full/,
    );
  });
});

describe('files and manifest', () => {
  test('every image of the manifest exists, decodes to its recorded pixels, and none is unlisted', async () => {
    const pngs = listFiles(A).filter((f) => f.endsWith('.png'));
    assert.deepEqual(pngs, Object.keys(world.truth.images).sort());
    assert.equal(world.counts.images.total, pngs.length);
    const { scenes, pages, crops } = world.counts.images;
    assert.equal(scenes + pages + crops, pngs.length);
    assert.ok(pngs.length >= 200 && pngs.length <= 1000, `${pngs.length} images at quick scale`);
    for (const f of pngs.filter((_, i) => i % 7 === 0)) {
      const { data, info } = await sharp(path.join(A, f)).raw().toBuffer({ resolveWithObject: true });
      const canvas = new Canvas(info.width, info.height);
      canvas.data.set(data);
      const t = world.truth.images[f]!;
      assert.equal(pixelHash(canvas), t.pixels, f);
      assert.equal(info.width, t.width);
      assert.ok(info.width % 28 === 0 || t.kind === 'crop', `${f}: width ${info.width}`);
      assert.ok(info.width <= 168 && info.height <= 224, `${f}: ${info.width}×${info.height}`);
    }
  });

  test('the stage-1 corpus reads with DataSource: no bad rows, placeholders match images, images exist', async () => {
    const source = new DataSource(parseSourceSpec(`corpus=${path.join(A, world.files.corpus)}`));
    const recorder = new BadRowRecorder();
    let docs = 0;
    let withImages = 0;
    for await (const { doc } of source.documents(START_CURSOR, 0, recorder)) {
      docs++;
      if (doc.images.length > 0) withImages++;
      assert.ok(doc.images.length <= 3);
      assert.equal(doc.text.split(QWEN_IMAGE_PLACEHOLDER).length - 1, doc.images.length);
      for (const img of doc.images) assert.ok(typeof img === 'string' && existsSync(img), String(img));
      assert.ok(doc.text.length > 40, doc.text);
    }
    assert.equal(recorder.stats().total, 0);
    assert.equal(docs, world.counts.corpus.documents);
    assert.equal(withImages, world.counts.corpus.withImages);
    assert.ok(world.counts.corpus.textOnly > 0 && withImages > 0);
    const lm = readJsonl<{ id: string; text: string }>(path.join(A, world.files.lm));
    assert.equal(lm.length, world.counts.lm.documents);
    for (const r of lm) {
      assert.ok(r.text.length > 0 && !r.text.includes('<|vision_start|>') && !r.text.includes('<|image_1|>'), r.id);
    }
  });

  test('every pair subset loads with loadPairSubset (default image root): no bad rows, 2 hard negatives, images exist', async () => {
    assert.deepEqual(Object.keys(world.files.pairs), [...PAIR_SUBSETS]);
    for (const name of PAIR_SUBSETS) {
      const subset = await loadPairSubset(`${name}=${path.join(A, world.files.pairs[name]!)}`, { strict: true });
      assert.equal(subset.badRows, 0, name);
      assert.equal(subset.samples.length, world.counts.pairs[name], name);
      assert.ok(subset.samples.length >= 12, `${name}: ${subset.samples.length} rows`);
      for (const s of subset.samples) {
        assert.equal(s.negatives.length, 2, s.id);
        for (const side of [s.query, s.positive, ...s.negatives]) {
          if (side.image) {
            assert.equal(side.image.kind, 'path');
            assert.ok(side.image.kind === 'path' && existsSync(side.image.path), `${s.id}: missing image`);
          }
        }
        // Hard negatives differ from the positive.
        for (const n of s.negatives) {
          const same = n.text === s.positive.text && JSON.stringify(n.image) === JSON.stringify(s.positive.image);
          assert.ok(!same, `${s.id}: a negative equals the positive`);
        }
      }
    }
  });

  test('retrieval hard negatives are minimally different scenes: same canvas and background, another meaning', () => {
    type Row = { pos_image_path: string; neg_image_path: string[] };
    const rows = readJsonl<Row>(path.join(A, world.files.pairs.ret_t2i!));
    for (const r of rows) {
      const pos = world.truth.images[`pairs/${r.pos_image_path}`]!;
      assert.equal(pos.kind, 'scene');
      for (const n of r.neg_image_path) {
        const neg = world.truth.images[`pairs/${n}`]!;
        assert.ok(pos.kind === 'scene' && neg.kind === 'scene');
        assert.notEqual(neg.key, pos.key);
        assert.deepEqual(
          [neg.scene.width, neg.scene.height, neg.scene.background, neg.scene.texture, neg.scene.textureSeed],
          [pos.scene.width, pos.scene.height, pos.scene.background, pos.scene.texture, pos.scene.textureSeed],
        );
      }
    }
  });

  test('the MMEB sets read with the harness reader; datasets.json is a valid dataset table', async () => {
    const table = parseDatasetTable(
      JSON.parse(readFileSync(path.join(A, world.files.datasetTable), 'utf8')),
      'datasets.json',
    );
    const names = world.counts.eval.map((d) => d.name);
    assert.deepEqual(
      table.map((d) => d.name),
      names,
    );
    assert.ok(names.length >= 8 && names.length <= 12);
    for (const split of ['IND', 'OOD'] as const) {
      const tasks = new Set(table.filter((d) => d.split === split).map((d) => d.metaTask));
      assert.deepEqual([...tasks].sort(), ['classification', 'grounding', 'retrieval', 'vqa'], split);
    }
    for (const d of world.counts.eval) {
      const rows = await readRows(A, world, d.name);
      assert.equal(rows.length, d.rows, d.name);
      assert.ok(d.rows >= 10, `${d.name}: ${d.rows} rows`);
      for (const r of rows) {
        assert.ok(
          r.candidates.length >= 8 && r.candidates.length <= 20,
          `${d.name}: ${r.candidates.length} candidates`,
        );
        for (const x of [r.query, ...r.candidates]) {
          if (x.image) assert.ok(existsSync(x.image), x.image);
          assert.equal(x.text.includes('<|image_1|>'), false);
          assert.equal(x.text.includes(QWEN_IMAGE_PLACEHOLDER), x.image !== null);
        }
      }
    }
  });

  test('the BEIR set reads with the harness reader: one relevant page per query, images exist', async () => {
    const data = await readBeirDataset(path.join(A, world.files.beir));
    assert.equal(data.corpus.length, world.counts.beir.documents);
    assert.equal(data.queries.length, world.counts.beir.queries);
    assert.ok(data.queries.length >= 10);
    for (const d of data.corpus) assert.ok(d.image && existsSync(d.image), d.id);
    for (const q of data.queries) {
      const rel = data.qrels.get(q.id)!;
      assert.deepEqual([...rel], [[world.truth.beir[q.id]!, 1]]);
    }
  });
});

describe('held-out compositions (OOD)', () => {
  test('no training image or pair text shows a held-out colour–shape combination', () => {
    const banned = new Set(heldOutNames(world));
    assert.equal(banned.size, 8);
    for (const [p, t] of Object.entries(world.truth.images)) {
      if (!p.startsWith('pairs/')) continue;
      for (const o of objectsOf(t))
        assert.ok(!banned.has(`${o.colour} ${o.shape}`), `${p} shows ${o.colour} ${o.shape}`);
    }
    const pairText = Object.values(world.files.pairs)
      .map((f) => readFileSync(path.join(A, f), 'utf8'))
      .join('\n');
    for (const name of banned) assert.ok(!pairText.includes(name), `pairs mention ${name}`);
  });

  test('the unlabelled corpus shows held-out combinations only when allowed', () => {
    const corpusShowing = (m: WorldManifest) => {
      const banned = new Set(heldOutNames(m));
      return Object.entries(m.truth.images).filter(
        ([p, t]) => p.startsWith('images/') && objectsOf(t).some((o) => banned.has(`${o.colour} ${o.shape}`)),
      ).length;
    };
    assert.equal(world.heldOutInCorpus, true);
    assert.ok(corpusShowing(world) > 0);
    assert.equal(worldC.heldOutInCorpus, false);
    assert.equal(corpusShowing(worldC), 0);
  });

  test('every OOD row is about a held-out combination; IND images never show one', async () => {
    const banned = new Set(heldOutNames(world));
    const shows = (image: string) =>
      objectsOf(world.truth.images[worldPath(A, image)]!).some((o) => banned.has(`${o.colour} ${o.shape}`));
    for (const d of world.counts.eval) {
      const rows = await readRows(A, world, d.name);
      for (const [i, r] of rows.entries()) {
        if (d.split === 'ind') {
          for (const x of [r.query, ...r.candidates]) if (x.image) assert.ok(!shows(x.image), `${d.name}: ${x.image}`);
        } else {
          // The image the query is about: its own, or (text-to-image) the positive.
          const subject = r.query.image ?? r.candidates[0]!.image!;
          assert.ok(shows(subject), `${d.name} row ${i}: ${subject} shows no held-out combination`);
        }
      }
    }
  });

  test('OOD instructions and phrasings appear in no training text', async () => {
    const training = trainingText(A, world);
    const instructions = [
      PROMPTS.shapeClassificationOod,
      PROMPTS.vqaOod('@'),
      PROMPTS.textToImageOod('@'),
      PROMPTS.groundingOod('@'),
    ].map((p) => p.split('@')[0]!.replace('<|image_1|>', '').trim());
    for (const ins of instructions) {
      assert.ok(ins.length > 10);
      assert.ok(!training.includes(ins), `training text contains "${ins}"`);
    }
    const trainingQueries = new Set(
      Object.values(world.files.pairs).flatMap((f) => readJsonl<{ qry: string }>(path.join(A, f)).map((r) => r.qry)),
    );
    for (const d of world.counts.eval.filter((x) => x.split === 'ood')) {
      for (const r of await readRows(A, world, d.name)) {
        const raw = r.query.text.replace(QWEN_IMAGE_PLACEHOLDER, '<|image_1|>');
        assert.ok(!trainingQueries.has(raw), `${d.name}: query also in training: ${raw}`);
      }
    }
  });
});

describe('solvable and non-trivial', () => {
  /** The meaning of an image input derived from the image's own ground truth, where the task fixes it. */
  function imageMeaning(t: ImageTruth, recorded: string): string | undefined {
    if (t.kind === 'crop') return `object:${t.object.colour} ${t.object.shape}`;
    if (t.kind === 'page') return `page:${t.id}`;
    if (recorded.startsWith('scene:')) return `scene:${t.key}`;
    if (recorded.startsWith('shape:')) return `shape:${t.scene.objects[0]!.shape}`;
    if (recorded.startsWith('colour:')) return `colour:${t.scene.objects[0]!.colour}`;
    return undefined; // VQA / grounding queries: the meaning depends on the question too
  }

  test('an oracle from the ground truth scores P@1 = 100 % on every dataset; image meanings match the images', async () => {
    for (const d of world.counts.eval) {
      const rows = await readRows(A, world, d.name);
      const truth = world.truth.eval[d.name]!;
      assert.equal(truth.length, rows.length);
      const meanings = [...new Set(truth.flatMap((t) => [t.query, ...t.candidates]))];
      const vec = oneHot(meanings);
      let checked = 0;
      const result = precision(rows, (input, at) => {
        if (!at) throw new Error('precision() names the row and role of every input');
        const t = truth[at.row]!;
        const recorded = at.role === 'query' ? t.query : t.candidates[at.role]!;
        if (input.image) {
          const derived = imageMeaning(world.truth.images[worldPath(A, input.image)]!, recorded);
          if (derived !== undefined) {
            assert.equal(derived, recorded, `${d.name} row ${at.row}: ${input.image}`);
            checked++;
          }
        }
        return vec(recorded);
      });
      assert.equal(result.mean, 1, `${d.name}: oracle P@1 ${result.mean}`);
      if (d.metaTask !== 'vqa') assert.ok(checked >= rows.length, `${d.name}: only ${checked} image meanings checked`);
    }
    const vec = oneHot([
      ...new Set(Object.values(world.truth.images).flatMap((t) => (t.kind === 'page' ? [t.id] : []))),
    ]);
    const metrics = await beirMetrics(
      A,
      world,
      (id) => vec(world.truth.beir[id]!),
      (id, image) => {
        const t = world.truth.images[worldPath(A, image)]!;
        assert.ok(t.kind === 'page' && t.id === id);
        return vec(t.id);
      },
    );
    assert.equal(metrics.ndcg_cut_5, 1);
    assert.equal(metrics.recall_10, 1);
  });

  test('a constant embedding scores 0 everywhere (ties count as wrong)', async () => {
    for (const d of world.counts.eval) {
      const rows = await readRows(A, world, d.name);
      assert.equal(precision(rows, constantEmbedding).mean, 0, d.name);
    }
  });

  test('random embeddings score chance: 1/candidates per row, within 4 standard errors', async () => {
    // 20 seeds × all rows of all datasets. Each row is a Bernoulli trial with p = 1/n (n candidates): a random
    // unit vector per distinct input makes every candidate equally likely to score highest. Trials within a seed
    // share candidate vectors (e.g. the 8 class names), which adds variance; classes are balanced, so the mean is
    // still exactly 1/n. 4 binomial standard errors of the pooled mean bound a fluke at ~6e-5 (before the extra
    // correlation), and are tight enough (±0.03 around ~0.11) to catch any leak that makes the positive
    // recognisable without content (e.g. a fixed position or a duplicated text).
    const seeds = 20;
    let sum = 0;
    let expected = 0;
    let variance = 0;
    let trials = 0;
    const perDataset: string[] = [];
    for (const d of world.counts.eval) {
      const rows = await readRows(A, world, d.name);
      let dsum = 0;
      for (let s = 0; s < seeds; s++) dsum += precision(rows, randomEmbedding(1000 + s)).mean * rows.length;
      const p = rows.reduce((a, r) => a + 1 / r.candidates.length, 0);
      sum += dsum;
      expected += p * seeds;
      variance += rows.reduce((a, r) => a + (1 / r.candidates.length) * (1 - 1 / r.candidates.length), 0) * seeds;
      trials += rows.length * seeds;
      perDataset.push(
        `${d.name} ${(dsum / (rows.length * seeds)).toFixed(3)} (chance ${(p / rows.length).toFixed(3)})`,
      );
      // Per dataset, a much looser bound: no dataset may be solvable by chance.
      const se = Math.sqrt(((p / rows.length) * (1 - p / rows.length)) / (rows.length * seeds));
      assert.ok(dsum / (rows.length * seeds) < p / rows.length + 5 * se, perDataset.at(-1));
    }
    const mean = sum / trials;
    const chance = expected / trials;
    const se = Math.sqrt(variance) / trials;
    assert.ok(
      Math.abs(mean - chance) < 4 * se,
      `random P@1 ${mean.toFixed(4)} vs chance ${chance.toFixed(4)} ± ${se.toFixed(4)}: ${perDataset.join('; ')}`,
    );

    // BEIR: one relevant page among N for each query; a random ranking puts it at each rank with probability 1/N,
    // so E[nDCG@5] = (1/N)·Σ_{r=1..5} 1/log2(r+1).
    const n = world.counts.beir.documents;
    const gains = [1, 2, 3, 4, 5].map((r) => 1 / Math.log2(r + 1));
    const mu = gains.reduce((a, g) => a + g, 0) / n;
    const sd = Math.sqrt(gains.reduce((a, g) => a + g * g, 0) / n - mu * mu);
    let ndcg = 0;
    for (let s = 0; s < seeds; s++) {
      const r = randomEmbedding(2000 + s);
      const m = await beirMetrics(
        A,
        world,
        (_, text) => r({ text, image: null }),
        (_, image) => r({ text: '', image }),
      );
      ndcg += m.ndcg_cut_5!;
    }
    ndcg /= seeds;
    const queries = world.counts.beir.queries * seeds;
    assert.ok(Math.abs(ndcg - mu) < (4 * sd) / Math.sqrt(queries), `random nDCG@5 ${ndcg} vs ${mu}`);
  });
});
