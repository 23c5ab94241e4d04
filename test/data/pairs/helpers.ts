// Shared helpers of the stage-2 pair data tests: fixture paths and an in-memory error sink.
import { fileURLToPath } from 'node:url';

import type { ErrorSink } from '../../../src/data/index.js';

/** test/fixtures/pairs/ (tests run from dist/test/data/pairs/). */
export const PAIR_FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/pairs/', import.meta.url));
/** test/fixtures/data/ (the stage-1 fixtures). */
export const DATA_FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/data/', import.meta.url));

export const QWEN = '<|vision_start|><|image_pad|><|vision_end|>';
export const PHI = '<|image_1|>';

/** An ErrorSink that keeps its records. */
export class MemorySink implements ErrorSink {
  readonly entries: Record<string, unknown>[] = [];
  record(entry: Record<string, unknown>): void {
    this.entries.push(entry);
  }
}
