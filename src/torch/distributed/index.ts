// torch.distributed for moca-ts: process groups on libtorch's c10d (Gloo, NCCL), collectives and the gradient
// reducer of data-parallel training. `import { distributed } from 'moca-ts/torch'`.
export * from './process-group.js';
export * from './collectives.js';
export { GradReducer, type GradReducerOptions } from './reducer.js';
