// Loads the libtorch binding once per thread and applies process-wide settings before libtorch starts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

import type { NativeSignature } from './native-handles.js';
import type { NativeOps } from './native-ops.js';
import { applyNativeEnvironmentDefaults } from './native-env.js';
import { chooseOpenBlasCoreType } from './openblas.js';

const require = createRequire(import.meta.url);

function bindingPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/torch (ts sources) and dist/src/torch (compiled) both sit below the package root.
  for (const up of ['../..', '../../..']) {
    const candidate = path.resolve(here, up, 'native', 'build', 'Release', 'moca_torch.node');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'moca-ts: the libtorch binding is not built (native/build/Release/moca_torch.node is missing). ' +
      'Run `npm ci` (or `npm run build:native`); see README.md for installing libtorch.',
  );
}

interface RawBinding extends NativeOps {
  signatures(): NativeSignature[];
}

let binding: RawBinding | undefined;

/** The binding without the defaults applied by `native` (used by the type generator). */
export function loadBindingRaw(): RawBinding {
  if (binding === undefined) {
    if (!isMainThread) warnIfWorkerEnvironmentUnset();
    applyNativeEnvironmentDefaults(process.env);
    binding = require(bindingPath()) as RawBinding;
  }
  return binding;
}

/**
 * In a worker thread `process.env` is a private copy that native code never sees, so the defaults applied here
 * cannot reach OpenBLAS and libgomp. They are in place when the main thread applied them before starting this
 * worker (it does when it loaded the runtime itself, or called `applyNativeEnvironmentDefaults`); say so if not.
 */
function warnIfWorkerEnvironmentUnset(): void {
  const wanted: NodeJS.ProcessEnv = { ...process.env };
  applyNativeEnvironmentDefaults(wanted);
  const missing = ['OPENBLAS_CORETYPE', 'GOMP_SPINCOUNT'].filter((k) => wanted[k] !== process.env[k]);
  if (missing.length > 0) {
    process.emitWarning(
      `moca-ts is loading libtorch in a worker thread whose process did not set ${missing.join(', ')}; ` +
        "native code cannot see a worker's process.env, so call torch.applyNativeEnvironmentDefaults() (or load " +
        'the runtime) in the main thread before starting the worker; without them OpenBLAS may pick slow generic ' +
        'kernels on virtual machines and OpenMP spins longer (docs/runtime.md)',
      { code: 'MOCA_WORKER_ENV' },
    );
  }
}

function defaultThreads(): number {
  const fromEnv = Number(process.env.MOCA_NUM_THREADS ?? process.env.OMP_NUM_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return os.availableParallelism();
}

function load(): NativeOps {
  const b = loadBindingRaw();
  // libtorch's OpenMP pool may start with one thread on containers; use every core unless told otherwise.
  b.setNumThreads(defaultThreads());
  return b;
}

/** The binding, with one function per libtorch op (see native-ops.ts). */
export const native: NativeOps = load();

export { chooseOpenBlasCoreType };
