// Dynamic batching: inputs of concurrent requests wait in one FIFO queue and are grouped into forward passes of at
// most `maxBatchInputs` inputs and `maxBatchTokens` padded tokens (longest input × inputs, which is what a padded
// batch costs). A batch is sent when it is full, or when its oldest input has waited `maxWaitMs`, and only while
// the executor is free: inputs arriving during a forward pass ride together in the next one.
//
// The queue is bounded (inputs and bytes): a request that does not fit is refused at once (QueueFullError → 429)
// instead of growing memory. A request that waits longer than its timeout is dropped from the queue
// (RequestTimeoutError → 503); one whose client went away is dropped silently.

export interface BatcherOptions {
  /** Group inputs of different requests (default true). Off: one request's inputs per forward pass, no waiting. */
  batching: boolean;
  maxBatchInputs: number;
  maxBatchTokens: number;
  maxWaitMs: number;
  maxQueueInputs: number;
  maxQueueBytes: number;
}

export interface BatchStats {
  inputs: number;
  requests: number;
  paddedTokens: number;
  tokens: number;
  /** Wall time of the executor call. */
  ms: number;
  /** Per input: time from submission to the start of its batch. */
  waitedMs: number[];
}

export type Outcome<O> = { ok: true; value: O } | { ok: false; error: string };

/** The queue cannot take the request; retry after `retryAfterS`. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message);
  }
}

export class RequestTimeoutError extends Error {
  override name = 'RequestTimeoutError';
  constructor(
    readonly timeoutMs: number,
    readonly retryAfterS: number,
  ) {
    super(`request timed out after ${timeoutMs} ms waiting for the model (server busy)`);
  }
}

export class BatcherClosedError extends Error {
  override name = 'BatcherClosedError';
  constructor() {
    super('the server is shutting down');
  }
}

export class RequestAbortedError extends Error {
  override name = 'RequestAbortedError';
  constructor() {
    super('the client went away');
  }
}

/** One input of a request failed in the executor. */
export class InputFailedError extends Error {
  override name = 'InputFailedError';
  constructor(
    readonly inputIndex: number,
    readonly reason: string,
  ) {
    super(`input[${inputIndex}]: ${reason}`);
  }
}

export interface SubmitItem<I> {
  input: I;
  /** Tokens this input occupies in a batch (after truncation). */
  cost: number;
  /** Bytes it holds while queued (images). */
  bytes: number;
}

