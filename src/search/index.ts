// Vector search over embeddings: a persistent HNSW index with metadata, and building it from collections.
export {
  type AddOptions,
  type CreateIndexOptions,
  IndexError,
  indexExists,
  type OpenIndexOptions,
  type Quantization,
  QUANTIZATIONS,
  type SearchHit,
  type SearchOptions,
  VectorIndex,
} from './vector-index.js';
export { TopK, scanBlock, type ScoredKey } from './exact.js';
export {
  arraySource,
  DEFAULT_IMAGE_PROMPT,
  displayText,
  folderSource,
  type IndexRow,
  jsonlSource,
  listImages,
  openSource,
  type RowOrError,
  type RowSource,
} from './collection.js';
export {
  BuildInterrupted,
  buildIndex,
  type BuildIndexOptions,
  type BuildProgress,
  type BuildReport,
  THUMBS_DIR,
} from './build.js';
export { queryInput, type QueryPrompts, DEFAULT_QUERY_PROMPTS, promptsOf } from './query.js';
export { THUMBNAIL_SIZE, writeThumbnail } from './thumbnails.js';
