// `moca index build` / `moca index add` / `moca index info` / `moca search`: a vector index over a collection, and
// queries against it.
import path from 'node:path';

import type { Command } from 'commander';

import { Embedder, type EmbedderOptions } from '../embed/index.js';
import {
  BuildInterrupted,
  type BuildReport,
  buildIndex,
  DEFAULT_QUERY_PROMPTS,
  openSource,
  promptsOf,
  QUANTIZATIONS,
  type Quantization,
  queryInput,
  VectorIndex,
} from '../search/index.js';
import { Progress } from '../util/progress.js';
import { oneOf, positiveInt } from './options.js';

interface EmbedderFlags {
  model?: string;
  dtype?: 'float32' | 'bfloat16';
  pooling?: 'mean' | 'last';
  attention?: 'bidirectional' | 'causal';
  maxLength?: number;
  minPixels?: number;
  maxPixels?: number;
  threads?: number;
}

interface BuildFlags extends EmbedderFlags {
  input: string;
  index: string;
  batchSize: number;
  quantization?: Quantization;
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  graphThreads?: number;
  restart?: boolean;
  thumbnails: boolean;
  strict?: boolean;
  errors?: string;
  imagePrompt?: string;
  queryPrompt?: string;
}

interface SearchFlags extends EmbedderFlags {
  index: string;
  image?: string;
  k: number;
  exact?: boolean;
}

function embedderOptions(command: Command): Command {
  return command
    .option('--dtype <dtype>', 'compute dtype', oneOf(['float32', 'bfloat16'] as const))
    .option('--pooling <mode>', 'pooling', oneOf(['mean', 'last'] as const))
    .option('--attention <mode>', 'attention', oneOf(['bidirectional', 'causal'] as const))
    .option('--max-length <n>', 'tokens per input (a cut image is dropped whole)', positiveInt)
    .option('--min-pixels <n>', 'override the image processor minimum pixels', positiveInt)
    .option('--max-pixels <n>', 'override the image processor maximum pixels', positiveInt)
    .option('--threads <n>', 'libtorch intra-op threads', positiveInt);
}

/** How the index's vectors were made, recorded in its manifest so that queries are embedded the same way. */
interface EmbeddingInfo {
  model: string;
  dtype: 'float32' | 'bfloat16';
  pooling: 'mean' | 'last';
  attention: 'bidirectional' | 'causal';
  maxLength: number;
  minPixels?: number;
  maxPixels?: number;
  prompts: { query: string; image: string };
}

function embeddingInfo(flags: EmbedderFlags, recorded: Partial<EmbeddingInfo> = {}): EmbeddingInfo {
  const model = flags.model ?? recorded.model;
  if (model === undefined) throw new Error('--model is required (the index does not record its model)');
  const minPixels = flags.minPixels ?? recorded.minPixels;
  const maxPixels = flags.maxPixels ?? recorded.maxPixels;
  return {
    model: path.resolve(model),
    dtype: flags.dtype ?? recorded.dtype ?? 'float32',
    pooling: flags.pooling ?? recorded.pooling ?? 'mean',
    attention: flags.attention ?? recorded.attention ?? 'bidirectional',
    maxLength: flags.maxLength ?? recorded.maxLength ?? 1280,
    ...(minPixels === undefined ? {} : { minPixels }),
    ...(maxPixels === undefined ? {} : { maxPixels }),
    prompts: recorded.prompts ?? { ...DEFAULT_QUERY_PROMPTS },
  };
}

function loadEmbedder(info: EmbeddingInfo, threads: number | undefined): Promise<Embedder> {
  const options: EmbedderOptions = {
    dtype: info.dtype,
    pooling: info.pooling,
    attention: info.attention,
    maxLength: info.maxLength,
    ...(info.minPixels === undefined ? {} : { minPixels: info.minPixels }),
    ...(info.maxPixels === undefined ? {} : { maxPixels: info.maxPixels }),
    ...(threads === undefined ? {} : { threads }),
  };
  return Embedder.load(info.model, options);
}

