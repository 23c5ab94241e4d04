// Messages between the server's main thread and its inference worker (worker_threads, structured clone).
import type { EmbedderOptions } from '../embed/index.js';

/** One input as the worker receives it: text with one placeholder per image, images as encoded bytes only. */
export interface WireInput {
  text: string;
  images: Uint8Array[];
}

export type ToWorker =
  { type: 'init'; modelDir: string; options: EmbedderOptions } | { type: 'embed'; id: number; inputs: WireInput[] };

export type WireOutcome = { ok: true; embedding: Float32Array } | { ok: false; error: string };

export type FromWorker =
  | { type: 'ready'; dimension: number; loadMs: number }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; outcomes: WireOutcome[]; ms: number }
  | { type: 'failed'; id: number; message: string };
