// The dynamic batcher's policy, driven through its executor interface by a recording function whose completion the
// test controls (the model behind it is exercised by the load and embeddings tests).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  BatcherClosedError,
  type BatcherOptions,
  DynamicBatcher,
  InputFailedError,
  type Outcome,
  QueueFullError,
  RequestAbortedError,
  RequestTimeoutError,
} from '../../src/serve/batcher.js';

const BASE: BatcherOptions = {
  batching: true,
  maxBatchInputs: 4,
  maxBatchTokens: 1_000_000,
  maxWaitMs: 0,
  maxQueueInputs: 100,
  maxQueueBytes: 1_000_000,
};

/** An executor that records its batches and finishes each when `release()` is called (or at once when `auto`). */
function recorder(auto: boolean) {
  const batches: string[][] = [];
  const waiting: (() => void)[] = [];
  const execute = (inputs: string[]): Promise<Outcome<string>[]> => {
    batches.push(inputs);
    const result = (): Outcome<string>[] =>
      inputs.map((x) =>
        x.startsWith('bad') ? { ok: false, error: `cannot embed ${x}` } : { ok: true, value: x.toUpperCase() },
      );
    if (auto) return new Promise((resolve) => setImmediate(() => resolve(result())));
    return new Promise((resolve) => waiting.push(() => resolve(result())));
  };
  const release = async (): Promise<void> => {
    while (waiting.length === 0) await new Promise((r) => setImmediate(r));
    waiting.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { batches, execute, release };
}

const items = (xs: string[], cost = 1, bytes = 0) => xs.map((input) => ({ input, cost, bytes }));

describe('DynamicBatcher', () => {
  test('groups inputs of concurrent requests up to maxBatchInputs; each request gets its own results in order', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, BASE);
    const p1 = b.submit(items(['a', 'b']));
    const p2 = b.submit(items(['c']));
    const p3 = b.submit(items(['d', 'e', 'f']));
    // The first request went alone (the executor was free and nothing waits at maxWaitMs 0); the rest queued.
    assert.deepEqual(rec.batches, [['a', 'b']]);
    assert.equal(b.queueDepth, 4);
    await rec.release();
    assert.deepEqual(rec.batches[1], ['c', 'd', 'e', 'f']);
    await rec.release();
    assert.deepEqual(await p1, ['A', 'B']);
    assert.deepEqual(await p2, ['C']);
    assert.deepEqual(await p3, ['D', 'E', 'F']);
    await b.idle();
    assert.equal(b.queueDepth, 0);
  });

  test('padded-token budget: longest input × batch size stays within maxBatchTokens', async () => {
    const rec = recorder(true);
    const b = new DynamicBatcher(rec.execute, { ...BASE, maxBatchInputs: 10, maxBatchTokens: 400, maxWaitMs: 20 });
    const all = Promise.all([
      b.submit([{ input: 'a', cost: 100, bytes: 0 }]),
      b.submit([{ input: 'b', cost: 100, bytes: 0 }]),
      b.submit([{ input: 'c', cost: 300, bytes: 0 }]),
      b.submit([{ input: 'd', cost: 50, bytes: 0 }]),
    ]);
    await all;
    // [a, b] = 2 × 100; adding c would make 3 × 300 > 400; [c] = 300; adding d: 2 × 300 > 400.
    assert.deepEqual(rec.batches, [['a', 'b'], ['c'], ['d']]);
  });

  test('a lone input waits maxWaitMs for company; a full batch goes at once', async () => {
    const rec = recorder(true);
    const b = new DynamicBatcher(rec.execute, { ...BASE, maxWaitMs: 40 });
    const t0 = performance.now();
    await b.submit(items(['x']));
    assert.ok(performance.now() - t0 >= 35, 'waited for more inputs');
    const t1 = performance.now();
    await b.submit(items(['1', '2', '3', '4']));
    assert.ok(performance.now() - t1 < 35, 'a full batch does not wait');
    assert.deepEqual(rec.batches, [['x'], ['1', '2', '3', '4']]);
  });

  test('batching off: one request per forward pass, no waiting', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, { ...BASE, batching: false, maxWaitMs: 1000 });
    const ps = [b.submit(items(['a'])), b.submit(items(['b', 'c'])), b.submit(items(['d']))];
    for (let i = 0; i < 3; i++) await rec.release();
    await Promise.all(ps);
    assert.deepEqual(rec.batches, [['a'], ['b', 'c'], ['d']]);
  });

  test('a full queue refuses at once with a Retry-After estimate; bytes are bounded too', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, { ...BASE, maxQueueInputs: 3 });
    const running = b.submit(items(['a']));
    const queued = b.submit(items(['b', 'c']));
    await assert.rejects(b.submit(items(['d', 'e'])), (e: unknown) => {
      assert.ok(e instanceof QueueFullError);
      assert.match(e.message, /queue limit of 3/);
      assert.ok(e.retryAfterS >= 1 && e.retryAfterS <= 60);
      return true;
    });
    for (let i = 0; i < 2; i++) await rec.release();
    assert.deepEqual([await running, await queued], [['A'], ['B', 'C']]);

    const rec2 = recorder(false);
    const b2 = new DynamicBatcher(rec2.execute, { ...BASE, maxQueueBytes: 100 });
    const first = b2.submit(items(['a'], 1, 60));
    const heavy = b2.submit(items(['f'], 1, 60));
    await assert.rejects(b2.submit(items(['g'], 1, 60)), /queued images hold 60 bytes.*limit of 100/);
    for (let i = 0; i < 2; i++) await rec2.release();
    assert.deepEqual([await first, await heavy], [['A'], ['F']]);
  });

  test('a request that times out in the queue is dropped from it and never executed', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, BASE);
    const running = b.submit(items(['a']));
    const late = b.submit(items(['b', 'c']), { timeoutMs: 20 });
    await assert.rejects(
      late,
      (e: unknown) => e instanceof RequestTimeoutError && /timed out after 20 ms/.test(e.message),
    );
    assert.equal(b.queueDepth, 0);
    await rec.release();
    assert.deepEqual(await running, ['A']);
    await b.idle();
    assert.deepEqual(rec.batches, [['a']]);
  });

  test('an aborted request (client gone) leaves the queue', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, BASE);
    const running = b.submit(items(['a']));
    const ac = new AbortController();
    const gone = b.submit(items(['b']), { signal: ac.signal });
    ac.abort();
    await assert.rejects(gone, RequestAbortedError);
    assert.equal(b.queueDepth, 0);
    await rec.release();
    await running;
    assert.deepEqual(rec.batches, [['a']]);
  });

  test('a failed input fails its own request, naming the input; others in the batch succeed', async () => {
    const rec = recorder(true);
    const b = new DynamicBatcher(rec.execute, { ...BASE, maxWaitMs: 10 });
    const [good, bad] = await Promise.allSettled([b.submit(items(['ok'])), b.submit(items(['fine', 'bad-image']))]);
    assert.deepEqual(rec.batches, [['ok', 'fine', 'bad-image']]);
    assert.deepEqual((good as PromiseFulfilledResult<string[]>).value, ['OK']);
    const err = (bad as PromiseRejectedResult).reason as InputFailedError;
    assert.ok(err instanceof InputFailedError);
    assert.equal(err.inputIndex, 1);
    assert.equal(err.reason, 'cannot embed bad-image');
  });

  test('an executor failure fails that batch only; the batcher goes on', async () => {
    let calls = 0;
    const b = new DynamicBatcher<string, string>(async (inputs) => {
      if (calls++ === 0) throw new Error('worker died');
      return inputs.map((x) => ({ ok: true, value: x }));
    }, BASE);
    await assert.rejects(b.submit(items(['a'])), /worker died/);
    assert.deepEqual(await b.submit(items(['b'])), ['b']);
  });

  test('close: new requests are refused, queued ones are answered, idle() resolves', async () => {
    const rec = recorder(false);
    const b = new DynamicBatcher(rec.execute, BASE);
    const running = b.submit(items(['a']));
    const queued = b.submit(items(['b']));
    b.close();
    await assert.rejects(b.submit(items(['c'])), BatcherClosedError);
    const idle = b.idle();
    await rec.release();
    await rec.release();
    await idle;
    assert.deepEqual([await running, await queued], [['A'], ['B']]);
  });
});
