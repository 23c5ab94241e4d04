// The bad-input matrix: each malformed or abusive request gets the right 4xx (or 429) with a message that names the
// field, and the server stays up and keeps answering good requests.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import sharp from 'sharp';

import type { MocaServer } from '../../src/serve/index.js';
import {
  PLACEHOLDER,
  dataUri,
  metricSum,
  parseMetrics,
  png,
  postJson,
  startServer,
  tempDir,
  tinyModel,
} from './helpers.js';

const tmp = tempDir('moca-serve-bad-');
let server: MocaServer;
let url = '';

const LIMITS = {
  maxInputs: 8,
  maxImageBytes: 256 * 1024,
  maxBodyBytes: 1024 * 1024,
  maxQueueInputs: 4,
  maxImagePixels: 4096 * 4096,
} as const;

interface Case {
  name: string;
  /** A JSON value, or a raw string body. */
  body: unknown;
  contentType?: string;
  path?: string;
  status: number;
  param: string | null;
  message: RegExp;
  headers?: Record<string, RegExp>;
}

let cases: Case[] = [];

before(async () => {
  const model = await tinyModel(tmp.dir);
  ({ server, url } = await startServer({ modelDir: model, ...LIMITS }));
  const good = dataUri(await png(56, 56, 1));
  // Noise does not compress: a PNG over the byte limit.
  const noise = Buffer.alloc(320 * 320 * 3);
  let x = 2463534242;
  for (let i = 0; i < noise.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    noise[i] = x & 255;
  }
  const big = await sharp(noise, { raw: { width: 320, height: 320, channels: 3 } })
    .png()
    .toBuffer();
  assert.ok(big.length > LIMITS.maxImageBytes);
  // A decompression bomb: 36 M pixels in a small file.
  const bomb = await sharp({ create: { width: 6000, height: 6000, channels: 3, background: '#808080' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  assert.ok(bomb.length < LIMITS.maxImageBytes);
  const truncated = (await png(112, 84, 5)).subarray(0, 200);

  cases = [
    { name: 'malformed JSON', body: '{"input": [', status: 400, param: null, message: /not valid JSON/ },
    {
      name: 'not JSON at all',
      body: 'input=hello',
      contentType: 'text/plain',
      status: 415,
      param: null,
      message: /Content-Type/,
    },
    { name: 'empty body', body: '', status: 400, param: null, message: /empty/ },
    { name: 'body is not an object', body: [1, 2], status: 400, param: null, message: /must be a JSON object/ },
    { name: 'input missing', body: { model: 'm' }, status: 400, param: 'input', message: /input: is required/ },
    { name: 'input of the wrong type', body: { input: 42 }, status: 400, param: 'input', message: /must be a string/ },
    {
      name: 'wrong item type',
      body: { input: ['ok', 7] },
      status: 400,
      param: 'input[1]',
      message: /^input\[1\]: .*got a number/,
    },
    {
      name: 'token ids',
      body: { input: [1, 2, 3] },
      status: 400,
      param: 'input',
      message: /token-id inputs are not supported/,
    },
    { name: 'empty input list', body: { input: [] }, status: 400, param: 'input', message: /must not be empty/ },
    { name: 'empty string', body: { input: [''] }, status: 400, param: 'input[0]', message: /empty string/ },
    {
      name: 'empty content',
      body: { input: [{ content: [] }] },
      status: 400,
      param: 'input[0].content',
      message: /must not be empty/,
    },
    {
      name: 'unknown content item type',
      body: { input: [{ content: [{ type: 'video', video: 'x' }] }] },
      status: 400,
      param: 'input[0].content[0].type',
      message: /must be "text", "image_url" or "image", got "video"/,
    },
    {
      name: 'image_url without url',
      body: {
        input: [
          {
            content: [
              { type: 'text', text: 'a' },
              { type: 'image_url', image_url: {} },
            ],
          },
        ],
      },
      status: 400,
      param: 'input[0].content[1].image_url.url',
      message: /must be a non-empty string/,
    },
    {
      name: 'text and image in one item',
      body: { input: [{ text: 'a', image: good }] },
      status: 400,
      param: 'input[0]',
      message: /"text" and "image"; give exactly one/,
    },
    {
      name: 'placeholder without image',
      body: { input: [{ text: `${PLACEHOLDER} x`, images: [] }] },
      status: 400,
      param: 'input[0].text',
      message: /1 image placeholder\(s\) but "images" has 0/,
    },
    {
      name: 'bad encoding_format',
      body: { input: 'a', encoding_format: 'int8' },
      status: 400,
      param: 'encoding_format',
      message: /"float" or "base64"/,
    },
    {
      name: 'non-image bytes',
      body: { input: [{ image: dataUri(Buffer.from('this is plain text, not a picture')) }] },
      status: 400,
      param: 'input[0].image',
      message: /not a readable image/,
    },
    {
      name: 'malformed data URI',
      body: { input: [{ image: 'data:image/png;base64' }] },
      status: 400,
      param: 'input[0].image',
      message: /bad data: URI/,
    },
    {
      name: 'corrupt image (valid header, truncated data)',
      body: { input: ['fine', { image: dataUri(truncated) }] },
      status: 400,
      param: 'input[1]',
      message: /^input\[1\]: .*(corrupt|truncated)/i,
    },
    {
      name: 'huge image (bytes)',
      body: { input: [{ content: [{ type: 'image_url', image_url: { url: dataUri(big) } }] }] },
      status: 413,
      param: 'input[0].content[0].image_url.url',
      message: /over the limit of 262144|larger than the limit of 262144/,
    },
    {
      name: 'decompression bomb (pixels)',
      body: { input: [{ image: dataUri(bomb) }] },
      status: 413,
      param: 'input[0].image',
      message: /6000×6000 = 36000000 pixels, over the limit of 16777216 \(decompression-bomb guard\)/,
    },
    {
      name: 'local path in server mode',
      body: { input: [{ image: '/etc/hostname' }] },
      status: 400,
      param: 'input[0].image',
      message: /local file paths are not accepted/,
    },
    {
      name: 'remote URL',
      body: { input: [{ content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] },
      status: 400,
      param: 'input[0].content[0].image_url.url',
      message: /remote image URLs are not fetched/,
    },
    {
      name: 'too many inputs',
      body: { input: Array.from({ length: LIMITS.maxInputs + 1 }, (_, i) => `t${i}`) },
      status: 413,
      param: 'input',
      message: /9 inputs exceed the limit of 8 per request/,
    },
    {
      name: 'text over the token limit',
      body: { input: ['short', 'x'.repeat(1300)] },
      status: 413,
      param: 'input[1]',
      message: /1300 tokens exceed the limit of 1280/,
    },
    {
      name: 'body over the size limit',
      body: { input: ['y'.repeat(LIMITS.maxBodyBytes + 10)] },
      status: 413,
      param: null,
      message: /body is larger than the limit of 1048576 bytes/,
    },
    {
      name: 'more inputs than the queue holds',
      body: { input: ['a', 'b', 'c', 'd', 'e'] },
      status: 429,
      param: null,
      message: /queue limit of 4/,
      headers: { 'retry-after': /^[1-9]\d*$/ },
    },
    {
      name: 'search without an index',
      path: '/v1/search',
      body: { query: 'x' },
      status: 404,
      param: null,
      message: /no index is loaded/,
    },
    {
      name: 'unknown route',
      path: '/v1/embedding',
      body: { input: 'x' },
      status: 404,
      param: null,
      message: /no route POST \/v1\/embedding/,
    },
  ];
});

after(async () => {
  await server.close();
  tmp.remove();
});

test('bad-input matrix: the right 4xx, a message naming the field, and the server stays up', async (t) => {
  t.diagnostic('status | param | case → message');
  for (const c of cases) {
    const res = await fetch(`${url}${c.path ?? '/v1/embeddings'}`, {
      method: 'POST',
      headers: { 'content-type': c.contentType ?? 'application/json' },
      body: typeof c.body === 'string' ? c.body : JSON.stringify(c.body),
    });
    const text = await res.text();
    let body: { error?: { message?: string; param?: string | null; type?: string } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      assert.fail(`${c.name}: the answer is not JSON: ${text.slice(0, 200)}`);
    }
    const e = body.error;
    assert.ok(e !== undefined, `${c.name}: no error object in ${text.slice(0, 200)}`);
    t.diagnostic(`${res.status} | ${e.param ?? '-'} | ${c.name} → ${e.message}`);
    assert.equal(res.status, c.status, `${c.name}: ${text.slice(0, 300)}`);
    assert.equal(e.param ?? null, c.param, `${c.name}: param`);
    assert.match(e.message ?? '', c.message, c.name);
    assert.equal(typeof e.type, 'string');
    for (const [h, re] of Object.entries(c.headers ?? {}))
      assert.match(res.headers.get(h) ?? '', re, `${c.name}: ${h}`);
  }

  // Still up: health, a good request with an image, and every refusal counted.
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const ok = await postJson(`${url}/v1/embeddings`, {
    input: ['still here', { image: dataUri(await png(56, 56, 9)) }],
  });
  assert.equal(ok.status, 200);
  const m = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  const refused = cases.length;
  assert.equal(metricSum(m, 'moca_errors_total'), refused);
  assert.equal(
    metricSum(m, 'moca_errors_total', { reason: 'too_large' }),
    cases.filter((c) => c.status === 413).length,
  );
  assert.equal(metricSum(m, 'moca_errors_total', { reason: 'queue_full' }), 1);
  assert.equal(metricSum(m, 'moca_errors_total', { reason: 'inference' }), 1);
});
