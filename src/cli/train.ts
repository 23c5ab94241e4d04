// `moca train cpt`: MoCa stage 1 (modality-aware continual pre-training) from the command line.
import path from 'node:path';
import { Writable } from 'node:stream';

import { type Command, Option } from 'commander';

import { MixedCorpus, TokenBudgetBatcher, parseSourceSpec } from '../data/index.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { distributed } from '../torch/index.js';
import { CPT_DEFAULTS as OBJECTIVE_DEFAULTS } from '../train/cpt/objective.js';
import { CptTask } from '../train/cpt/task.js';
import { ClTask } from '../train/cl/task.js';
import { CL_DEFAULTS, CPT_DEFAULTS, train, type TrainerConfig } from '../train/trainer.js';
import { Progress } from '../util/progress.js';
import { launchWorkers } from './launch.js';
import { nonNegativeInt, oneOf, positiveInt } from './options.js';

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`expected a positive number, got '${value}'`);
  return n;
}

function probability(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`expected a probability in [0, 1], got '${value}'`);
  return n;
}

interface CptCommandOptions extends SharedTrainOptions {
  model: string;
  data: string[];
  mlmProb: number;
  maeProb: number;
  maeWeight: number;
  mlm: boolean;
  mae: boolean;
  tokensPerBatch: number;
  bufferSize: number;
  resumeData: boolean;
}

/** Options both stages share (trainer, precision, data hygiene, image limits). */
interface SharedTrainOptions {
  output: string;
  lr: number;
  warmupRatio: number;
  schedule: 'linear' | 'cosine' | 'constant';
  maxGradNorm: number;
  gradAccumulation: number;
  maxLength: number;
  epochs: number;
  maxSteps?: number;
  saveEvery: number;
  keepCheckpoints: number;
  logEvery: number;
  seed: number;
  resume?: string | boolean;
  overwrite?: boolean;
  dtype: 'float32' | 'bfloat16';
  autocast?: 'bfloat16';
  threads?: number;
  strict?: boolean;
  minPixels?: number;
  maxPixels?: number;
  nprocPerNode?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  distTimeout: number;
}

type StageDefaults = typeof CPT_DEFAULTS | typeof CL_DEFAULTS;

function addSharedTrainOptions(cmd: Command, d: StageDefaults, unit: string): Command {
  return cmd
    .option('--lr <lr>', 'peak learning rate', positiveNumber, d.lr)
    .option('--warmup-ratio <r>', 'linear warmup as a fraction of the steps', probability, d.warmupRatio)
    .addOption(
      new Option('--schedule <kind>', 'decay after warmup')
        .choices(['linear', 'cosine', 'constant'])
        .default(d.schedule),
    )
    .option('--max-grad-norm <n>', 'gradient clipping', positiveNumber, d.maxGradNorm)
    .option('--grad-accumulation <n>', `${unit} per optimizer step`, positiveInt, d.gradAccumulation)
    .option('--max-length <n>', 'tokens per input (cut images dropped whole)', positiveInt, 1280)
    .option('--epochs <n>', 'passes over the data', positiveInt, 1)
    .option('--max-steps <n>', 'optimizer steps (default: the epochs)', positiveInt)
    .option('--save-every <n>', 'checkpoint every n steps', nonNegativeInt, 200)
    .option('--keep-checkpoints <n>', 'newest checkpoints kept (0: all)', nonNegativeInt, 3)
    .option('--log-every <n>', 'progress line every n steps', positiveInt, 1)
    .option('--seed <n>', 'seed (sampling, masks, shuffling)', nonNegativeInt, 0)
    .option('--resume [checkpoint]', 'continue from the latest checkpoint in --output, or from the given one')
    .option('--overwrite', 'replace an earlier run in --output')
    .option('--dtype <dtype>', 'parameter dtype', oneOf(['float32', 'bfloat16'] as const), 'float32')
    .option(
      '--autocast <dtype>',
      'mixed precision: forward in bfloat16 with float32 weights',
      oneOf(['bfloat16'] as const),
    )
    .option('--threads <n>', 'libtorch intra-op threads', positiveInt)
    .option('--strict', 'stop at the first bad row instead of recording it')
    .option('--min-pixels <n>', 'image processor minimum pixels (MoCa: 200704)', positiveInt)
    .option('--max-pixels <n>', 'image processor maximum pixels (MoCa: 802816)', positiveInt)
    .option('--nproc-per-node <n>', 'data parallel: start n worker processes on this machine', positiveInt)
    .option('--nnodes <n>', 'data parallel: machines in the job', positiveInt, 1)
    .option('--node-rank <r>', 'data parallel: index of this machine (0 … nnodes−1)', nonNegativeInt, 0)
    .option('--master-addr <host>', "data parallel: rank 0's machine, reachable from all (rendezvous)", '127.0.0.1')
    .option('--master-port <port>', 'data parallel: rendezvous TCP port on the master', positiveInt, 29500)
    .option('--dist-timeout <s>', 'data parallel: seconds before a silent peer fails the job', positiveInt, 1800);
}

