// `moca init`: a randomly initialised model directory of a preset size, in the Hugging Face layout.
import type { Command } from 'commander';

import { initModelDirectory } from '../embed/index.js';
import type { PresetName } from '../models/index.js';
import { nonNegativeInt, oneOf } from './options.js';

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('write a randomly initialised Qwen2.5-VL model (config, weights, tokenizer, processor config)')
    .requiredOption('--output <dir>', 'directory to write')
    .option(
      '--preset <name>',
      'tiny | small | 3b | 7b (the real Qwen2.5-VL shapes)',
      oneOf(['tiny', 'small', '3b', '7b'] as const),
      'tiny',
    )
    .option(
      '--dtype <dtype>',
      'weight dtype (default float32 for tiny/small, bfloat16 for 3b/7b)',
      oneOf(['float32', 'bfloat16'] as const),
    )
    .option('--seed <n>', 'random seed', nonNegativeInt, 0)
    .addHelpText(
      'after',
      "\nThe tokenizer is a byte-level BPE without merges (256 byte tokens) plus Qwen2.5-VL's special tokens at\n" +
        'the ids the config expects. Example:\n  $ moca init --preset tiny --output ./tiny-moca',
    )
    .action(async (opts: { output: string; preset: PresetName; dtype?: 'float32' | 'bfloat16'; seed: number }) => {
      const t0 = Date.now();
      const config = await initModelDirectory(opts.output, {
        preset: opts.preset,
        seed: opts.seed,
        ...(opts.dtype === undefined ? {} : { dtype: opts.dtype }),
      });
      console.error(
        `moca init: ${opts.preset} model (hidden ${config.hiddenSize}, ${config.numHiddenLayers} layers, vision ` +
          `${config.vision.depth} blocks) written to ${opts.output} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
    });
}