interface Pending<I, O> {
  items: SubmitItem<I>[];
  results: (O | undefined)[];
  remaining: number;
  submittedAt: number;
  settled: boolean;
  resolve: (values: O[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
  cleanup: () => void;
}

interface Slot<I, O> {
  request: Pending<I, O>;
  index: number;
}

export class DynamicBatcher<I, O> {
  private readonly queue: Slot<I, O>[] = [];
  private queuedBytes = 0;
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Exponential moving average of inputs per second through the executor, for Retry-After. */
  private throughput = 0;

  constructor(
    private readonly execute: (inputs: I[]) => Promise<Outcome<O>[]>,
    readonly options: BatcherOptions,
    private readonly onBatch?: (stats: BatchStats) => void,
  ) {
    for (const k of ['maxBatchInputs', 'maxBatchTokens', 'maxQueueInputs', 'maxQueueBytes'] as const) {
      if (!(Number.isFinite(options[k]) && options[k] >= 1)) throw new RangeError(`DynamicBatcher: ${k} must be ≥ 1`);
    }
    if (!(options.maxWaitMs >= 0)) throw new RangeError('DynamicBatcher: maxWaitMs must be ≥ 0');
  }

  /** Inputs waiting. */
  get queueDepth(): number {
    return this.queue.length;
  }
  get queueBytes(): number {
    return this.queuedBytes;
  }
  /** Batches in the executor now. */
  get inflight(): number {
    return this.running;
  }

  /** Seconds a client should wait before retrying, from the backlog and the recent throughput (1…60). */
  retryAfterSeconds(extraInputs = 0): number {
    const backlog = this.queue.length + extraInputs;
    const rate = this.throughput > 0 ? this.throughput : 1;
    return Math.min(60, Math.max(1, Math.ceil(backlog / rate)));
  }

  /**
   * Queues a request's inputs; resolves with their results in input order, or rejects with QueueFullError,
   * RequestTimeoutError, BatcherClosedError, RequestAbortedError or InputFailedError (the first input that failed).
   */
  submit(items: readonly SubmitItem<I>[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<O[]> {
    if (this.closed) return Promise.reject(new BatcherClosedError());
    if (items.length === 0) return Promise.resolve([]);
    const bytes = items.reduce((s, x) => s + x.bytes, 0);
    if (this.queue.length + items.length > this.options.maxQueueInputs) {
      return Promise.reject(
        new QueueFullError(
          `server busy: ${this.queue.length} inputs queued, this request's ${items.length} would exceed the queue ` +
            `limit of ${this.options.maxQueueInputs}`,
          this.retryAfterSeconds(items.length),
        ),
      );
    }
    if (this.queuedBytes + bytes > this.options.maxQueueBytes && this.queue.length > 0) {
      return Promise.reject(
        new QueueFullError(
          `server busy: queued images hold ${this.queuedBytes} bytes, this request's ${bytes} would exceed the ` +
            `limit of ${this.options.maxQueueBytes}`,
          this.retryAfterSeconds(items.length),
        ),
      );
    }
    if (options.signal?.aborted) return Promise.reject(new RequestAbortedError());
    return new Promise<O[]>((resolve, reject) => {
      const onAbort = (): void => this.fail(request, new RequestAbortedError());
      const request: Pending<I, O> = {
        items: [...items],
        results: new Array<O | undefined>(items.length),
        remaining: items.length,
        submittedAt: performance.now(),
        settled: false,
        resolve,
        reject,
        timer: null,
        cleanup: () => {
          if (request.timer) clearTimeout(request.timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      };
      if (options.timeoutMs !== undefined && options.timeoutMs > 0) {
        const ms = options.timeoutMs;
        request.timer = setTimeout(() => this.fail(request, new RequestTimeoutError(ms, this.retryAfterSeconds())), ms);
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      items.forEach((_, index) => this.queue.push({ request, index }));
      this.queuedBytes += bytes;
      this.schedule();
    });
  }

  /** Refuses new requests; queued and running ones finish. */
  close(): void {
    this.closed = true;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ------------------------------------------------------------------------------------------------ internals

  private fail(request: Pending<I, O>, error: Error): void {
    if (request.settled) return;
    request.settled = true;
    request.cleanup();
    // Its inputs still in the queue are dropped: no work for an answer nobody will read.
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i]!.request === request) {
        this.queuedBytes -= request.items[this.queue[i]!.index]!.bytes;
        this.queue.splice(i, 1);
      }
    }
    request.reject(error);
    this.notifyIdle();
  }

  private schedule(): void {
    if (this.running > 0 || this.queue.length === 0) return;
    if (!this.options.batching || this.options.maxWaitMs === 0 || this.batchIsFull()) {
      this.dispatch();
      return;
    }
    const waited = performance.now() - this.queue[0]!.request.submittedAt;
    const left = this.options.maxWaitMs - waited;
    if (left <= 0) {
      this.dispatch();
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, left);
    }
  }

  /** Would the queue's head fill a batch by itself? */
  private batchIsFull(): boolean {
    return this.take(false).length < this.queue.length || this.queue.length >= this.options.maxBatchInputs;
  }

  /** The next batch from the queue's head (removed from the queue when `remove`). */
  private take(remove: boolean): Slot<I, O>[] {
    const { maxBatchInputs, maxBatchTokens, batching } = this.options;
    const batch: Slot<I, O>[] = [];
    let longest = 0;
    for (const slot of this.queue) {
      if (batch.length >= maxBatchInputs) break;
      if (!batching && batch.length > 0 && slot.request !== batch[0]!.request) break;
      const cost = slot.request.items[slot.index]!.cost;
      const next = Math.max(longest, cost);
      if (batch.length > 0 && next * (batch.length + 1) > maxBatchTokens) break;
      batch.push(slot);
      longest = next;
    }
    if (remove) this.queue.splice(0, batch.length);
    return batch;
  }

  private dispatch(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.take(true);
    if (batch.length === 0) return;
    const started = performance.now();
    let tokens = 0;
    let longest = 0;
    for (const s of batch) {
      const item = s.request.items[s.index]!;
      this.queuedBytes -= item.bytes;
      tokens += item.cost;
      longest = Math.max(longest, item.cost);
    }
    const requests = new Set(batch.map((s) => s.request)).size;
    const waitedMs = batch.map((s) => started - s.request.submittedAt);
    this.running++;
    let outcomes: Outcome<O>[] | null = null;
    let failure: Error | null = null;
    this.execute(batch.map((s) => s.request.items[s.index]!.input))
      .then(
        (o) => {
          outcomes = o;
        },
        (e: unknown) => {
          failure = e instanceof Error ? e : new Error(String(e));
        },
      )
      .finally(() => {
        const ms = performance.now() - started;
        this.running--;
        const rate = (batch.length * 1000) / Math.max(ms, 1e-3);
        this.throughput = this.throughput === 0 ? rate : 0.8 * this.throughput + 0.2 * rate;
        this.onBatch?.({ inputs: batch.length, requests, paddedTokens: longest * batch.length, tokens, ms, waitedMs });
        batch.forEach((slot, k) => {
          const r = slot.request;
          if (r.settled) return;
          const o: Outcome<O> | undefined = outcomes?.[k];
          if (failure !== null || o === undefined) {
            this.fail(r, failure ?? new Error('the inference worker returned too few results'));
          } else if (!o.ok) {
            this.fail(r, new InputFailedError(slot.index, o.error));
          } else {
            r.results[slot.index] = o.value;
            if (--r.remaining === 0) {
              r.settled = true;
              r.cleanup();
              r.resolve(r.results as O[]);
            }
          }
        });
        this.schedule();
        this.notifyIdle();
      });
  }

  private notifyIdle(): void {
    if (this.queue.length === 0 && this.running === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
