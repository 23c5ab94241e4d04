// The `moca` command line. Sub-commands live in their own modules and register themselves here.
import { readFileSync } from 'node:fs';

import { Command, CommanderError } from 'commander';

import { registerDemoCommand } from './demo.js';
import { registerEmbedCommand } from './embed.js';
import { registerEvalCommand } from './eval.js';
import { registerInfoCommand } from './info.js';
import { registerInitCommand } from './init.js';
import { registerSearchCommands } from './search.js';
import { registerServeCommand } from './serve.js';
import { registerTokenizeCommand } from './tokenize.js';
import { registerTrainCommand } from './train.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('moca')
    .description(
      'MoCa bidirectional multimodal embeddings (Qwen2.5-VL) in TypeScript on libtorch:\n' +
        'train (continual pre-training, contrastive fine-tuning), embed, index, search, serve, evaluate.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError()
    .exitOverride();
  registerDemoCommand(program);
  registerEmbedCommand(program);
  registerTokenizeCommand(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  registerSearchCommands(program);
  registerServeCommand(program);
  registerInitCommand(program);
  registerInfoCommand(program);
  return program;
}

/** Runs the CLI; returns the process exit code. Errors are one line on stderr, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    // Commands report failures of individual rows through process.exitCode.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    console.error(`moca: ${(e as Error).message}`);
    return 1;
  }
}
