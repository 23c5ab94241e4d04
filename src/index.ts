// moca-ts public entry point.
export * as torch from './torch/index.js';
