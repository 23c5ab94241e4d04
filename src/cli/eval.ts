// `moca eval mmeb` (Precision@1 over the MMEB datasets) and `moca eval compare` (two runs side by side).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { Command } from 'commander';

import { Embedder } from '../embed/index.js';
import type { InferenceDtype } from '../models/index.js';
import { EmbeddingCache, modelKey } from '../eval/cache.js';
import { VIDORE_PROMPTS } from '../eval/beir.js';
import { type TiesPolicy } from '../eval/mmeb.js';
import { runBeirBenchmark, runMmebBenchmark } from '../eval/run.js';
import {
  compareResults,
  type EvalResults,
  renderComparisonMarkdown,
  summarizeMmeb,
  writeResults,
} from '../eval/report.js';
import { ErrorLog } from '../util/output.js';
import { inferenceDtypeOption, oneOf, positiveInt } from './options.js';

interface MmebOptions extends EmbedderFlags {
  data: string;
  imageRoot?: string;
  output: string;
  datasets?: string;
  ties: TiesPolicy;
  batchSize: number;
  cache?: string;
  limit?: number;
  seed: number;
}

export { discoverSubsets } from '../eval/run.js';

/** The embedding options both harnesses take. */
interface EmbedderFlags {
  model: string;
  dtype: InferenceDtype;
  minPixels?: number;
  maxPixels?: number;
  threads?: number;
}

function addEmbedderOptions(cmd: Command): Command {
  return cmd
    .addOption(inferenceDtypeOption())
    .option('--min-pixels <n>', 'image processor minimum pixels (MoCa: 200704)', positiveInt)
    .option('--max-pixels <n>', 'image processor maximum pixels (MoCa: 802816)', positiveInt)
    .option('--threads <n>', 'libtorch intra-op threads', positiveInt);
}

function loadEmbedder(opts: EmbedderFlags): Promise<Embedder> {
  return Embedder.load(opts.model, {
    dtype: opts.dtype,
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    ...(opts.minPixels === undefined ? {} : { minPixels: opts.minPixels }),
    ...(opts.maxPixels === undefined ? {} : { maxPixels: opts.maxPixels }),
  });
}

export function registerEvalCommand(program: Command): void {
  const evalCmd = program.command('eval').description('benchmarks: MMEB (Precision@1), comparisons of runs');
  const mmeb = evalCmd.command('mmeb');
  addEmbedderOptions(mmeb);
  mmeb
    .description('MMEB: Precision@1 per dataset, per meta-task, IND/OOD and overall')
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--data <dir>', 'one sub-folder (Parquet, as the HF MMEB-eval dataset) or .jsonl file per dataset')
    .requiredOption('--output <dir>', 'results.json, results.md, report.html, errors.jsonl')
    .option('--image-root <dir>', 'folder that image paths are relative to (default: --data)')
    .option('--datasets <names>', 'comma-separated subset names (default: all found)')
    .option(
      '--ties <policy>',
      'a score tie with the positive: wrong | reference (counted correct, as MoCa) | random',
      oneOf(['wrong', 'reference', 'random'] as const),
      'wrong',
    )
    .option('--batch-size <n>', 'inputs per forward pass', positiveInt, 16)
    .option('--cache <dir>', 'embedding cache (default: <output>/cache); reused across runs of the same model')
    .option('--limit <n>', 'rows per dataset (quick checks)', positiveInt)
    .option('--seed <n>', 'seed of the random tie policy', positiveInt, 1)
    .addHelpText(
      'after',
      '\nRows: {"qry_text", "qry_img_path", "tgt_text": [...], "tgt_img_path": [...]} with the positive first.\n' +
        'Example:\n  $ moca eval mmeb --model runs/cl/final --data MMEB-eval --image-root eval_images --output eval/mmeb',
    )
    .action(async (opts: MmebOptions) => {
      process.exitCode = await runMmeb(opts);
    });

  const beir = evalCmd.command('beir');
  addEmbedderOptions(beir);
  beir
    .description('BEIR / ViDoRe retrieval: nDCG@k, Recall@k, MRR@k, P@k (trec_eval conventions)')
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--data <dir>', 'a BEIR dataset folder, or a folder of them (corpus, queries, qrels)')
    .requiredOption('--output <dir>', 'results.json, results.md, report.html')
    .option('--split <name>', 'qrels split', 'test')
    .option('--query-prompt <text>', 'prepended to every query (ViDoRe/MoCa: none)', VIDORE_PROMPTS.query)
    .option('--document-prompt <text>', 'text after the image of an image document', VIDORE_PROMPTS.imageDocument)
    .option('--k <list>', 'cut-offs', '5,10')
    .option('--batch-size <n>', 'inputs per forward pass', positiveInt, 8)
    .option('--cache <dir>', 'embedding cache (default: <output>/cache)')
    .addHelpText(
      'after',
      '\nLayout: corpus.jsonl ({"_id", "text"?, "title"?, "image"?}), queries.jsonl ({"_id", "text"}), qrels/test.tsv;\n' +
        'or the Hugging Face ViDoRe layout (corpus/, queries/, qrels/ Parquet). Example:\n' +
        '  $ moca eval beir --model runs/cl/final --data vidore-v2 --output eval/vidore',
    )
    .action(async (opts: BeirOptions) => {
      process.exitCode = await runBeir(opts);
    });

  evalCmd
    .command('compare')
    .description('two result files (or run folders) side by side with deltas, as Markdown on stdout')
    .argument('<a>', 'results.json or a folder containing it')
    .argument('<b>', 'results.json or a folder containing it')
    .action((a: string, b: string) => {
      const load = (p: string): EvalResults => {
        const file = p.endsWith('.json') ? p : path.join(p, 'results.json');
        if (!existsSync(file)) throw new Error(`${file}: not found`);
        return JSON.parse(readFileSync(file, 'utf8')) as EvalResults;
      };
      process.stdout.write(renderComparisonMarkdown(compareResults(load(a), load(b))) + '\n');
    });
}

