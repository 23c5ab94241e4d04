// `moca serve`: the HTTP API (OpenAI-compatible embeddings, search), the search page, health and metrics.
import { existsSync, statSync } from 'node:fs';

import { type Command, InvalidArgumentError, Option } from 'commander';

import type { InferenceDtype } from '../models/index.js';
import { MocaServer, SERVE_DEFAULTS } from '../serve/index.js';
import { inferenceDtypeOption, nonNegativeInt, oneOf, positiveInt } from './options.js';

interface ServeCommandOptions {
  model: string;
  index?: string;
  host: string;
  port: number;
  modelName?: string;
  apiKey?: string;
  allowFiles?: string;
  cors?: string[];
  batching: boolean;
  maxBatch: number;
  maxBatchTokens: number;
  maxWaitMs: number;
  maxQueue: number;
  maxQueueMb: number;
  maxBodyMb: number;
  maxInputs: number;
  maxImageMb: number;
  maxImagePixels: number;
  maxLength: number;
  truncate?: boolean;
  timeoutMs: number;
  dtype: InferenceDtype;
  pooling: 'mean' | 'last';
  attention: 'bidirectional' | 'causal';
  minPixels?: number;
  maxPixels?: number;
  threads?: number;
  accessLog?: boolean;
}

const MiB = 1024 * 1024;

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`expected a port 0…65535, got '${value}'`);
  return n;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve embeddings (OpenAI-compatible, with images) and search over an index, with a search page')
    .requiredOption('--model <dir>', 'model directory (Hugging Face layout)')
    .option('--index <dir>', 'index built by `moca index build` (enables /v1/search and the search page)')
    .option('--host <addr>', 'address to listen on', SERVE_DEFAULTS.host)
    .option('--port <n>', 'port (0: any free port)', port, SERVE_DEFAULTS.port)
    .option('--model-name <name>', 'model name in responses (default: the model folder name)')
    .addOption(new Option('--api-key <key>', 'require this key as "Authorization: Bearer KEY"').env('MOCA_API_KEY'))
    .option('--allow-files <dir>', 'accept image file paths, but only inside this folder (default: data: URIs only)')
    .option('--cors <origin...>', "allow these browser origins ('*' for any); CORS is off by default")
    .option('--no-batching', 'one request per forward pass (no dynamic batching across requests)')
    .option('--max-batch <n>', 'inputs per forward pass', positiveInt, SERVE_DEFAULTS.maxBatchInputs)
    .option(
      '--max-batch-tokens <n>',
      'padded tokens per forward pass (longest × inputs)',
      positiveInt,
      SERVE_DEFAULTS.maxBatchTokens,
    )
    .option('--max-wait-ms <n>', 'how long a batch may wait for more inputs', nonNegativeInt, SERVE_DEFAULTS.maxWaitMs)
    .option('--max-queue <n>', 'queued inputs before answering 429', positiveInt, SERVE_DEFAULTS.maxQueueInputs)
    .option(
      '--max-queue-mb <n>',
      'image MiB held by queued inputs before answering 429',
      positiveNumber,
      SERVE_DEFAULTS.maxQueueBytes / MiB,
    )
    .option('--max-body-mb <n>', 'request body limit in MiB', positiveNumber, SERVE_DEFAULTS.maxBodyBytes / MiB)
    .option('--max-inputs <n>', 'inputs per request', positiveInt, SERVE_DEFAULTS.maxInputs)
    .option('--max-image-mb <n>', 'encoded image size limit in MiB', positiveNumber, SERVE_DEFAULTS.maxImageBytes / MiB)
    .option(
      '--max-image-pixels <n>',
      'image pixel limit, checked before decoding',
      positiveInt,
      SERVE_DEFAULTS.maxImagePixels,
    )
    .option('--max-length <n>', 'tokens per input', positiveInt, SERVE_DEFAULTS.maxLength)
    .option('--truncate', 'truncate longer inputs (as moca embed does) instead of answering 413')
    .option(
      '--timeout-ms <n>',
      'per-request wait limit for the model (503 after)',
      nonNegativeInt,
      SERVE_DEFAULTS.timeoutMs,
    )
    .addOption(inferenceDtypeOption())
    .option('--pooling <mode>', 'pooling', oneOf(['mean', 'last'] as const), 'mean')
    .option('--attention <mode>', 'attention', oneOf(['bidirectional', 'causal'] as const), 'bidirectional')
    .option('--min-pixels <n>', 'override the image processor minimum pixels', positiveInt)
    .option('--max-pixels <n>', 'override the image processor maximum pixels', positiveInt)
    .option('--threads <n>', 'libtorch intra-op threads', positiveInt)
    .option('--access-log', 'one line per request on stderr')
    .addHelpText(
      'after',
      [
        '',
        'Endpoints: POST /v1/embeddings, POST /v1/search, GET /v1/index, GET /v1/models, GET /health, GET /metrics,',
        'GET /openapi.json, GET / (search page).',
        '',
        'Examples:',
        '  $ moca serve --model ./moca-3b --index ./photos.idx --port 8080',
        '  $ curl -s localhost:8080/v1/embeddings -H "content-type: application/json" \\',
        '      -d \'{"input": [{"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}},',
        '                               {"type": "text", "text": "What is in the image?"}]}]}\'',
        '',
        'stdout gets one JSON line {"event":"ready","url":…} when the model is loaded; logs go to stderr.',
        'SIGINT/SIGTERM: stop accepting, answer what is queued, exit.',
      ].join('\n'),
    )
    .action(async (opts: ServeCommandOptions) => {
      process.exitCode = await runServe(opts);
    });
}

