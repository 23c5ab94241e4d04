// `moca info`: what the runtime was built with and what it sees (threads, BLAS kernels, CUDA).
import type { Command } from 'commander';

import { buildInfo } from '../torch/index.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print the tensor runtime build information as JSON (libtorch version, threads, CUDA)')
    .addHelpText('after', '\nExample:\n  $ moca info')
    .action(() => {
      console.log(JSON.stringify({ node: process.version, ...buildInfo() }, null, 2));
    });
}
