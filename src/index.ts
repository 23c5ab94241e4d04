// moca-ts public entry point.
export * as torch from './torch/index.js';
export * from './models/index.js';
export {
  Embedder,
  type EmbedInput,
  type EmbedderOptions,
  type EmbedOutcome,
  type ImageInput,
  initModelDirectory,
} from './embed/index.js';
export { Tokenizer } from './processing/tokenizer.js';
