// Bounded load on loopback: concurrent clients send a fixed number of requests; every request is answered exactly
// once (200 with its own vectors, or an explicit 429/503 with Retry-After), and the metrics show inputs of
// different requests sharing forward passes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Embedder } from '../../src/embed/index.js';
import type { MocaServer } from '../../src/serve/index.js';
import {
  PIXELS,
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

const CLIENTS = 16;
const REQUESTS = 160;

const tmp = tempDir('moca-serve-load-');
let server: MocaServer;
let url = '';
let model = '';
let image = '';

before(async () => {
  model = await tinyModel(tmp.dir);
  image = dataUri(await png(56, 56, 4));
  ({ server, url } = await startServer({
    modelDir: model,
    maxBatchInputs: 8,
    maxWaitMs: 5,
    maxQueueInputs: 12,
  }));
});

after(async () => {
  await server.close();
  tmp.remove();
});

/** The inputs of request r: one or two texts unique to it, every fifth with the shared image in front. */
function inputsOf(r: number): unknown[] {
  const texts = r % 3 === 0 ? [`request ${r} first`, `request ${r} second`] : [`request ${r}`];
  return r % 5 === 0
    ? [
        {
          content: [
            { type: 'image_url', image_url: { url: image } },
            { type: 'text', text: texts[0] },
          ],
        },
        ...texts.slice(1),
      ]
    : texts;
}

test(`${CLIENTS} concurrent clients, ${REQUESTS} requests: each answered once, correctly, with batching`, async (t) => {
  // Reference vectors, each input embedded alone, in this process.
  const embedder = await Embedder.load(model, { ...PIXELS, threads: 1 });
  const refInputs = (r: number) =>
    inputsOf(r).map((x) =>
      typeof x === 'string'
        ? x
        : {
            content: [
              { type: 'image' as const, image: image },
              { type: 'text' as const, text: `request ${r}${r % 3 === 0 ? ' first' : ''}` },
            ],
          },
    );
  const reference = new Map<number, Float32Array[]>();
  for (let r = 0; r < REQUESTS; r++) reference.set(r, await embedder.embed(refInputs(r), { batchSize: 1 }));

  const answers = new Map<number, { status: number; retryAfter: string | null; body: Record<string, unknown> }>();
  let duplicates = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REQUESTS) {
        const r = next++;
        const res = await postJson(`${url}/v1/embeddings`, { input: inputsOf(r) });
        if (answers.has(r)) duplicates++;
        answers.set(r, { status: res.status, retryAfter: res.headers.get('retry-after'), body: res.body });
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;

  assert.equal(duplicates, 0);
  assert.equal(answers.size, REQUESTS, 'every request answered');
  const byStatus = new Map<number, number>();
  let inputsOk = 0;
  for (const [r, a] of answers) {
    byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
    if (a.status === 200) {
      const data = a.body.data as { index: number; embedding: number[] }[];
      const ref = reference.get(r)!;
      assert.equal(data.length, ref.length, `request ${r}`);
      data.forEach((d, i) => {
        assert.equal(d.index, i);
        assert.ok(maxAbsDiff(d.embedding, ref[i]!) < 1e-5, `request ${r} input ${i} got someone else's vector`);
      });
      inputsOk += data.length;
    } else {
      assert.ok(a.status === 429 || a.status === 503, `request ${r}: unexpected ${a.status} ${JSON.stringify(a.body)}`);
      assert.match(a.retryAfter ?? '', /^[1-9]\d*$/, `request ${r}: Retry-After`);
      assert.equal(typeof (a.body.error as { message: string }).message, 'string');
    }
  }
  // The references are distinct, so a mixed-up answer could not have passed the check above.
  const refs = [...reference.values()].flat();
  for (let i = 1; i < refs.length; i++) assert.ok(maxAbsDiff(refs[i]!, refs[i - 1]!) > 1e-4);

  const m = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  // The server saw each request exactly once, with the statuses the clients saw.
  assert.equal(metricSum(m, 'moca_http_requests_total', { route: '/v1/embeddings' }), REQUESTS);
  for (const [status, n] of byStatus) {
    assert.equal(metricSum(m, 'moca_http_requests_total', { route: '/v1/embeddings', status: String(status) }), n);
  }
  assert.equal(metricSum(m, 'moca_embedded_inputs_total'), inputsOk);
  const batches = metricSum(m, 'moca_batch_size_count');
  const batched = metricSum(m, 'moca_batch_size_sum');
  const shared = batches - metricSum(m, 'moca_batch_requests_bucket', { le: '1' });
  t.diagnostic(
    `${REQUESTS} requests in ${seconds.toFixed(2)} s (${(REQUESTS / seconds).toFixed(0)} req/s); statuses ` +
      [...byStatus].map(([s, n]) => `${s}×${n}`).join(' ') +
      `; ${batched} inputs in ${batches} forward passes (mean ${(batched / batches).toFixed(2)}), ` +
      `${shared} passes shared by several requests; max batch ≤ 8: ${metricSum(m, 'moca_batch_size_bucket', { le: '8' }) === batches}`,
  );
  assert.ok(byStatus.get(200)! >= REQUESTS / 2, 'most requests succeed');
  assert.ok(batched / batches > 1.5, 'inputs are batched');
  assert.ok(shared > 0, 'some forward passes carry inputs of several requests');
  assert.equal(metricSum(m, 'moca_batch_size_bucket', { le: '8' }), batches, 'no batch over --max-batch');
  assert.equal(metricSum(m, 'moca_queue_depth'), 0);
  assert.equal(metricSum(m, 'moca_errors_total', { reason: 'queue_full' }), byStatus.get(429) ?? 0);
});
