// Process-wide settings that the native libraries read once, when they are loaded (pure: importing this module
// loads nothing). They go into the C environment through `process.env` of the main thread only: in a worker
// thread `process.env` is a private copy that native code never sees, so code that loads libtorch in a worker
// calls this in the main thread first (see serve/inference.ts).
import { readFileSync } from 'node:fs';

import { chooseOpenBlasCoreType } from './openblas.js';
import { applyOpenMpDefaults } from './openmp.js';

/** OPENBLAS_CORETYPE (see openblas.ts) and the OpenMP wait default (see openmp.ts), unless the user set them. */
export function applyNativeEnvironmentDefaults(env: NodeJS.ProcessEnv = process.env): void {
  if (env.OPENBLAS_CORETYPE === undefined && process.platform === 'linux' && process.arch === 'x64') {
    try {
      const core = chooseOpenBlasCoreType(readFileSync('/proc/cpuinfo', 'utf8'));
      if (core) env.OPENBLAS_CORETYPE = core;
    } catch {
      // No /proc (unusual); OpenBLAS keeps its own detection.
    }
  }
  applyOpenMpDefaults(env);
}
