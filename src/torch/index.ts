// The tensor runtime's public surface: `import * as torch from 'moca-ts/torch'`-style usage.
export * from './dtype.js';
export * from './tensor.js';
export * from './creation.js';
export * from './scope.js';
export * from './autograd.js';
export * from './fused.js';
export * from './info.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export { applyNativeEnvironmentDefaults } from './native-env.js';
export * as F from './functional.js';
export * as init from './nn/init.js';
export { Module, ModuleList, Parameter, StateDictError, type LoadStateDictResult } from './nn/module.js';
export { Linear, Embedding, RMSNorm, LayerNorm, Dropout, type FactoryOptions } from './nn/layers.js';
export { noInit, shouldInitialize } from './nn/no-init.js';
export {
  PackedLinear,
  PackedLinearWeight,
  packedLinear,
  packedLinearKernels,
  packLinearLayers,
  type PackedWeightFormat,
} from './nn/packed-linear.js';
export { Optimizer, type OptimizerStateDict, type ParamState } from './optim/optimizer.js';
export { AdamW, type AdamWOptions } from './optim/adamw.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
export { clipGradNorm } from './optim/clip.js';
export * from './optim/lr_scheduler.js';
export { saveOptimizerState, loadOptimizerState } from './optim/serialize.js';
export * as distributed from './distributed/index.js';
