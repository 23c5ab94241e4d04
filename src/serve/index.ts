// The HTTP server: OpenAI-compatible embeddings, search, page, health, metrics.
export { MocaServer, SERVE_DEFAULTS, type ServeOptions } from './server.js';
export {
  DynamicBatcher,
  type BatcherOptions,
  type BatchStats,
  QueueFullError,
  RequestTimeoutError,
  BatcherClosedError,
  InputFailedError,
} from './batcher.js';
export { HttpError } from './errors.js';
