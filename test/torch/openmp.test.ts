// The native environment defaults: a lower libgomp spin count unless the user chose a spin count or a wait
// policy, set in the process environment before libtorch (and with it libgomp, which reads it once) is loaded;
// and a warning when libtorch is first loaded in a worker thread whose process never got them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { applyOpenMpDefaults, DEFAULT_GOMP_SPINCOUNT } from '../../src/torch/openmp.js';

const torchIndex = fileURLToPath(new URL('../../src/torch/index.js', import.meta.url));

/** GOMP_SPINCOUNT as a child process sees it after loading the tensor runtime (and running one op). */
function spinCountAfterLoad(extra: Record<string, string>): string {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', ...extra };
  if (!('GOMP_SPINCOUNT' in extra)) delete env.GOMP_SPINCOUNT;
  if (!('OMP_WAIT_POLICY' in extra)) delete env.OMP_WAIT_POLICY;
  const script =
    `const t = await import(${JSON.stringify(torchIndex)});` +
    `t.scope(() => t.ones([2]).sum().item());` +
    `process.stdout.write(String(process.env.GOMP_SPINCOUNT));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('OpenMP wait default', () => {
  test('applyOpenMpDefaults sets the spin count only when neither variable is set', () => {
    const none: NodeJS.ProcessEnv = {};
    applyOpenMpDefaults(none);
    assert.equal(none.GOMP_SPINCOUNT, DEFAULT_GOMP_SPINCOUNT);
    const own: NodeJS.ProcessEnv = { GOMP_SPINCOUNT: '500' };
    applyOpenMpDefaults(own);
    assert.equal(own.GOMP_SPINCOUNT, '500');
    const policy: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'active' };
    applyOpenMpDefaults(policy);
    assert.equal(policy.GOMP_SPINCOUNT, undefined);
  });

  test('loading the runtime applies it before libtorch starts, and keeps the user’s choice', () => {
    assert.equal(spinCountAfterLoad({}), DEFAULT_GOMP_SPINCOUNT);
    assert.equal(spinCountAfterLoad({ GOMP_SPINCOUNT: '123' }), '123');
    assert.equal(spinCountAfterLoad({ OMP_WAIT_POLICY: 'passive' }), 'undefined');
  });

  test('a worker thread that loads the runtime first warns, unless the main thread applied the defaults', () => {
    const nativeEnv = fileURLToPath(new URL('../../src/torch/native-env.js', import.meta.url));
    const run = (applyFirst: boolean) => {
      const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1' };
      for (const k of ['GOMP_SPINCOUNT', 'OMP_WAIT_POLICY', 'OPENBLAS_CORETYPE']) delete env[k];
      const worker = `import(${JSON.stringify(torchIndex)}).then((t) => t.scope(() => t.ones([2]).sum().item()))`;
      const script =
        (applyFirst ? `(await import(${JSON.stringify(nativeEnv)})).applyNativeEnvironmentDefaults();` : '') +
        `const { Worker } = await import('node:worker_threads');` +
        `await new Promise((res, rej) => new Worker(${JSON.stringify(worker)}, { eval: true })` +
        `.on('exit', res).on('error', rej));`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stderr;
    };
    assert.match(run(false), /MOCA_WORKER_ENV.*worker thread whose process did not set .*GOMP_SPINCOUNT/);
    assert.doesNotMatch(run(true), /MOCA_WORKER_ENV/);
  });
});
