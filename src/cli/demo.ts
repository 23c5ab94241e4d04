// `moca demo`: the end-to-end MoCa demo (generated multimodal world, both training stages, evaluation).
import type { Command } from 'commander';

import { buildInfo } from '../torch/index.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run MoCa end to end on a generated multimodal world (no downloads)')
    .addHelpText('after', '\nExample:\n  $ moca demo')
    .action(() => {
      const info = buildInfo();
      console.log(
        [
          'moca demo: the end-to-end demo (generated multimodal world → continual pre-training → contrastive',
          'fine-tuning → MMEB/ViDoRe-style evaluation) arrives with the demo issue; what is built so far is the',
          'tensor runtime it runs on.',
          `runtime: libtorch ${info.libtorchVersion}, ${info.numThreads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'}` +
            (info.openblasCoreType ? `, OpenBLAS kernels ${info.openblasCoreType}` : ''),
          'Run the tests with: bash scripts/setup.sh && npm test',
        ].join('\n'),
      );
    });
}