async function runMmeb(opts: MmebOptions): Promise<number> {
  const embedder = await loadEmbedder(opts);
  const cache = new EmbeddingCache(opts.cache ?? path.join(opts.output, 'cache'), modelKey(opts.model));
  const errors = new ErrorLog(path.join(opts.output, 'errors.jsonl'));
  const results = await runMmebBenchmark(embedder, {
    data: opts.data,
    ...(opts.imageRoot ? { imageRoot: opts.imageRoot } : {}),
    ...(opts.datasets ? { datasets: opts.datasets.split(',').map((s) => s.trim()) } : {}),
    cache,
    ties: opts.ties,
    batchSize: opts.batchSize,
    seed: opts.seed,
    ...(opts.limit ? { limit: opts.limit } : {}),
    model: path.resolve(opts.model),
    errors,
    settings: { dtype: opts.dtype },
  });
  errors.close();
  await writeResults(opts.output, results);
  const summary = summarizeMmeb(results);
  process.stdout.write(
    JSON.stringify({
      results: path.join(opts.output, 'results.json'),
      overall: summary.overall.mean,
      datasets: summary.overall.n,
      failed: results.datasets.filter((d) => d.error !== undefined).length,
      cacheHits: cache.hits,
    }) + '\n',
  );
  return errors.count > 0 ? 1 : 0;
}

interface BeirOptions extends EmbedderFlags {
  data: string;
  output: string;
  split: string;
  queryPrompt: string;
  documentPrompt: string;
  k: string;
  batchSize: number;
  cache?: string;
  threads?: number;
}

async function runBeir(opts: BeirOptions): Promise<number> {
  const ks = opts.k.split(',').map((x) => Number(x.trim()));
  if (!ks.every((k) => Number.isInteger(k) && k > 0))
    throw new Error(`--k: expected positive integers, got '${opts.k}'`);
  const embedder = await loadEmbedder(opts);
  const cache = new EmbeddingCache(opts.cache ?? path.join(opts.output, 'cache'), modelKey(opts.model));
  const errors = new ErrorLog(path.join(opts.output, 'errors.jsonl'));
  const results = await runBeirBenchmark(embedder, {
    data: opts.data,
    split: opts.split,
    prompts: { query: opts.queryPrompt, imageDocument: opts.documentPrompt },
    ks,
    batchSize: opts.batchSize,
    cache,
    model: path.resolve(opts.model),
    errors,
  });
  errors.close();
  await writeResults(opts.output, results);
  process.stdout.write(
    JSON.stringify({
      results: path.join(opts.output, 'results.json'),
      datasets: results.datasets.length,
      cacheHits: cache.hits,
    }) + '\n',
  );
  return errors.count > 0 ? 1 : 0;
}
