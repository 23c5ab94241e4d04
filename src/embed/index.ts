export * from './embedder.js';
export * from './init-model.js';
