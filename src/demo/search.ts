// The demo's index and example searches: the evaluation images (candidates of the text→image retrieval tasks and
// the document pages) embedded with the MoCa model into a usearch HNSW index, then queried with a few of the
// benchmark's own text queries, whose intended image is known — so the report can show whether it came first.
import path from 'node:path';

import { Embedder } from '../embed/index.js';
import { readBeirDataset, VIDORE_PROMPTS } from '../eval/beir.js';
import { readMmebSubset } from '../eval/mmeb.js';
import { discoverBeir, discoverSubsets, readDatasetTable } from '../eval/run.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { buildIndex, type IndexRow, VectorIndex } from '../search/index.js';

export interface DemoSearchHit {
  id: string;
  score: number;
  /** The image file of the hit (for thumbnails). */
  image: string | null;
  /** Whether this is the image the query was written for. */
  relevant: boolean;
}

export interface DemoSearchExample {
  query: string;
  source: string;
  results: DemoSearchHit[];
}

interface DemoQuery {
  text: string;
  source: string;
  relevant: Set<string>;
}

/** Index rows and example queries from the world's evaluation sets. */
async function collect(
  mmebDir: string,
  imageRoot: string,
  beirDir: string,
  queriesPerSet: number,
): Promise<{ rows: IndexRow[]; queries: DemoQuery[] }> {
  const rows = new Map<string, IndexRow>();
  const queries: DemoQuery[] = [];
  const table = readDatasetTable(mmebDir) ?? [];
  const retrieval = new Set(table.filter((d) => d.metaTask === 'retrieval').map((d) => d.name));
  for (const subset of discoverSubsets(mmebDir).filter((s) => retrieval.has(s.name))) {
    let taken = 0;
    for await (const row of readMmebSubset(subset.path, { imageRoot })) {
      // Text queries over image candidates only (the searches a user would type).
      if (row.query.image !== null || row.candidates.some((c) => c.image === null)) break;
      for (const c of row.candidates) {
        const id = path.relative(imageRoot, c.image!);
        if (!rows.has(id))
          rows.set(id, {
            id,
            input: { text: c.text, images: [c.image!] },
            metadata: { image: c.image, set: subset.name },
          });
      }
      if (taken < queriesPerSet) {
        const positive = path.relative(imageRoot, row.candidates[0]!.image!);
        queries.push({ text: row.query.text, source: subset.name, relevant: new Set([positive]) });
        taken++;
      }
    }
  }
  for (const set of discoverBeir(beirDir)) {
    const data = await readBeirDataset(set.path);
    const idOf = new Map<string, string>();
    for (const doc of data.corpus) {
      if (doc.image === null) continue;
      const id = path.relative(imageRoot, doc.image);
      idOf.set(doc.id, id);
      if (!rows.has(id))
        rows.set(id, {
          id,
          input: { text: QWEN_IMAGE_PLACEHOLDER + VIDORE_PROMPTS.imageDocument, images: [doc.image] },
          metadata: { image: doc.image, set: set.name },
        });
    }
    for (const q of data.queries.slice(0, queriesPerSet)) {
      const relevant = new Set(
        [...(data.qrels.get(q.id)?.entries() ?? [])].filter(([, g]) => g > 0).map(([d]) => idOf.get(d) ?? d),
      );
      queries.push({ text: q.text, source: set.name, relevant });
    }
  }
  return { rows: [...rows.values()], queries };
}

export interface DemoIndexOptions {
  modelDir: string;
  mmebDir: string;
  imageRoot: string;
  beirDir: string;
  indexDir: string;
  queriesPerSet?: number;
  k?: number;
  log: (line: string) => void;
}

export async function buildDemoIndex(o: DemoIndexOptions): Promise<{ index: string; examples: DemoSearchExample[] }> {
  const embedder = await Embedder.load(o.modelDir);
  const { rows, queries } = await collect(o.mmebDir, o.imageRoot, o.beirDir, o.queriesPerSet ?? 2);
  // Rebuilt on every run: a few hundred images take seconds, and the model may have changed.
  const report = await buildIndex(embedder, rows, o.indexDir, { batchSize: 16, restart: true });
  o.log(`  index: ${report.size} images in ${o.indexDir}`);
  const index = VectorIndex.open(o.indexDir, { readOnly: true });
  try {
    const vectors = await embedder.embed(queries.map((q) => q.text));
    const examples = queries.map((q, i) => ({
      query: q.text,
      source: q.source,
      results: index.search(vectors[i]!, o.k ?? 5).map((h) => ({
        id: h.id,
        score: h.score,
        image: typeof h.metadata.image === 'string' ? h.metadata.image : null,
        relevant: q.relevant.has(h.id),
      })),
    }));
    return { index: o.indexDir, examples };
  } finally {
    index.close();
  }
}