function buildCommand(parent: Command, name: 'build' | 'add'): Command {
  const c = parent
    .command(name)
    .description(
      name === 'build'
        ? 'embed a collection (JSON Lines rows or a folder of images) into a new index; resumes an interrupted build'
        : 'embed more rows into an existing index (resumes an interrupted addition)',
    )
    .requiredOption('--input <path>', 'JSON Lines rows (design §3) or a folder of images (e.g. rendered PDF pages)')
    .requiredOption('--index <dir>', 'index folder');
  if (name === 'build') {
    c.requiredOption('--model <dir>', 'model directory (Hugging Face layout)')
      .option(
        '--quantization <q>',
        `vector storage in the graph: ${QUANTIZATIONS.join(', ')}`,
        oneOf(QUANTIZATIONS),
        'f32',
      )
      .option('--connectivity <n>', 'HNSW neighbours per node', positiveInt)
      .option('--expansion-add <n>', 'HNSW candidate list while inserting', positiveInt)
      .option('--expansion-search <n>', 'HNSW candidate list while searching', positiveInt)
      .option('--restart', 'discard an existing index or interrupted build in the folder and start over')
      .option('--query-prompt <text>', 'put before text queries (recorded in the index)', DEFAULT_QUERY_PROMPTS.query)
      .option(
        '--image-prompt <text>',
        "text after each image of a folder's documents and of image queries (recorded in the index)",
        DEFAULT_QUERY_PROMPTS.image,
      );
  } else {
    c.option('--model <dir>', 'model directory (default: the one recorded in the index)');
  }
  embedderOptions(c)
    .option('--batch-size <n>', 'inputs per forward pass', positiveInt, 8)
    .option('--graph-threads <n>', 'threads building the HNSW graph (1: reproducible graph file)', positiveInt)
    .option('--no-thumbnails', 'do not write image previews')
    .option('--strict', 'stop at the first bad row')
    .option('--errors <file>', 'where failed rows are recorded (default: <index>/errors.jsonl)')
    .addHelpText(
      'after',
      [
        '',
        'Progress goes to stderr; each chunk of rows is committed with the position reached, so an interrupted',
        'run (Ctrl-C, kill, crash) continues where it stopped when run again with the same input.',
        '',
        'Examples:',
        name === 'build'
          ? '  $ moca index build --model ./moca-3b --input pages/ --index pages.idx --quantization f16'
          : '  $ moca index add --index pages.idx --input more-rows.jsonl',
        '  $ moca search --index pages.idx "quarterly revenue by region"',
      ].join('\n'),
    )
    .action(async (flags: BuildFlags) => {
      process.exitCode = await runBuild(name, flags);
    });
  return c;
}

