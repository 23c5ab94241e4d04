// Skipping parameter initialisation while building a model whose weights will be loaded from a checkpoint
// (transformers' `no_init_weights`). Parameters are then allocated with `empty`, whose pages are not touched
// until written, so a multi-gigabyte model costs no time or resident memory before its weights arrive.
let depth = 0;

export function noInit<T>(fn: () => T): T {
  depth += 1;
  try {
    return fn();
  } finally {
    depth -= 1;
  }
}

/** true unless inside noInit(). */
export function shouldInitialize(): boolean {
  return depth === 0;
}
