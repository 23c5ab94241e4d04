// The inference worker thread: owns the model and runs one batch at a time, so that forward passes (synchronous
// libtorch calls) never block the server's event loop. Images arrive as bytes only: this thread never reads files.
import { parentPort } from 'node:worker_threads';

import { Embedder } from '../embed/index.js';
import type { FromWorker, ToWorker, WireOutcome } from './protocol.js';

if (parentPort === null) throw new Error('inference-worker.js must run in a worker thread');
const port = parentPort;
let embedder: Embedder | null = null;

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

port.on('message', (message: ToWorker) => {
  void handle(message);
});

async function handle(message: ToWorker): Promise<void> {
  if (message.type === 'init') {
    const t0 = performance.now();
    try {
      embedder = await Embedder.load(message.modelDir, message.options);
      send({ type: 'ready', dimension: embedder.dimension, loadMs: performance.now() - t0 });
    } catch (e) {
      send({ type: 'init-error', message: (e as Error).message });
    }
    return;
  }
  const { id, inputs } = message;
  if (embedder === null) {
    send({ type: 'failed', id, message: 'the model is not loaded' });
    return;
  }
  const t0 = performance.now();
  try {
    // One forward pass for the whole batch: the main thread already sized it.
    const settled = await embedder.embedSettled(
      inputs.map((x) => ({ text: x.text, images: x.images })),
      { batchSize: Math.max(1, inputs.length) },
    );
    const outcomes: WireOutcome[] = settled.map((o) => (o.ok ? { ok: true, embedding: o.embedding } : o));
    const transfer = outcomes.flatMap((o) => (o.ok ? [o.embedding.buffer as ArrayBuffer] : []));
    send({ type: 'result', id, outcomes, ms: performance.now() - t0 }, transfer);
  } catch (e) {
    send({ type: 'failed', id, message: (e as Error).message });
  }
}
