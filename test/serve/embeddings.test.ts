// POST /v1/embeddings end to end on a tiny random model: the OpenAI response shape, the same vectors as
// `moca embed`, interleaved inputs, base64, usage, and the server's other endpoints and options.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';

import type { MocaServer } from '../../src/serve/index.js';
import {
  BIN,
  PIXELS,
  PLACEHOLDER,
  dataUri,
  maxAbsDiff,
  metricSum,
  parseMetrics,
  png,
  postJson,
  startServer,
  tempDir,
  tinyModel,
} from './helpers.js';

const tmp = tempDir('moca-serve-emb-');
let model = '';
let server: MocaServer;
let url = '';
let imgA: Buffer; // 56×56 → 4 merged image tokens
let imgB: Buffer; // 112×84 → 12 merged image tokens
const servers: MocaServer[] = [];

before(async () => {
  model = await tinyModel(tmp.dir);
  imgA = await png(56, 56, 1);
  imgB = await png(112, 84, 2);
  ({ server, url } = await startServer({ modelDir: model }));
  servers.push(server);
});

after(async () => {
  for (const s of servers) await s.close();
  tmp.remove();
});

type Embedding = { object: string; index: number; embedding: number[] | string };

function vectors(body: Record<string, unknown>): number[][] {
  return (body.data as Embedding[]).map((d) => d.embedding as number[]);
}

/** Checks a response body against the OpenAI embeddings response schema. */
function assertOpenAiShape(body: Record<string, unknown>, n: number, dim: number, format: 'float' | 'base64'): void {
  assert.deepEqual(Object.keys(body).sort(), ['data', 'model', 'object', 'usage']);
  assert.equal(body.object, 'list');
  assert.equal(typeof body.model, 'string');
  const usage = body.usage as Record<string, unknown>;
  assert.deepEqual(Object.keys(usage).sort(), ['prompt_tokens', 'total_tokens']);
  assert.ok(Number.isInteger(usage.prompt_tokens) && (usage.prompt_tokens as number) > 0);
  assert.equal(usage.total_tokens, usage.prompt_tokens);
  const data = body.data as Embedding[];
  assert.ok(Array.isArray(data));
  assert.equal(data.length, n);
  data.forEach((d, i) => {
    assert.deepEqual(Object.keys(d).sort(), ['embedding', 'index', 'object']);
    assert.equal(d.object, 'embedding');
    assert.equal(d.index, i);
    if (format === 'float') {
      assert.ok(Array.isArray(d.embedding));
      assert.equal(d.embedding.length, dim);
      assert.ok((d.embedding as unknown[]).every((x) => typeof x === 'number' && Number.isFinite(x)));
    } else {
      assert.equal(typeof d.embedding, 'string');
      assert.equal(Buffer.from(d.embedding as string, 'base64').length, dim * 4);
    }
  });
}

