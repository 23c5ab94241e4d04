// `moca serve`: an OpenAI-compatible embeddings API (text, images, interleaved), vector search over an index, a
// search page, health, Prometheus metrics and an OpenAPI description, on fastify. The model runs in a worker thread
// behind a dynamic batcher; every limit answers with an explicit 4xx/429/503 rather than unbounded memory.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

import type { EmbedderOptions } from '../embed/index.js';
import { Qwen2VLImageProcessor } from '../processing/image/index.js';
import { QWEN_IMAGE_PLACEHOLDER } from '../processing/inputs.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { promptsOf, type QueryPrompts } from '../search/query.js';
import { VectorIndex } from '../search/vector-index.js';
import {
  BatcherClosedError,
  DynamicBatcher,
  InputFailedError,
  type Outcome,
  QueueFullError,
  RequestAbortedError,
  RequestTimeoutError,
} from './batcher.js';
import { HttpError } from './errors.js';
import { InferenceWorker, WorkerUnavailableError } from './inference.js';
import { ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { searchPageHtml } from './page.js';
import { InputPreparer, type PreparedInput } from './prepare.js';
import type { WireInput } from './protocol.js';
import { parseEmbeddingsRequest, parseSearchRequest, type RawInput } from './request.js';

export interface ServeOptions {
  modelDir: string;
  /** An index built by `moca index build` over embeddings of this model: enables /v1/search and the page. */
  indexDir?: string | null;
  /** Model name reported in responses (default: the model folder's name). */
  modelName?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  embedder?: Pick<
    EmbedderOptions,
    'dtype' | 'pooling' | 'attention' | 'maxLength' | 'minPixels' | 'maxPixels' | 'threads'
  >;
  /** Group inputs of concurrent requests into one forward pass (default true). */
  batching?: boolean;
  maxBatchInputs?: number;
  maxBatchTokens?: number;
  maxWaitMs?: number;
  maxQueueInputs?: number;
  maxQueueBytes?: number;
  maxBodyBytes?: number;
  maxInputs?: number;
  maxImageBytes?: number;
  maxImagePixels?: number;
  /** Truncate inputs longer than maxLength tokens instead of answering 413. */
  truncate?: boolean;
  /** Per-request limit on the wait for the model, in ms. */
  timeoutMs?: number;
  /** Image paths are accepted only inside this folder; by default they are refused. */
  allowFilesDir?: string | null;
  /** Required as `Authorization: Bearer KEY` (or `X-API-Key`) on /v1/* and /metrics. */
  apiKey?: string | null;
  /** Origins allowed by CORS ('*' for any); none by default (CORS off). */
  corsOrigins?: readonly string[];
  /** Largest k of /v1/search. */
  maxK?: number;
  /** Lifecycle and (with accessLog) request lines; default: nothing. */
  log?: (line: string) => void;
  accessLog?: boolean;
}

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  batching: true,
  maxBatchInputs: 32,
  maxBatchTokens: 16384,
  maxWaitMs: 2,
  maxQueueInputs: 512,
  maxQueueBytes: 256 * 1024 * 1024,
  maxBodyBytes: 32 * 1024 * 1024,
  maxInputs: 128,
  maxImageBytes: 16 * 1024 * 1024,
  maxImagePixels: 4096 * 4096,
  maxLength: 1280,
  truncate: false,
  timeoutMs: 60_000,
  maxK: 100,
} as const;

type Resolved = Required<Omit<ServeOptions, 'indexDir' | 'allowFilesDir' | 'apiKey' | 'log' | 'embedder'>> & {
  indexDir: string | null;
  allowFilesDir: string | null;
  apiKey: string | null;
  log: (line: string) => void;
  embedder: NonNullable<ServeOptions['embedder']>;
};

