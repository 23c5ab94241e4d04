// OpenMP wait policy (pure: importing this module loads nothing).

/** libgomp's spin count at barriers that moca-ts sets when the user chose none (see `applyOpenMpDefaults`). */
export const DEFAULT_GOMP_SPINCOUNT = '10000';

/**
 * libtorch, OpenBLAS and the fused kernels share libgomp's thread pool, whose threads spin 300,000 times at every
 * barrier before sleeping (the default for a machine nobody else uses). When other processes compete for the
 * cores, a waiting thread burns the time slice the descheduled one needs, and every barrier of every op pays for
 * it. Measured on this project's 2-core VM, a 2-thread training step (bench `train-step`'s model) beside two busy
 * processes took 8.5× its idle time with the default and 3.0× with a spin count of 10,000; beside one busy
 * process, 3.1× and 2.2×; on the idle machine the lower count costs ≈1 %. So unless the user set either
 * variable, use the lower count. libgomp reads it once when it is loaded, so this must run before libtorch is.
 */
export function applyOpenMpDefaults(env: NodeJS.ProcessEnv): void {
  if (env.GOMP_SPINCOUNT === undefined && env.OMP_WAIT_POLICY === undefined) {
    env.GOMP_SPINCOUNT = DEFAULT_GOMP_SPINCOUNT;
  }
}