async function runServe(opts: ServeCommandOptions): Promise<number> {
  if (opts.allowFiles !== undefined && !(existsSync(opts.allowFiles) && statSync(opts.allowFiles).isDirectory())) {
    throw new Error(`--allow-files: not a folder: ${opts.allowFiles}`);
  }
  const log = (line: string): void => {
    process.stderr.write(line + '\n');
  };
  const server = await MocaServer.create({
    modelDir: opts.model,
    indexDir: opts.index ?? null,
    ...(opts.modelName === undefined ? {} : { modelName: opts.modelName }),
    host: opts.host,
    port: opts.port,
    embedder: {
      dtype: opts.dtype,
      pooling: opts.pooling,
      attention: opts.attention,
      maxLength: opts.maxLength,
      ...(opts.minPixels === undefined ? {} : { minPixels: opts.minPixels }),
      ...(opts.maxPixels === undefined ? {} : { maxPixels: opts.maxPixels }),
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    },
    batching: opts.batching,
    maxBatchInputs: opts.maxBatch,
    maxBatchTokens: opts.maxBatchTokens,
    maxWaitMs: opts.maxWaitMs,
    maxQueueInputs: opts.maxQueue,
    maxQueueBytes: Math.round(opts.maxQueueMb * MiB),
    maxBodyBytes: Math.round(opts.maxBodyMb * MiB),
    maxInputs: opts.maxInputs,
    maxImageBytes: Math.round(opts.maxImageMb * MiB),
    maxImagePixels: opts.maxImagePixels,
    truncate: opts.truncate ?? false,
    timeoutMs: opts.timeoutMs,
    allowFilesDir: opts.allowFiles ?? null,
    apiKey: opts.apiKey ?? null,
    corsOrigins: opts.cors ?? [],
    accessLog: opts.accessLog ?? false,
    log,
  });
  const url = await server.listen();
  log(`moca serve: listening on ${url} (loading the model from ${opts.model})`);

  let signals = 0;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log(`moca serve: ${signal} again, exiting now`);
        process.exit(130);
      }
      log(`moca serve: ${signal}: finishing queued requests, then exiting (send again to exit now)`);
      server.close().then(
        () => resolve(0),
        (e: unknown) => {
          log(`moca serve: error while shutting down: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  try {
    await server.ready();
  } catch (e) {
    await server.close().catch(() => undefined);
    if (signals > 0) return stopped; // stopped while loading
    throw e;
  }
  process.stdout.write(JSON.stringify({ event: 'ready', url, model: server.options.modelName }) + '\n');
  const code = await stopped;
  log('moca serve: stopped');
  return code;
}