function resolveOptions(o: ServeOptions): Resolved {
  const r: Resolved = {
    ...SERVE_DEFAULTS,
    modelName: path.basename(path.resolve(o.modelDir)),
    corsOrigins: [],
    accessLog: false,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
    indexDir: o.indexDir ?? null,
    allowFilesDir: o.allowFilesDir ?? null,
    apiKey: o.apiKey ?? null,
    log: o.log ?? (() => undefined),
    embedder: o.embedder ?? {},
  } as unknown as Resolved;
  for (const k of [
    'maxBatchInputs',
    'maxBatchTokens',
    'maxQueueInputs',
    'maxQueueBytes',
    'maxBodyBytes',
    'maxInputs',
    'maxImageBytes',
    'maxImagePixels',
    'maxK',
  ] as const) {
    if (!(Number.isInteger(r[k]) && r[k] >= 1))
      throw new RangeError(`serve: ${k} must be a positive integer, got ${r[k]}`);
  }
  if (!(Number.isFinite(r.maxWaitMs) && r.maxWaitMs >= 0)) throw new RangeError('serve: maxWaitMs must be ≥ 0');
  if (!(Number.isFinite(r.timeoutMs) && r.timeoutMs >= 0)) throw new RangeError('serve: timeoutMs must be ≥ 0');
  if (r.apiKey !== null && r.apiKey.length === 0) throw new RangeError('serve: the API key must not be empty');
  return r;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Errors of the batcher and worker as HTTP errors; `params` names each input of the request. */
function toHttpError(e: unknown, params: readonly string[] = []): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof QueueFullError) {
    return new HttpError(429, e.message, null, 'queue_full', { 'retry-after': String(e.retryAfterS) });
  }
  if (e instanceof RequestTimeoutError) {
    return new HttpError(503, e.message, null, 'timeout', { 'retry-after': String(e.retryAfterS) }, 'timeout_error');
  }
  if (e instanceof BatcherClosedError) {
    return new HttpError(503, e.message, null, 'shutting_down', { 'retry-after': '5' });
  }
  if (e instanceof WorkerUnavailableError) {
    return new HttpError(503, `the model is unavailable: ${e.message}`, null, 'model_unavailable', {
      'retry-after': '5',
    });
  }
  if (e instanceof InputFailedError) {
    const param = params[e.inputIndex] ?? `input[${e.inputIndex}]`;
    return new HttpError(400, `${param}: ${e.reason}`, param, 'invalid_input');
  }
  const fe = e as FastifyError;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const messages: Record<string, string> = {
      FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported Content-Type; send application/json',
      FST_ERR_CTP_BODY_TOO_LARGE: 'the request body is larger than the server accepts',
      FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is empty; send a JSON object',
      FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON',
    };
    const known = fe.code === undefined ? undefined : messages[fe.code];
    const message =
      known ??
      (fe.statusCode === 400 && e instanceof SyntaxError
        ? `the request body is not valid JSON: ${fe.message}`
        : fe.message);
    return new HttpError(fe.statusCode, message, null, fe.code ?? null);
  }
  return new HttpError(500, 'internal server error', null, 'internal_error');
}

function errorReason(err: HttpError): string {
  if (err.code === 'queue_full' || err.code === 'timeout' || err.code === 'shutting_down') return err.code;
  if (err.code === 'model_unavailable' || err.code === 'model_loading') return 'model_unavailable';
  if (err.code === 'invalid_input') return 'inference';
  if (err.code === 'client_gone') return 'client_gone';
  switch (err.status) {
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 413:
      return 'too_large';
    case 415:
      return 'unsupported_media_type';
    case 500:
      return 'internal';
    default:
      return err.status < 500 ? 'invalid' : 'unavailable';
  }
}

/**
 * Differences between how the index's vectors were made (its recorded info) and how this server embeds queries:
 * queries embedded differently from the documents search worse, so they are reported at start-up.
 */
