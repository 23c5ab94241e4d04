#!/usr/bin/env node
// Builds the libtorch binding with node-gyp.
//
// Why a script rather than npm's implicit `node-gyp rebuild`:
//  - node-gyp would download Node's headers unless told where they are. We point it at the headers of the
//    Node that runs this script (`<prefix>/include/node`), so the build works offline and does not depend on
//    a user's ~/.npmrc `nodedir`.
//  - libtorch comes either from Debian's `libtorch-dev` (headers in /usr/include/torch) or from an official
//    libtorch unpacked anywhere (`LIBTORCH=/path`, layout include/ + lib/). We check that it is present and
//    say exactly what to install when it is not.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function fail(message) {
  console.error(`moca-ts native build: ${message}`);
  process.exit(1);
}

const nodePrefix = path.dirname(path.dirname(process.execPath));
const nodeHeaders = path.join(nodePrefix, 'include', 'node', 'node_api.h');
const nodedirArgs = existsSync(nodeHeaders) ? [`--nodedir=${nodePrefix}`] : [];
if (nodedirArgs.length === 0) {
  console.warn(`moca-ts native build: Node headers not found at ${nodeHeaders}; node-gyp will try to download them.`);
}

const libtorch = process.env.LIBTORCH;
if (libtorch) {
  const header = path.join(libtorch, 'include', 'ATen', 'ATen.h');
  if (!existsSync(header)) fail(`LIBTORCH=${libtorch} does not look like libtorch (missing ${header}).`);
  const libdir = path.join(libtorch, 'lib');
  if (!existsSync(libdir) || !readdirSync(libdir).some((f) => f.startsWith('libtorch_cpu')))
    fail(`LIBTORCH=${libtorch}: no libtorch_cpu library in ${libdir}.`);
} else if (!existsSync('/usr/include/ATen/ATen.h') || !existsSync('/usr/include/torch/csrc/autograd/autograd.h')) {
  fail(
    'libtorch not found. Install Debian/Ubuntu libtorch with\n' +
      '    sudo apt-get install -y libtorch-dev libopenblas0-openmp\n' +
      'or unpack an official libtorch (CPU or CUDA) and set LIBTORCH=/path/to/libtorch.',
  );
}

// Multi-process training compiles against Gloo's headers (libtorch carries the library); without them the binding
// still builds, and creating a gloo process group says what to install.
const glooHeaders = [libtorch && path.join(libtorch, 'include', 'gloo', 'context.h'), '/usr/include/gloo/context.h'];
if (!glooHeaders.some((h) => h && existsSync(h))) {
  console.warn(
    'moca-ts native build: Gloo headers not found (sudo apt-get install -y libgloo-dev); ' +
      'the binding builds without the gloo backend for multi-process training.',
  );
}

let nodeGyp;
try {
  nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  fail('node-gyp is not installed; run `npm ci` first.');
}

const jobs = process.env.MOCA_BUILD_JOBS ?? 'max';
const args = [nodeGyp, 'rebuild', ...nodedirArgs, `--jobs=${jobs}`];
if (process.env.MOCA_DEBUG_BUILD) args.push('--debug');
const result = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit', env: process.env });
if (result.status !== 0) fail(`node-gyp failed with exit code ${result.status ?? result.signal}.`);