/**
 * Runs a training stage as what this process is: the launcher of --nproc-per-node workers, one worker of a
 * data-parallel job (RANK / WORLD_SIZE set by our launcher or torchrun: joins the process group first), or a
 * single process.
 */
async function runAs(opts: SharedTrainOptions, stage: () => Promise<number>): Promise<number> {
  const env = distributed.distributedEnv();
  if (opts.nprocPerNode !== undefined || opts.nnodes > 1) {
    if (env !== null) {
      throw new Error(
        '--nproc-per-node / --nnodes start worker processes, but RANK and WORLD_SIZE are already set ' +
          '(started by a launcher such as torchrun?): drop those flags',
      );
    }
    return launchWorkers(
      process.argv.slice(1),
      {
        nprocPerNode: opts.nprocPerNode ?? 1,
        nnodes: opts.nnodes,
        nodeRank: opts.nodeRank,
        masterAddr: opts.masterAddr,
        masterPort: opts.masterPort,
      },
      opts.threads,
    );
  }
  if (env === null || env.worldSize === 1) return stage();

  // A worker. If our launcher dies, stop as on SIGTERM (finish the step, checkpoint).
  if (process.channel) {
    process.channel.unref();
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  const where = `[rank ${env.rank}/${env.worldSize}]`;
  try {
    await distributed.initProcessGroup({ backend: 'gloo', timeoutMs: opts.distTimeout * 1000 });
  } catch (e) {
    throw new Error(`${where} ${(e as Error).message}`);
  }
  try {
    const status = await stage();
    distributed.destroyProcessGroup();
    return status;
  } catch (e) {
    // Do not wait for the backend's threads: a collective stuck on a dead peer would hold the exit.
    distributed.destroyProcessGroup(undefined, { abort: true });
    throw new Error(`${where} ${(e as Error).message}`);
  }
}

function trainerConfig(opts: SharedTrainOptions, d: StageDefaults, totalSteps: number): TrainerConfig {
  return {
    ...d,
    outputDir: opts.output,
    lr: opts.lr,
    warmupRatio: opts.warmupRatio,
    schedule: opts.schedule,
    maxGradNorm: opts.maxGradNorm,
    gradAccumulation: opts.gradAccumulation,
    totalSteps,
    saveEvery: opts.saveEvery,
    keepCheckpoints: opts.keepCheckpoints,
    logEvery: opts.logEvery,
    seed: opts.seed,
    resume: opts.resume === undefined ? false : opts.resume,
    ...(opts.overwrite ? { overwrite: true } : {}),
  };
}

/** Task options both stages take from the shared flags. */
function sharedTaskOptions(opts: SharedTrainOptions) {
  return {
    maxLength: opts.maxLength,
    epochs: opts.epochs,
    seed: opts.seed,
    dtype: opts.dtype,
    ...(opts.strict ? { strict: true } : {}),
    ...(opts.autocast ? { autocast: opts.autocast } : {}),
    ...(opts.minPixels === undefined ? {} : { minPixels: opts.minPixels }),
    ...(opts.maxPixels === undefined ? {} : { maxPixels: opts.maxPixels }),
  };
}

async function applyThreads(threads: number | undefined): Promise<void> {
  if (threads === undefined) return;
  const { setNumThreads } = await import('../torch/index.js');
  setNumThreads(threads);
}

/** This process's rank in a data-parallel job (0 otherwise). */
function rank(): number {
  return distributed.dataParallelGroup()?.rank ?? 0;
}

/** Bad rows of rank 0 go to errors.jsonl, those of rank r > 0 to errors.rank-<r>.jsonl. */
function errorsFile(output: string, defaultPath: string): string {
  return rank() === 0 ? defaultPath : path.join(output, `errors.rank-${rank()}.jsonl`);
}

function reportDone(
  stage: string,
  result: Awaited<ReturnType<typeof train>>,
  totalSteps: number,
  bad: number,
  errors: string,
): number {
  if (rank() === 0)
    console.error(
      `moca train ${stage}: ${result.status} at step ${result.step}/${totalSteps}` +
        (result.exportDir ? `; model → ${result.exportDir}` : '') +
        `; report → ${path.relative(process.cwd(), result.report) || result.report}` +
        (bad ? `; ${bad} bad rows → ${errors}` : ''),
    );
  return result.status === 'interrupted' ? 130 : 0;
}

export function registerTrainCommand(program: Command): void {
  const trainCmd = program.command('train').description('train MoCa: stage 1 (cpt) and stage 2 (cl)');
  const cpt = trainCmd.command('cpt');
  addSharedTrainOptions(cpt, CPT_DEFAULTS, 'micro-batches');
  cpt
    .description('stage 1: modality-aware continual pre-training (joint MLM + MAE, bidirectional attention)')
    .requiredOption('--model <dir>', 'starting checkpoint (Hugging Face layout; a causal VLM or a MoCa model)')
    .requiredOption(
      '--data <source...>',
      'interleaved documents: JSONL or Parquet files/directories, as path, name=path or name=path@weight',
    )
    .requiredOption('--output <dir>', 'run directory (metrics, report, checkpoints, final model)')
    .option('--mlm-prob <p>', 'probability a text token is masked', probability, OBJECTIVE_DEFAULTS.mlmProb)
    .option('--mae-prob <p>', 'probability a merged image token is masked', probability, OBJECTIVE_DEFAULTS.maeProb)
    .option('--mae-weight <w>', 'weight of the MAE loss', positiveNumber, OBJECTIVE_DEFAULTS.maeWeight)
    .option('--no-mlm', 'ablation: MAE only')
    .option('--no-mae', 'ablation: MLM only')
    .option('--tokens-per-batch <n>', 'equivalent-token budget of a micro-batch', positiveInt, 12800)
    .option('--buffer-size <n>', 'shuffle buffer (documents)', nonNegativeInt, 2048)
    .option('--no-resume-data', 'on resume, start the data from its beginning (continual training on new data)')
    .addHelpText(
      'after',
      [
        '',
        'Documents: {"text": "… <|vision_start|><|image_pad|><|vision_end|> …", "images": ["a.png"]} per JSONL line,',
        'or Parquet with a `text` column and an `images` list of encoded images (Hugging Face datasets layout).',
        '',
        'Example:',
        '  $ moca train cpt --model ./qwen25vl --data web=docs.jsonl@3 pairs=pairs.parquet@1 --output runs/cpt \\',
        '      --lr 2e-6 --grad-accumulation 4 --save-every 200',
        '',
        'Outputs: <output>/metrics.jsonl, report.html (loss curves), checkpoints/step-N (resumable),',
        'final/ (a bidirectional embedding model for `moca embed`), errors.jsonl (bad rows).',
      ].join('\n'),
    )
    .action(async (opts: CptCommandOptions) => {
      process.exitCode = await runAs(opts, () => runCpt(opts));
    });

  const cl = trainCmd.command('cl');
  addSharedTrainOptions(cl, CL_DEFAULTS, 'batches');
  cl.description('stage 2: heterogeneous contrastive fine-tuning (InfoNCE with in-batch and hard negatives)')
    .requiredOption('--model <dir>', 'starting checkpoint (a stage-1 output, or any Qwen2.5-VL in HF layout)')
    .requiredOption(
      '--data <subset...>',
      'pair subsets as NAME=PATH[@WEIGHT][#CAP] (JSONL or Parquet; MMEB-train columns or query/positive/negatives)',
    )
    .requiredOption('--output <dir>', 'run directory (metrics, report, checkpoints, final model)')
    .option('--batch-size <n>', 'pairs per batch (per process under data parallelism)', positiveInt, 24)
    .option('--hard-negatives <n>', 'hard negatives per query (0: in-batch only)', nonNegativeInt, 2)
    .option('--temperature <t>', 'InfoNCE temperature', positiveNumber, 0.03)
    .option('--symmetric', 'add the target→query term')
    .option('--shared-negatives', 'score every query against all hard negatives of the batch, not only its own')
    .option('--grad-cache', 'GradCache: large batches in bounded memory (re-runs the forward in chunks)')
    .option('--chunk-size <n>', 'GradCache rows per forward', positiveInt, 8)
    .addOption(
      new Option(
        '--batching <mode>',
        'task: one subset per batch (the paper); mixed: global shuffle (the reference code)',
      )
        .choices(['task', 'mixed'])
        .default('task'),
    )
    .option('--max-samples-per-subset <n>', 'row cap for subsets without #CAP (MoCa: 50000)', positiveInt)
    .addHelpText(
      'after',
      [
        '',
        'Rows: MMEB-train / MoCa-CL-Pairs columns (qry, qry_image_path, pos_text, pos_image_path, neg_text, neg_image_path;',
        "negatives may be Python list literals such as \"['a', 'b']\"), or text pairs {query, positive, negatives}.",
        '',
        'Example:',
        '  $ moca train cl --model runs/cpt/final --data vqa=vqa.jsonl cls=cls.parquet#50000 --output runs/cl \\',
        '      --batch-size 64 --grad-cache --chunk-size 16',
      ].join('\n'),
    )
    .action(async (opts: ClCommandOptions) => {
      process.exitCode = await runAs(opts, () => runCl(opts));
    });
}

interface ClCommandOptions extends SharedTrainOptions {
  model: string;
  data: string[];
  batchSize: number;
  hardNegatives: number;
  temperature: number;
  symmetric?: boolean;
  sharedNegatives?: boolean;
  gradCache?: boolean;
  chunkSize: number;
  batching: 'task' | 'mixed';
  maxSamplesPerSubset?: number;
}

async function runCl(opts: ClCommandOptions): Promise<number> {
  await applyThreads(opts.threads);
  const errors = errorsFile(opts.output, ClTask.errorsPath(opts.output));
  const task = await ClTask.create({
    ...sharedTaskOptions(opts),
    modelDir: opts.model,
    subsets: opts.data,
    batchSize: opts.batchSize,
    hardNegatives: opts.hardNegatives,
    batching: opts.batching,
    loss: {
      temperature: opts.temperature,
      ...(opts.symmetric ? { symmetric: true } : {}),
      ...(opts.sharedNegatives ? { sharedNegatives: true } : {}),
    },
    gradCacheChunk: opts.gradCache ? opts.chunkSize : null,
    errorsFile: errors,
    ...(opts.maxSamplesPerSubset === undefined ? {} : { maxSamplesPerSubset: opts.maxSamplesPerSubset }),
  });
  const totalSteps = opts.maxSteps ?? task.stepsFor(opts.epochs, opts.gradAccumulation);
  try {
    const result = await train(task, trainerConfig(opts, CL_DEFAULTS, totalSteps), {
      label: 'cl',
      reportTitle: 'MoCa stage 2 (contrastive fine-tuning)',
    });
    return reportDone('cl', result, totalSteps, task.errorCount(), errors);
  } finally {
    task.close();
  }
}

async function planSteps(opts: CptCommandOptions): Promise<number> {
  // One pass over the data (text tokens and image headers only) to count micro-batches, so that warmup and
  // decay span the run as in the reference (whose epoch length is known up front).
  const tokenizer = Tokenizer.fromDir(opts.model);
  const corpus = new MixedCorpus(opts.data.map(parseSourceSpec), {
    seed: opts.seed,
    epochs: opts.epochs,
    errors: { record: () => undefined },
  });
  const batcher = new TokenBudgetBatcher(corpus, {
    tokenizer,
    tokensPerBatch: opts.tokensPerBatch,
    maxLength: opts.maxLength,
    bufferSize: opts.bufferSize,
    seed: opts.seed,
    imageCheck: 'header',
  });
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const progress = new Progress('counting batches', undefined, {
    unit: 'batches',
    ...(rank() === 0 ? {} : { stream: silent }),
  });
  let micro = 0;
  for await (const _ of batcher) {
    micro++;
    progress.update(micro);
  }
  corpus.close();
  // Under data parallelism every rank consumes gradAccumulation micro-batches of the same stream per step.
  const ranks = distributed.dataParallelGroup()?.size ?? 1;
  return Math.max(1, Math.ceil(micro / (opts.gradAccumulation * ranks)));
}

async function runCpt(opts: CptCommandOptions): Promise<number> {
  if (!opts.mlm && !opts.mae) throw new Error('--no-mlm and --no-mae together leave nothing to train');
  await applyThreads(opts.threads);
  const totalSteps = opts.maxSteps ?? (await planSteps(opts));
  const errors = errorsFile(opts.output, CptTask.errorsPath(opts.output));
  const task = await CptTask.create({
    ...sharedTaskOptions(opts),
    modelDir: opts.model,
    sources: opts.data.map(parseSourceSpec),
    objective: {
      mlmProb: opts.mlmProb,
      maeProb: opts.maeProb,
      maeWeight: opts.maeWeight,
      useMlm: opts.mlm,
      useMae: opts.mae,
    },
    tokensPerBatch: opts.tokensPerBatch,
    bufferSize: opts.bufferSize,
    errorsFile: errors,
  });
  try {
    const config = { ...trainerConfig(opts, CPT_DEFAULTS, totalSteps), resumeData: opts.resumeData };
    const result = await train(task, config, { label: 'cpt', reportTitle: 'MoCa stage 1 (continual pre-training)' });
    return reportDone('cpt', result, totalSteps, task.errorCount(), errors);
  } finally {
    task.close();
  }
}
