// `moca demo`: MoCa end to end on a generated multimodal world, with the paper's ablation in miniature.
import path from 'node:path';

import { type Command, Option } from 'commander';

import { ARM_NAMES, type ArmName, type DemoScale } from '../demo/config.js';
import { buildInfo } from '../torch/index.js';
import { positiveInt } from './options.js';

interface DemoCommandOptions {
  output: string;
  quick?: boolean;
  full?: boolean;
  seeds: string;
  worldSeed: number;
  arms?: string;
  threads?: number;
  index: boolean;
}

function parseSeeds(value: string): number[] {
  const seeds = value.split(',').map((s) => Number(s.trim()));
  if (seeds.length === 0 || !seeds.every((s) => Number.isSafeInteger(s) && s >= 0))
    throw new Error(`--seeds: expected a comma-separated list of non-negative integers, got '${value}'`);
  if (new Set(seeds).size !== seeds.length) throw new Error(`--seeds: repeated seed in '${value}'`);
  return seeds;
}

function parseArms(value: string | undefined): ArmName[] {
  if (value === undefined || value === '') return [];
  const arms = value.split(',').map((s) => s.trim());
  for (const a of arms)
    if (!(ARM_NAMES as readonly string[]).includes(a))
      throw new Error(`--arms: unknown arm '${a}' (choose from ${ARM_NAMES.join(', ')})`);
  return arms as ArmName[];
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'MoCa end to end on a generated multimodal world (no downloads): causal base → A: contrastive fine-tuning ' +
        'only vs B: continual pre-training + the same fine-tuning → evaluation, index, HTML report',
    )
    .option('--output <dir>', 'where the world, models, evaluations and report go', 'moca-demo')
    .addOption(new Option('--quick', 'smoke run (≤ 3 minutes on 2 cores)').conflicts('full'))
    .option('--full', 'longer training, better models (about an hour on 2 cores)')
    .option('--seeds <list>', 'training seeds (comma-separated); 3 or more give a spread', '1')
    .option('--world-seed <n>', 'seed of the generated world', positiveInt, 1)
    .option('--arms <list>', `extra arms: ${ARM_NAMES.filter((a) => a !== 'cl-only' && a !== 'moca').join(', ')}`)
    .option('--threads <n>', 'libtorch intra-op threads (default 2)', positiveInt)
    .option('--no-index', 'skip the vector index and example searches')
    .addHelpText(
      'after',
      '\nRunning it again with the same --output continues where it stopped (finished stages are reused).\n' +
        'Examples:\n  $ moca demo\n  $ moca demo --quick\n  $ moca demo --seeds 1,2,3 --arms moca-no-mlm,moca-no-mae',
    )
    .action(async (opts: DemoCommandOptions) => {
      const scale: DemoScale = opts.quick ? 'quick' : opts.full ? 'full' : 'default';
      const info = buildInfo();
      process.stderr.write(
        `moca demo: scale ${scale}; libtorch ${info.libtorchVersion}, ${opts.threads ?? 2} threads` +
          (info.openblasCoreType ? `, OpenBLAS ${info.openblasCoreType}` : '') +
          '\n',
      );
      // Loaded on use: the demo pulls in the world generator, the trainers and the index, which other commands
      // do not need.
      const { DemoInterrupted, renderDemoMarkdown, runDemo, writeDemoReport } = await import('../demo/index.js');
      try {
        const run = await runDemo({
          output: opts.output,
          scale,
          seeds: parseSeeds(opts.seeds),
          worldSeed: opts.worldSeed,
          arms: parseArms(opts.arms),
          ...(opts.threads === undefined ? {} : { threads: opts.threads }),
          noIndex: !opts.index,
        });
        const out = path.resolve(opts.output);
        const files = writeDemoReport(out, run);
        process.stdout.write('\n' + renderDemoMarkdown(run) + '\n');
        if (run.search) {
          process.stdout.write('## Example searches (MoCa model)\n\n');
          for (const ex of run.search.examples) {
            const top = ex.results
              .slice(0, 3)
              .map((h) => `${h.id}${h.relevant ? ' ✓' : ''} (${h.score.toFixed(3)})`)
              .join(', ');
            process.stdout.write(`- "${ex.query}": ${top}\n`);
          }
          process.stdout.write('\n');
        }
        process.stdout.write('## Files\n\n');
        for (const [what, where] of Object.entries(files)) process.stdout.write(`- ${what}: ${where}\n`);
        process.stdout.write(
          `\nNext: train on your own data (docs/training.md), evaluate (docs/evaluation.md), serve:\n` +
            `  npx moca serve --model ${path.relative(process.cwd(), run.runs.find((r) => r.arm === 'moca')!.model)}` +
            (run.search ? ` --index ${path.relative(process.cwd(), run.search.index)}` : '') +
            '\n',
        );
      } catch (e) {
        if (e instanceof DemoInterrupted) {
          process.stderr.write(`moca demo: ${e.message}\n`);
          process.exitCode = 130;
          return;
        }
        throw e;
      }
    });
}