function indexMismatches(info: Readonly<Record<string, unknown>>, o: Resolved): string[] {
  const out: string[] = [];
  if (typeof info.model === 'string' && path.resolve(info.model) !== path.resolve(o.modelDir)) {
    out.push(`the index was built with the model ${info.model}, this server runs ${path.resolve(o.modelDir)}`);
  }
  const defaults: Record<string, unknown> = {
    dtype: 'float32',
    pooling: 'mean',
    attention: 'bidirectional',
    maxLength: SERVE_DEFAULTS.maxLength,
  };
  for (const key of ['dtype', 'pooling', 'attention', 'maxLength', 'minPixels', 'maxPixels'] as const) {
    if (!(key in info)) continue;
    const mine = o.embedder[key] ?? defaults[key];
    if (info[key] !== mine) {
      out.push(
        `the index was built with ${key} ${String(info[key])}, this server uses ${String(mine ?? 'the model default')}`,
      );
    }
  }
  return out;
}

export class MocaServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly options: Resolved;
  private readonly inference: InferenceWorker;
  private readonly batcher: DynamicBatcher<WireInput, Float32Array>;
  private readonly preparer: InputPreparer;
  private readonly index: VectorIndex | null;
  private readonly prompts: QueryPrompts;
  private readyPromise: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private shuttingDown = false;
  private address: string | null = null;

  private constructor(options: Resolved, preparer: InputPreparer, index: VectorIndex | null) {
    this.options = options;
    this.preparer = preparer;
    this.index = index;
    this.prompts = promptsOf(index?.info ?? {});
    const o = options;
    this.inference = new InferenceWorker(
      o.modelDir,
      { ...o.embedder, maxLength: o.embedder.maxLength ?? SERVE_DEFAULTS.maxLength, maxDecodePixels: o.maxImagePixels },
      {
        onReady: (info) =>
          o.log(`moca serve: model ready (dim ${info.dimension}, loaded in ${(info.loadMs / 1000).toFixed(1)} s)`),
        onCrash: (why, restarting) => o.log(`moca serve: ${why}${restarting ? '; restarting it' : '; giving up'}`),
      },
    );
    this.batcher = new DynamicBatcher<WireInput, Float32Array>(
      (inputs) =>
        this.inference
          .embed(inputs)
          .then((outs) => outs.map((x): Outcome<Float32Array> => (x.ok ? { ok: true, value: x.embedding } : x))),
      {
        batching: o.batching,
        maxBatchInputs: o.maxBatchInputs,
        maxBatchTokens: o.maxBatchTokens,
        maxWaitMs: o.maxWaitMs,
        maxQueueInputs: o.maxQueueInputs,
        maxQueueBytes: o.maxQueueBytes,
      },
      (s) => {
        const m = this.metrics;
        m.batches.inc();
        m.batchSize.observe(s.inputs);
        m.batchRequests.observe(s.requests);
        m.batchTokens.observe(s.paddedTokens);
        m.inferenceSeconds.observe(s.ms / 1000);
        for (const w of s.waitedMs) m.queueSeconds.observe(w / 1000);
      },
    );
    this.metrics = new ServerMetrics({
      queueDepth: () => this.batcher.queueDepth,
      queueBytes: () => this.batcher.queueBytes,
      inflight: () => this.batcher.inflight,
      ready: () => (this.inference.ready ? 1 : 0),
    });
    this.app = this.buildApp();
  }

  /** Sets the server up (tokenizer, image processor, index); the model loads in the worker after `listen`. */
  static async create(options: ServeOptions): Promise<MocaServer> {
    const o = resolveOptions(options);
    const tokenizer = Tokenizer.fromDir(o.modelDir);
    const processor = await Qwen2VLImageProcessor.fromDir(o.modelDir, o.embedder);
    const preparer = new InputPreparer(tokenizer, processor, {
      maxInputTokens: o.embedder.maxLength ?? SERVE_DEFAULTS.maxLength,
      truncate: o.truncate,
      maxImageBytes: o.maxImageBytes,
      maxImagePixels: o.maxImagePixels,
      allowFilesDir: o.allowFilesDir,
    });
    let index: VectorIndex | null = null;
    if (o.indexDir !== null) {
      index = VectorIndex.open(o.indexDir, { readOnly: true });
      index.loadGraph();
      for (const warning of indexMismatches(index.info, o)) o.log(`moca serve: warning: ${warning}`);
    }
    return new MocaServer(o, preparer, index);
  }

  /** Resolves when the model is loaded (rejects with the reason it could not be). Starts loading if needed. */
  ready(): Promise<void> {
    this.readyPromise ??= this.inference.start().then(({ dimension }) => {
      const index = this.index;
      if (index !== null && index.dimensions !== dimension) {
        throw new Error(
          `the index ${index.dir} holds ${index.dimensions}-d vectors but the model makes ${dimension}-d embeddings`,
        );
      }
    });
    return this.readyPromise;
  }

  get isReady(): boolean {
    return this.inference.ready;
  }

  /** Listens (loopback by default) and starts loading the model; returns the base URL. */
  async listen(): Promise<string> {
    await this.app.listen({ host: this.options.host, port: this.options.port });
    const addr = this.app.server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : this.options.port;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.address = `http://${host}:${port}`;
    this.ready().catch(() => undefined);
    return this.address;
  }

  get url(): string | null {
    return this.address;
  }

  /**
   * Graceful shutdown: new requests get 503, queued and running requests are answered, then the worker stops.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.shuttingDown = true;
      this.batcher.close();
      await this.app.close();
      await this.batcher.idle();
      await this.inference.terminate();
      this.index?.close();
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------------------------------------ routes

  private buildApp(): FastifyInstance {
    const o = this.options;
    const app = Fastify({
      bodyLimit: o.maxBodyBytes,
      logger: false,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      requestTimeout: Math.max(30_000, o.timeoutMs + 30_000),
    });
    // JSON only: without this, fastify would hand text/plain bodies to the routes as strings.
    app.removeContentTypeParser('text/plain');
    // Our own JSON parser, to say where the JSON is broken; "__proto__" keys are dropped (prototype poisoning).
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      const text = body as string;
      if (text.trim() === '') {
        done(new HttpError(400, 'the request body is empty; send a JSON object', null, 'empty_body'), undefined);
        return;
      }
      try {
        done(
          null,
          JSON.parse(text, (key, value: unknown) => (key === '__proto__' ? undefined : value)),
        );
      } catch (e) {
        done(
          new HttpError(400, `the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'),
          undefined,
        );
      }
    });
    const started = new WeakMap<FastifyRequest, number>();
    const keyDigest = o.apiKey === null ? null : digest(o.apiKey);
    const cors = new Set(o.corsOrigins);

    app.addHook('onRequest', async (request, reply) => {
      started.set(request, performance.now());
      const origin = request.headers.origin;
      if (cors.size > 0 && typeof origin === 'string' && (cors.has('*') || cors.has(origin))) {
        reply.header('access-control-allow-origin', cors.has('*') ? '*' : origin);
        reply.header('vary', 'Origin');
      }
      const url = request.url.split('?')[0]!;
      if (keyDigest !== null && request.method !== 'OPTIONS' && (url.startsWith('/v1/') || url === '/metrics')) {
        const auth = request.headers.authorization;
        const given =
          typeof auth === 'string' && /^bearer /i.test(auth)
            ? auth.slice(7).trim()
            : typeof request.headers['x-api-key'] === 'string'
              ? request.headers['x-api-key']
              : null;
        if (given === null || !timingSafeEqual(digest(given), keyDigest)) {
          throw new HttpError(
            401,
            given === null ? 'missing API key (send Authorization: Bearer KEY)' : 'invalid API key',
            null,
            'invalid_api_key',
            { 'www-authenticate': 'Bearer' },
          );
        }
      }
    });

    // While shutting down, answered connections are closed rather than kept alive, so that close() does not wait
    // for keep-alive timeouts of clients that were served.
    app.addHook('onSend', async (_request, reply, payload) => {
      if (this.shuttingDown) reply.header('connection', 'close');
      return payload;
    });

    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      this.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
      const t0 = started.get(request);
      const seconds = t0 === undefined ? 0 : (performance.now() - t0) / 1000;
      this.metrics.requestSeconds.observe(seconds, { route });
      if (o.accessLog) {
        o.log(`${request.method} ${request.url} ${reply.statusCode} ${(seconds * 1000).toFixed(1)} ms`);
      }
    });

    app.setErrorHandler((error, _request, reply) => {
      let err = toHttpError(error);
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        err = new HttpError(
          413,
          `the request body is larger than the limit of ${o.maxBodyBytes} bytes`,
          null,
          'body_too_large',
        );
      }
      if (err.status >= 500 && err.code === 'internal_error')
        o.log(`moca serve: internal error: ${(error as Error).stack}`);
      this.metrics.errors.inc({ reason: errorReason(err) });
      return this.sendError(reply, err);
    });

    app.setNotFoundHandler((request, reply) => {
      const err = new HttpError(404, `no route ${request.method} ${request.url.split('?')[0]}`, null, 'not_found');
      this.metrics.errors.inc({ reason: 'not_found' });
      return this.sendError(reply, err);
    });

    if (cors.size > 0) {
      app.options('/*', async (request, reply) => {
        const origin = request.headers.origin;
        if (typeof origin === 'string' && (cors.has('*') || cors.has(origin))) {
          reply.header('access-control-allow-methods', 'GET, POST, OPTIONS');
          reply.header('access-control-allow-headers', 'Content-Type, Authorization, X-API-Key');
          reply.header('access-control-max-age', '600');
        }
        return reply.code(204).send();
      });
    }

    app.get('/', async (_request, reply) => {
      reply.header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
      );
      reply.type('text/html; charset=utf-8');
      return searchPageHtml({
        modelName: o.modelName,
        hasIndex: this.index !== null,
        apiKeyRequired: o.apiKey !== null,
      });
    });

    app.get('/health', async (_request, reply) => {
      const body = {
        status: this.inference.ready ? 'ok' : 'loading',
        model: o.modelName,
        dimension: this.inference.dimension,
        index: this.indexSummary(),
      };
      if (!this.inference.ready) reply.code(503).header('retry-after', '2');
      return body;
    });

    app.get('/metrics', async (_request, reply) => {
      reply.type('text/plain; version=0.0.4; charset=utf-8');
      return this.metrics.render();
    });

    app.get('/openapi.json', async () => openApiDocument({ modelName: o.modelName, limits: o }));

    app.get('/v1/models', async () => ({
      object: 'list',
      data: [{ id: o.modelName, object: 'model', created: 0, owned_by: 'moca-ts' }],
    }));

    app.get('/v1/index', async () => {
      const summary = this.indexSummary();
      if (summary === null) throw this.noIndex();
      return summary;
    });

    app.post('/v1/embeddings', async (request, reply) => {
      this.assertReady();
      const req = parseEmbeddingsRequest(request.body, { maxInputs: o.maxInputs });
      if (req.dimensions !== null && req.dimensions !== this.inference.dimension) {
        throw new HttpError(
          400,
          `dimensions: this model makes ${this.inference.dimension}-d embeddings; got ${req.dimensions}`,
          'dimensions',
          'invalid_value',
        );
      }
      const prepared = await this.prepareAll(req.inputs);
      const vectors = await this.embedPrepared(prepared, req.inputs, request, reply);
      const tokens = prepared.reduce((s, p) => s + p.tokens, 0);
      return {
        object: 'list',
        data: vectors.map((v, index) => ({
          object: 'embedding',
          index,
          embedding:
            req.encodingFormat === 'base64'
              ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
              : Array.from(v),
        })),
        model: o.modelName,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    });

    app.post('/v1/search', async (request, reply) => {
      const index = this.index;
      if (index === null) throw this.noIndex();
      this.assertReady();
      const req = parseSearchRequest(request.body, { maxK: o.maxK });
      const raw = this.queryRawInput(req.text, req.image);
      const prepared = await this.prepareAll([raw]);
      const vectors = await this.embedPrepared(prepared, [raw], request, reply);
      const hits = index.search(vectors[0]!, req.k);
      return {
        object: 'list',
        data: hits.map((h, rank) => {
          const { thumbnail, ...metadata } = h.metadata;
          const out: Record<string, unknown> = {
            object: 'search_result',
            rank: rank + 1,
            id: h.id,
            score: h.score,
            metadata,
          };
          if (req.thumbnails) out.thumbnail = this.thumbnailDataUri(thumbnail);
          return out;
        }),
        model: o.modelName,
        usage: { prompt_tokens: prepared[0]!.tokens, total_tokens: prepared[0]!.tokens },
      };
    });
    return app;
  }

  private sendError(reply: FastifyReply, err: HttpError): FastifyReply {
    for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
    return reply.code(err.status).type('application/json; charset=utf-8').send(err.body());
  }

  private assertReady(): void {
    if (!this.inference.ready) {
      throw new HttpError(503, 'the model is loading; retry shortly', null, 'model_loading', { 'retry-after': '2' });
    }
  }

  private noIndex(): HttpError {
    return new HttpError(404, 'no index is loaded (start the server with --index DIR)', null, 'no_index');
  }

  private indexSummary(): Record<string, unknown> | null {
    const index = this.index;
    if (index === null) return null;
    return {
      size: index.size,
      dimensions: index.dimensions,
      metric: index.metric,
      quantization: index.quantization,
      prompts: this.prompts,
      model: index.info.model ?? null,
    };
  }

  /** A search query as an input, embedded the way the index's documents expect (its recorded prompts). */
  private queryRawInput(text: string | null, image: RawInput['images'][number] | null): RawInput {
    if (image === null) return { param: 'query', text: this.prompts.query + text!, images: [], kind: 'text' };
    const after = text === null ? this.prompts.image : this.prompts.query + text;
    return { param: 'image', text: QWEN_IMAGE_PLACEHOLDER + after, images: [image], kind: 'interleaved' };
  }

  /** Prepares every input; on failure reports the first bad input in request order. */
  private async prepareAll(inputs: readonly RawInput[]): Promise<PreparedInput[]> {
    const settled = await Promise.allSettled(inputs.map((x) => this.preparer.prepare(x)));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    return settled.map((s) => (s as PromiseFulfilledResult<PreparedInput>).value);
  }

  /** Queues prepared inputs and waits for their vectors. */
  private async embedPrepared(
    prepared: readonly PreparedInput[],
    inputs: readonly RawInput[],
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<Float32Array[]> {
    const abort = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    request.raw.socket?.once('close', onClose);
    try {
      const vectors = await this.batcher.submit(
        prepared.map((p) => ({ input: p.wire, cost: p.tokens, bytes: p.bytes })),
        { timeoutMs: this.options.timeoutMs, signal: abort.signal },
      );
      for (const p of prepared) {
        this.metrics.inputs.inc({ kind: p.kind });
        this.metrics.tokens.inc({}, p.tokens);
      }
      return vectors;
    } catch (e) {
      if (e instanceof RequestAbortedError) {
        // Nobody reads this answer (nginx's 499 "client closed request"); it is counted, not sent.
        throw new HttpError(499, 'the client closed the request', null, 'client_gone');
      }
      throw toHttpError(
        e,
        inputs.map((x) => x.param.replace(/\.(text|content|image)$/, '')),
      );
    } finally {
      request.raw.socket?.removeListener('close', onClose);
    }
  }

  private thumbnailDataUri(rel: unknown): string | null {
    const index = this.index;
    if (index === null || typeof rel !== 'string' || !/^thumbs\/\d+\.jpg$/.test(rel)) return null;
    try {
      return `data:image/jpeg;base64,${readFileSync(path.join(index.dir, rel)).toString('base64')}`;
    } catch {
      return null;
    }
  }
}