describe('POST /v1/embeddings', () => {
  test('answers in the OpenAI shape, in input order, with normalised vectors', async () => {
    const r = await postJson(`${url}/v1/embeddings`, { model: 'anything', input: ['hello', 'world'] });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assertOpenAiShape(r.body, 2, 64, 'float');
    assert.equal(r.body.model, 'model');
    for (const v of vectors(r.body)) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5);
    // A single string is one input; the same text gives the same vector whatever the request around it.
    const one = await postJson(`${url}/v1/embeddings`, { input: 'world' });
    assert.equal(one.status, 200);
    assertOpenAiShape(one.body, 1, 64, 'float');
    assert.ok(maxAbsDiff(vectors(one.body)[0]!, vectors(r.body)[1]!) < 1e-5);
    assert.ok(maxAbsDiff(vectors(r.body)[0]!, vectors(r.body)[1]!) > 1e-3, 'different texts, different vectors');
  });

  test('text and image inputs give the same vectors as `moca embed`', async () => {
    writeFileSync(path.join(tmp.dir, 'a.png'), imgA);
    writeFileSync(path.join(tmp.dir, 'b.png'), imgB);
    const rows = [
      { id: 'text', text: 'A cat and a dog' },
      { id: 'image', content: [{ type: 'image', image: 'a.png' }] },
      {
        id: 'mixed',
        content: [
          { type: 'image', image: 'b.png' },
          { type: 'text', text: '\nWhat is shown?' },
        ],
      },
      { id: 'raw', text: `${PLACEHOLDER} and ${PLACEHOLDER} side by side`, images: ['a.png', 'b.png'] },
    ];
    writeFileSync(path.join(tmp.dir, 'rows.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const cli = spawnSync(
      process.execPath,
      [
        BIN,
        'embed',
        '--model',
        model,
        '--input',
        'rows.jsonl',
        '--output',
        'rows.out.jsonl',
        '--min-pixels',
        String(PIXELS.minPixels),
        '--max-pixels',
        String(PIXELS.maxPixels),
        '--threads',
        '1',
      ],
      { cwd: tmp.dir, encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const expected = readFileSync(path.join(tmp.dir, 'rows.out.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { embedding: number[] }).embedding);

    const r = await postJson(`${url}/v1/embeddings`, {
      input: [
        'A cat and a dog',
        { image: dataUri(imgA) },
        {
          content: [
            { type: 'image_url', image_url: { url: dataUri(imgB) } },
            { type: 'text', text: '\nWhat is shown?' },
          ],
        },
        { text: `${PLACEHOLDER} and ${PLACEHOLDER} side by side`, images: [dataUri(imgA), dataUri(imgB)] },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // One request of these four inputs is one forward pass of the same four sequences as `moca embed`'s batch:
    // the same float32 bits.
    assert.deepEqual(vectors(r.body), expected);
    // One input per request (a batch of one instead of four): equal up to float32 rounding.
    for (const [i, input] of [{ image: dataUri(imgA) }, 'A cat and a dog'].entries()) {
      const single = await postJson(`${url}/v1/embeddings`, { input: [input] });
      assert.ok(maxAbsDiff(vectors(single.body)[0]!, expected[1 - i]!) < 1e-5);
    }
  });

  test('interleaved items: order matters, and every spelling of the same content agrees', async () => {
    const a = dataUri(imgA);
    const r = await postJson(`${url}/v1/embeddings`, {
      input: [
        {
          content: [
            { type: 'image_url', image_url: { url: a } },
            { type: 'text', text: 'caption' },
          ],
        },
        {
          content: [
            { type: 'text', text: 'caption' },
            { type: 'image_url', image_url: { url: a } },
          ],
        },
        {
          content: [
            { type: 'image_url', image_url: a },
            { type: 'text', text: 'caption' },
          ],
        },
        {
          content: [
            { type: 'image', image: a },
            { type: 'text', text: 'cap' },
            { type: 'text', text: 'tion' },
          ],
        },
        { text: `${PLACEHOLDER}caption`, images: [a] },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [imageFirst, textFirst, urlString, typed, raw] = vectors(r.body) as [
      number[],
      number[],
      number[],
      number[],
      number[],
    ];
    assert.ok(maxAbsDiff(imageFirst, textFirst) > 1e-3, 'image-then-text differs from text-then-image');
    for (const same of [urlString, typed, raw]) assert.ok(maxAbsDiff(imageFirst, same) < 1e-5);
  });

  test('base64 encoding round-trips to the float vectors bit for bit', async () => {
    const input = ['round trip', { image: dataUri(imgB) }];
    const f = await postJson(`${url}/v1/embeddings`, { input, encoding_format: 'float' });
    const b = await postJson(`${url}/v1/embeddings`, { input, encoding_format: 'base64' });
    assert.equal(b.status, 200);
    assertOpenAiShape(b.body, 2, 64, 'base64');
    (b.body.data as Embedding[]).forEach((d, i) => {
      const bytes = Buffer.from(d.embedding as string, 'base64');
      const decoded = Array.from({ length: 64 }, (_, j) => bytes.readFloatLE(j * 4));
      const floats = vectors(f.body)[i]!;
      // Batch composition may move the last bits; the decoded floats must be exactly float32 values near them.
      assert.ok(maxAbsDiff(decoded, floats) < 1e-5);
      assert.ok(decoded.every((x) => Math.fround(x) === x));
    });
    // Same request twice in the same shape: identical bits.
    const b2 = await postJson(`${url}/v1/embeddings`, { input: ['round trip'], encoding_format: 'base64' });
    const f2 = await postJson(`${url}/v1/embeddings`, { input: ['round trip'], encoding_format: 'float' });
    const bytes = Buffer.from((b2.body.data as Embedding[])[0]!.embedding as string, 'base64');
    assert.deepEqual(
      Array.from({ length: 64 }, (_, j) => bytes.readFloatLE(j * 4)),
      vectors(f2.body)[0],
    );
  });

  test('usage counts tokens as the model sees them', async () => {
    // Byte-level tokenizer without merges: one token per UTF-8 byte; an image is <vision_start> + its merged
    // patches + <vision_end>: 56×56 → 2×2 merged patches, 112×84 → 4×3.
    const cases: [unknown, number][] = [
      ['hello', 5],
      ['héllo', 6],
      [{ image: dataUri(imgA) }, 1 + 4 + 1],
      [
        {
          content: [
            { type: 'image_url', image_url: { url: dataUri(imgB) } },
            { type: 'text', text: 'abc' },
          ],
        },
        1 + 12 + 1 + 3,
      ],
    ];
    for (const [input, tokens] of cases) {
      const r = await postJson(`${url}/v1/embeddings`, { input: [input] });
      assert.equal(r.status, 200);
      assert.deepEqual(
        r.body.usage,
        { prompt_tokens: tokens, total_tokens: tokens },
        JSON.stringify(input).slice(0, 40),
      );
    }
    const all = await postJson(`${url}/v1/embeddings`, { input: cases.map((c) => c[0]) });
    const total = cases.reduce((s, c) => s + c[1], 0);
    assert.deepEqual(all.body.usage, { prompt_tokens: total, total_tokens: total });
  });

  test('dimensions must match the model', async () => {
    assert.equal((await postJson(`${url}/v1/embeddings`, { input: 'x', dimensions: 64 })).status, 200);
    const r = await postJson(`${url}/v1/embeddings`, { input: 'x', dimensions: 32 });
    assert.equal(r.status, 400);
    assert.equal((r.body.error as { param: string }).param, 'dimensions');
  });
});

describe('server endpoints and options', () => {
  test('health, models, OpenAPI description and Prometheus metrics', async () => {
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok', model: 'model', dimension: 64, index: null });
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.equal(models.data[0]!.id, 'model');
    const spec = (await (await fetch(`${url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    assert.equal(spec.openapi, '3.1.0');
    for (const p of ['/v1/embeddings', '/v1/search', '/health', '/metrics']) assert.ok(p in spec.paths, p);
    const res = await fetch(`${url}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const m = parseMetrics(await res.text());
    assert.ok(metricSum(m, 'moca_http_requests_total', { route: '/v1/embeddings', status: '200' }) >= 5);
    assert.ok(metricSum(m, 'moca_batch_size_count') >= 1);
    assert.ok(metricSum(m, 'moca_embedded_inputs_total', { kind: 'interleaved' }) >= 1);
    assert.equal(metricSum(m, 'moca_model_ready'), 1);
    assert.equal(metricSum(m, 'moca_queue_depth'), 0);
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /No index is loaded/);
  });

  test('an API key is required on /v1/* and /metrics when configured; /health stays open', async () => {
    const { server: s, url: u } = await startServer({ modelDir: model, apiKey: 'sekret' });
    servers.push(s);
    const none = await postJson(`${u}/v1/embeddings`, { input: 'x' });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.match((none.body.error as { message: string }).message, /missing API key/);
    const wrong = await postJson(`${u}/v1/embeddings`, { input: 'x' }, { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    assert.equal((await fetch(`${u}/metrics`)).status, 401);
    assert.equal(
      (await postJson(`${u}/v1/embeddings`, { input: 'x' }, { authorization: 'Bearer sekret' })).status,
      200,
    );
    assert.equal((await postJson(`${u}/v1/embeddings`, { input: 'x' }, { 'x-api-key': 'sekret' })).status, 200);
    assert.equal((await fetch(`${u}/health`)).status, 200);
  });

  test('CORS is off by default and on for configured origins', async () => {
    const plain = await fetch(`${url}/health`, { headers: { origin: 'http://evil.test' } });
    assert.equal(plain.headers.get('access-control-allow-origin'), null);
    assert.equal(
      (await fetch(`${url}/v1/embeddings`, { method: 'OPTIONS', headers: { origin: 'http://evil.test' } })).status,
      404,
    );
    const { server: s, url: u } = await startServer({ modelDir: model, corsOrigins: ['http://app.test'] });
    servers.push(s);
    const ok = await fetch(`${u}/health`, { headers: { origin: 'http://app.test' } });
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://app.test');
    const other = await fetch(`${u}/health`, { headers: { origin: 'http://evil.test' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const pre = await fetch(`${u}/v1/embeddings`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.test', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
  });

  test('--allow-files DIR: paths inside DIR are read, anything outside is refused', async () => {
    const allowed = path.join(tmp.dir, 'allowed');
    mkdirSync(path.join(allowed, 'sub'), { recursive: true });
    writeFileSync(path.join(allowed, 'sub', 'a.png'), imgA);
    writeFileSync(path.join(tmp.dir, 'secret.png'), imgA);
    symlinkSync(path.join(tmp.dir, 'secret.png'), path.join(allowed, 'link.png'));
    const { server: s, url: u } = await startServer({ modelDir: model, allowFilesDir: allowed });
    servers.push(s);
    const viaPath = await postJson(`${u}/v1/embeddings`, {
      input: [{ image: 'sub/a.png' }, { image: path.join(allowed, 'sub', 'a.png') }],
    });
    assert.equal(viaPath.status, 200, JSON.stringify(viaPath.body));
    const viaUri = await postJson(`${u}/v1/embeddings`, { input: [{ image: dataUri(imgA) }] });
    for (const v of vectors(viaPath.body)) assert.ok(maxAbsDiff(v, vectors(viaUri.body)[0]!) < 1e-5);
    for (const outside of ['../secret.png', path.join(tmp.dir, 'secret.png'), 'link.png', '/etc/passwd']) {
      const r = await postJson(`${u}/v1/embeddings`, { input: [{ image: outside }] });
      assert.equal(r.status, 403, outside);
      assert.equal((r.body.error as { param: string }).param, 'input[0].image');
    }
    const missing = await postJson(`${u}/v1/embeddings`, { input: [{ image: 'sub/nope.png' }] });
    assert.equal(missing.status, 400);
    assert.match((missing.body.error as { message: string }).message, /no such file/);
  });

  test('shutdown answers the requests in flight, then refuses connections', async () => {
    const { server: s, url: u } = await startServer({ modelDir: model });
    const pending = Array.from({ length: 12 }, (_, i) =>
      postJson(`${u}/v1/embeddings`, { input: [`request ${i}`, { image: dataUri(imgB) }] }).then(
        (r) => r.status,
        () => 'refused' as const,
      ),
    );
    const t0 = Date.now();
    while (s.metrics.queueDepth.get() + s.metrics.inflight.get() === 0 && Date.now() - t0 < 5000) {
      await new Promise((r) => setTimeout(r, 2));
    }
    const closeStarted = Date.now();
    await s.close();
    assert.ok(Date.now() - closeStarted < 10_000, 'close() does not wait for keep-alive timeouts');
    const statuses = await Promise.all(pending);
    // Every request admitted to the queue before close was answered with its vectors; the rest got an explicit
    // 503 or a refused/reset connection, never silence.
    const admitted = metricSum(parseMetrics(s.metrics.render()), 'moca_embedded_inputs_total') / 2;
    const ok = statuses.filter((x) => x === 200).length;
    assert.ok(ok >= 1, statuses.join(','));
    assert.equal(ok, admitted, statuses.join(','));
    assert.ok(
      statuses.every((x) => x === 200 || x === 503 || x === 'refused'),
      statuses.join(','),
    );
    await assert.rejects(fetch(`${u}/health`));
  });

  test('`moca serve`: a ready line on stdout, then SIGTERM finishes and exits 0', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', '--threads', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const ready = await new Promise<{ event: string; url: string; model: string }>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line) as never));
      child.once('exit', () => reject(new Error(`moca serve exited early: ${stderr}`)));
    });
    assert.equal(ready.event, 'ready');
    assert.equal(ready.model, 'model');
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await postJson(`${ready.url}/v1/embeddings`, { input: 'from the CLI server' });
    assert.equal(r.status, 200);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /listening on http/);
    assert.match(stderr, /SIGTERM: finishing queued requests/);
    assert.match(stderr, /moca serve: stopped/);

    const bad = spawnSync(process.execPath, [BIN, 'serve', '--model', path.join(tmp.dir, 'nowhere')], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^moca: .*nowhere/m);
    assert.equal(bad.stdout, '');
  });

  test('`moca serve --dtype int8` serves int8-weight embeddings close to, not equal to, float32', async () => {
    const text = 'a low precision query';
    const reference = vectors((await postJson(`${url}/v1/embeddings`, { input: text })).body)[0]!;
    const child = spawn(
      process.execPath,
      [BIN, 'serve', '--model', model, '--port', '0', '--threads', '1', '--dtype', 'int8'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line) as never));
        child.once('exit', () => reject(new Error(`moca serve exited early: ${stderr}`)));
      });
      const r = await postJson(`${ready.url}/v1/embeddings`, { input: text });
      assert.equal(r.status, 200);
      const quantised = vectors(r.body)[0]!;
      assert.equal(quantised.length, reference.length);
      const cosine = quantised.reduce((sum, x, i) => sum + x * reference[i]!, 0);
      assert.ok(cosine > 0.99, `cosine to float32 ${cosine}`);
      assert.ok(maxAbsDiff(quantised, reference) > 1e-6, 'int8 weights must change the vector a little');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);

    const bad = spawnSync(process.execPath, [BIN, 'serve', '--model', model, '--dtype', 'float16'], {
      encoding: 'utf8',
    });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--dtype.*expected one of float32, bfloat16, int8, got 'float16'/);
  });
});
