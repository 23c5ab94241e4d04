// The portable kernel table (MOCA_KERNELS=generic) and the default one (AVX-512 on CPUs that have it) compute
// the same outputs and gradients for every fused kernel: the probe runs in a child process with each setting.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const probeScript = fileURLToPath(new URL('../helpers/fused-probe.js', import.meta.url));

function runProbe(kernels: string | undefined): Record<string, number[] | string> {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', MOCA_NUM_THREADS: '1' };
  if (kernels === undefined) delete env.MOCA_KERNELS;
  else env.MOCA_KERNELS = kernels;
  const r = spawnSync(process.execPath, [probeScript, '--probe'], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, number[] | string>;
}

test('portable and default kernel tables agree on every fused op', () => {
  const generic = runProbe('generic');
  const active = runProbe(undefined);
  assert.equal(generic.kernels, 'generic');
  for (const [name, values] of Object.entries(generic)) {
    if (name === 'kernels') continue;
    const a = values as number[];
    const b = active[name] as number[];
    assert.equal(a.length, b.length, name);
    const scale = Math.max(...a.map(Math.abs), 1e-30);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    // Different summation order and exp/tanh approximations (2 ulp) only.
    assert.ok(worst <= 2e-5 * scale, `${name}: max |Δ| ${worst} (scale ${scale}, ${String(active.kernels)})`);
  }
});
