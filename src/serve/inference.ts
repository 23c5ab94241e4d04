// The main thread's handle on the inference worker: starts it, sends batches, matches results to requests, and
// restarts the worker if it dies (requests in flight then fail with 503; the server stays up).
import { Worker } from 'node:worker_threads';

import type { EmbedderOptions } from '../embed/index.js';
import { applyNativeEnvironmentDefaults } from '../torch/native-env.js';
import type { FromWorker, ToWorker, WireInput, WireOutcome } from './protocol.js';

export interface InferenceEvents {
  onReady?: (info: { dimension: number; loadMs: number }) => void;
  /** The worker stopped unexpectedly; `restarting` tells whether a new one is being started. */
  onCrash?: (reason: string, restarting: boolean) => void;
}

export class WorkerUnavailableError extends Error {
  override name = 'WorkerUnavailableError';
}

export class InferenceWorker {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (o: WireOutcome[]) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readyInfo: { dimension: number; loadMs: number } | null = null;
  private starting: Promise<{ dimension: number; loadMs: number }> | null = null;
  private stopping = false;
  private crashes = 0;

  constructor(
    readonly modelDir: string,
    readonly options: EmbedderOptions,
    private readonly events: InferenceEvents = {},
    /** Consecutive crashes after which no restart is attempted. */
    private readonly maxRestarts = 3,
  ) {}

  get ready(): boolean {
    return this.readyInfo !== null;
  }

  get dimension(): number | null {
    return this.readyInfo?.dimension ?? null;
  }

  /** Starts the worker and loads the model; resolves when it is ready, rejects with the load error. */
  start(): Promise<{ dimension: number; loadMs: number }> {
    if (this.starting) return this.starting;
    // The worker loads libtorch, but its process.env is a private copy native code never sees: the settings
    // the native libraries read at load time (OpenBLAS core type, OpenMP wait) go in from this thread.
    applyNativeEnvironmentDefaults(process.env);
    this.starting = new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./inference-worker.js', import.meta.url));
      this.worker = worker;
      let loaded = false;
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready':
            loaded = true;
            this.crashes = 0;
            this.readyInfo = { dimension: m.dimension, loadMs: m.loadMs };
            this.events.onReady?.(this.readyInfo);
            resolve(this.readyInfo);
            break;
          case 'init-error':
            this.stopping = true;
            void worker.terminate();
            reject(new Error(`cannot load the model from ${this.modelDir}: ${m.message}`));
            break;
          case 'result': {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            p?.resolve(m.outcomes);
            break;
          }
          case 'failed': {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            p?.reject(new Error(m.message));
            break;
          }
        }
      });
      let reason = 'exited';
      worker.on('error', (e) => {
        reason = e.message;
      });
      worker.on('exit', (code) => {
        this.worker = null;
        this.readyInfo = null;
        this.starting = null;
        const why = `the inference worker stopped (${reason}, exit code ${code})`;
        for (const p of this.pending.values()) p.reject(new WorkerUnavailableError(why));
        this.pending.clear();
        if (!loaded) {
          reject(new Error(`cannot load the model from ${this.modelDir}: ${why}`));
          return;
        }
        if (this.stopping) return;
        this.crashes++;
        const restart = this.crashes <= this.maxRestarts;
        this.events.onCrash?.(why, restart);
        if (restart) this.start().catch(() => undefined);
      });
      const init: ToWorker = { type: 'init', modelDir: this.modelDir, options: this.options };
      worker.postMessage(init);
    });
    return this.starting;
  }

  /** Runs one batch; per-input outcomes in input order. */
  embed(inputs: WireInput[]): Promise<WireOutcome[]> {
    const worker = this.worker;
    if (worker === null || !this.ready) {
      return Promise.reject(new WorkerUnavailableError('the model is not loaded yet'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const message: ToWorker = { type: 'embed', id, inputs };
      worker.postMessage(message);
    });
  }

  /** Stops the worker (after the caller has drained its batches). */
  async terminate(): Promise<void> {
    this.stopping = true;
    const w = this.worker;
    if (w !== null) await w.terminate();
  }
}
