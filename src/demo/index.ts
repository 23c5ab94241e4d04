export * from './config.js';
export * from './evaluate.js';
export * from './pipeline.js';
export * from './report.js';
export * from './search.js';
export { DemoInterrupted, type StageRecord } from './stages.js';
