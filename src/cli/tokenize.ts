// `moca tokenize`: {"id","text"} rows → {"id","ids"} rows with the model's tokenizer (no special tokens added).
import type { Command } from 'commander';

import { Tokenizer } from '../processing/tokenizer.js';
import { countJsonlRows, readJsonl } from '../util/jsonl.js';
import { AtomicLineWriter, ErrorLog } from '../util/output.js';
import { Progress } from '../util/progress.js';

interface TokenizeOptions {
  tokenizer: string;
  input: string;
  output: string;
  errors?: string;
  strict?: boolean;
}

export function registerTokenizeCommand(program: Command): void {
  program
    .command('tokenize')
    .description('tokenize JSON Lines {"id","text"} into {"id","ids"} (raw text: no BOS/EOS, no template)')
    .requiredOption('--tokenizer <dir>', 'directory with tokenizer.json (a model directory works)')
    .requiredOption('--input <file>', 'JSON Lines with "id" and "text"')
    .requiredOption('--output <file>', 'JSON Lines with "id" and "ids"')
    .option('--errors <file>', 'where failed rows are recorded (default: <output>.errors.jsonl)')
    .option('--strict', 'stop at the first bad row')
    .addHelpText('after', '\nExample:\n  $ moca tokenize --tokenizer ./moca-3b --input texts.jsonl --output ids.jsonl')
    .action(async (opts: TokenizeOptions) => {
      process.exitCode = await runTokenize(opts);
    });
}

async function runTokenize(opts: TokenizeOptions): Promise<number> {
  const tokenizer = Tokenizer.fromDir(opts.tokenizer);
  const total = await countJsonlRows(opts.input);
  const out = new AtomicLineWriter(opts.output);
  const errors = new ErrorLog(opts.errors ?? `${opts.output}.errors.jsonl`);
  const progress = new Progress('tokenize', total, { unit: 'rows' });
  let done = 0;
  for await (const rec of readJsonl(opts.input)) {
    done++;
    let failure: string | undefined;
    let id: unknown;
    if ('error' in rec) failure = rec.error;
    else {
      const v = rec.value as { id?: unknown; text?: unknown } | null;
      id = v?.id;
      if (v === null || typeof v !== 'object') failure = 'row must be a JSON object';
      else if (typeof v.id !== 'string' && typeof v.id !== 'number') failure = 'id must be a string or a number';
      else if (typeof v.text !== 'string') failure = 'text must be a string';
      else out.write(JSON.stringify({ id: v.id, ids: tokenizer.encode(v.text) }));
    }
    if (failure !== undefined) {
      errors.record({ ...(id === undefined ? {} : { id }), line: rec.line, error: failure });
      if (opts.strict) break;
    }
    progress.update(done);
  }
  errors.close();
  if (opts.strict && errors.count > 0) {
    out.abandon();
    console.error(`moca tokenize: stopped at the first bad row (--strict); see ${errors.file}`);
    return 1;
  }
  out.commit();
  console.error(
    `moca tokenize: ${done - errors.count} rows → ${opts.output}` +
      (errors.count ? `; ${errors.count} failed → ${errors.file}` : ''),
  );
  return errors.count > 0 ? 1 : 0;
}
