import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const bin = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function moca(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('moca CLI', () => {
  test('--version prints the package version', () => {
    const r = moca('--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('--help lists the commands', () => {
    const r = moca('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: moca/);
    assert.match(r.stdout, /demo/);
    assert.match(r.stdout, /info/);
  });

  test('info prints machine-readable runtime facts', () => {
    const r = moca('info');
    assert.equal(r.status, 0);
    const info = JSON.parse(r.stdout) as { libtorchVersion: string; numThreads: number };
    assert.match(info.libtorchVersion, /^\d+\.\d+/);
    assert.ok(info.numThreads >= 1);
  });

  test('an unknown command exits non-zero with the reason on stderr', () => {
    const r = moca('frobnicate');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    assert.equal(r.stdout, '');
  });
});