async function runBuild(mode: 'build' | 'add', flags: BuildFlags): Promise<number> {
  let info: EmbeddingInfo;
  if (mode === 'build') {
    info = embeddingInfo(flags, {
      prompts: {
        query: flags.queryPrompt ?? DEFAULT_QUERY_PROMPTS.query,
        image: flags.imagePrompt ?? DEFAULT_QUERY_PROMPTS.image,
      },
    });
  } else {
    const existing = VectorIndex.open(flags.index, { readOnly: true });
    const recorded = existing.info as Partial<EmbeddingInfo>;
    existing.close();
    info = embeddingInfo(flags, recorded);
    if (recorded.model !== undefined && path.resolve(recorded.model) !== info.model) {
      process.stderr.write(
        `moca index add: warning: the index was built with ${recorded.model}, adding with ${info.model}\n`,
      );
    }
  }
  const source = await openSource(flags.input, { imagePrompt: info.prompts.image });
  const embedder = await loadEmbedder(info, flags.threads);
  const progress = new Progress(`index ${mode}`, source.total, { unit: 'rows' });
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      process.stderr.write(`moca index ${mode}: ${signal} again, exiting now (committed rows are kept)\n`);
      process.exit(130);
    }
    process.stderr.write(`moca index ${mode}: ${signal}: stopping after the current chunk (send again to exit now)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let report: BuildReport;
  try {
    report = await buildIndex(embedder, source, flags.index, {
      mode,
      batchSize: flags.batchSize,
      ...(flags.quantization === undefined ? {} : { quantization: flags.quantization }),
      ...(flags.connectivity === undefined ? {} : { connectivity: flags.connectivity }),
      ...(flags.expansionAdd === undefined ? {} : { expansionAdd: flags.expansionAdd }),
      ...(flags.expansionSearch === undefined ? {} : { expansionSearch: flags.expansionSearch }),
      ...(flags.graphThreads === undefined ? {} : { threads: flags.graphThreads }),
      ...(flags.errors === undefined ? {} : { errorsFile: flags.errors }),
      restart: flags.restart ?? false,
      thumbnails: flags.thumbnails,
      strict: flags.strict ?? false,
      signal: controller.signal,
      info: { ...info },
      onProgress: (p) => {
        if (p.rows > 0) progress.update(p.rows, p.failed ? `${p.failed} failed` : '', p.rows === p.total);
      },
    });
  } catch (e) {
    if (e instanceof BuildInterrupted) {
      process.stderr.write(`moca index ${mode}: ${e.message}\n`);
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stderr.write(
    `moca index ${mode}: ${report.added} added` +
      (report.resumedAt > 0 ? ` (resumed at row ${report.resumedAt})` : '') +
      `, index ${flags.index} holds ${report.size} vectors` +
      (report.failed ? `; ${report.failed} failed → ${report.errorsFile}` : '') +
      '\n',
  );
  process.stdout.write(JSON.stringify({ index: flags.index, ...report }) + '\n');
  return report.failed > 0 ? 1 : 0;
}

export function registerSearchCommands(program: Command): void {
  const index = program.command('index').description('vector index over a collection: build, add, info');
  buildCommand(index, 'build');
  buildCommand(index, 'add');
  index
    .command('info')
    .description('print an index summary (JSON) on stdout')
    .requiredOption('--index <dir>', 'index folder')
    .action((flags: { index: string }) => {
      const idx = VectorIndex.open(flags.index, { readOnly: true });
      try {
        process.stdout.write(
          JSON.stringify({
            index: flags.index,
            size: idx.size,
            dimensions: idx.dimensions,
            metric: idx.metric,
            quantization: idx.quantization,
            ...idx.settings,
            info: idx.info,
            checkpoint: idx.checkpoint,
          }) + '\n',
        );
      } finally {
        idx.close();
      }
    });

  embedderOptions(
    program
      .command('search')
      .description('search an index with a text and/or image query; prints one JSON line per result, best first')
      .argument('[query]', 'text query')
      .requiredOption('--index <dir>', 'index folder')
      .option('--model <dir>', 'model directory (default: the one recorded in the index)')
      .option('--image <path>', 'image query (with a text query: both, interleaved)')
      .option('-k, --k <n>', 'results', positiveInt, 10)
      .option('--exact', 'brute-force search over the exact vectors instead of the HNSW graph'),
  )
    .addHelpText(
      'after',
      [
        '',
        'Output: {"rank", "id", "score", "metadata", "thumbnail"} per line (thumbnail: a file path or null).',
        '',
        'Examples:',
        '  $ moca search --index pages.idx "a red bicycle leaning on a wall" -k 5',
        '  $ moca search --index pages.idx --image query.jpg',
      ].join('\n'),
    )
    .action(async (query: string | undefined, flags: SearchFlags) => {
      process.exitCode = await runSearch(query, flags);
    });
}

async function runSearch(query: string | undefined, flags: SearchFlags): Promise<number> {
  if ((query === undefined || query.trim() === '') && flags.image === undefined) {
    throw new Error('give a text query, --image PATH, or both');
  }
  const idx = VectorIndex.open(flags.index, { readOnly: true });
  try {
    const info = embeddingInfo(flags, idx.info as Partial<EmbeddingInfo>);
    const embedder = await loadEmbedder(info, flags.threads);
    if (embedder.dimension !== idx.dimensions) {
      throw new Error(
        `the model makes ${embedder.dimension}-d embeddings but the index holds ${idx.dimensions}-d vectors`,
      );
    }
    const input = queryInput(
      {
        ...(query === undefined ? {} : { text: query }),
        ...(flags.image === undefined ? {} : { image: path.resolve(flags.image) }),
      },
      promptsOf(idx.info),
    );
    const [vector] = await embedder.embed([input]);
    const hits = idx.search(vector!, flags.k, { exact: flags.exact ?? false });
    hits.forEach((h, i) => {
      const { thumbnail, ...metadata } = h.metadata;
      const thumb = typeof thumbnail === 'string' ? path.resolve(idx.dir, thumbnail) : null;
      process.stdout.write(
        JSON.stringify({ rank: i + 1, id: h.id, score: h.score, metadata, thumbnail: thumb }) + '\n',
      );
    });
    return 0;
  } finally {
    idx.close();
  }
}
