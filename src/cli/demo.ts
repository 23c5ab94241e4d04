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
          'moca demo: the full end-to-end demo (generated multimodal world → continual pre-training → contrastive',
          'fine-tuning → MMEB/ViDoRe-style evaluation, with the paper’s ablation in miniature) arrives with the demo',
          'issue. Built so far, and usable now:',
          '  moca init --preset tiny --output m            a random Qwen2.5-VL model (HF layout, no download)',
          '  moca train cpt --model m --data docs.jsonl --output runs/cpt       stage 1 (MLM + MAE)',
          '  moca train cl --model runs/cpt/final --data qa=pairs.jsonl --output runs/cl   stage 2 (InfoNCE, GradCache)',
          '  moca embed --model runs/cl/final --input rows.jsonl --output rows.emb.jsonl',
          `runtime: libtorch ${info.libtorchVersion}, ${info.numThreads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'}` +
            (info.openblasCoreType ? `, OpenBLAS kernels ${info.openblasCoreType}` : ''),
          'Run the tests with: bash scripts/setup.sh && npm test',
        ].join('\n'),
      );
    });
}
