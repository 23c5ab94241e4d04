// `moca embed`: JSON Lines of inputs → JSON Lines of embeddings, same order; bad rows go to an errors file.
import path from 'node:path';

import type { Command } from 'commander';

import { Embedder, type EmbedInput } from '../embed/index.js';
import type { InferenceDtype } from '../models/index.js';
import { parseInputRow } from '../processing/inputs.js';
import { chunked, countJsonlRows, readJsonl } from '../util/jsonl.js';
import { AtomicLineWriter, ErrorLog } from '../util/output.js';
import { Progress } from '../util/progress.js';
import { inferenceDtypeOption, oneOf, positiveInt } from './options.js';

interface EmbedCommandOptions {
  model: string;
  input: string;
  output: string;
  batchSize: number;
  maxBatchTokens?: number;
  dtype: InferenceDtype;
  errors?: string;
  strict?: boolean;
  maxLength: number;
  pooling: 'mean' | 'last';
  attention: 'bidirectional' | 'causal';
  threads?: number;
  minPixels?: number;
  maxPixels?: number;
}

export function registerEmbedCommand(program: Command): void {
  program
    .command('embed')
    .description('embed JSON Lines rows (text, images, interleaved) into L2-normalised vectors')
    .requiredOption('--model <dir>', 'model directory (Hugging Face layout)')
    .requiredOption('--input <file>', 'JSON Lines: {"id","text","images"} or {"id","content":[...]} per line')
    .requiredOption('--output <file>', 'JSON Lines of {"id","embedding"} in input order')
    .option('--batch-size <n>', 'inputs per forward pass', positiveInt, 8)
    .option('--max-batch-tokens <n>', 'text + image tokens per forward pass (bounds memory)', positiveInt)
    .addOption(inferenceDtypeOption())
    .option('--errors <file>', 'where failed rows are recorded (default: <output>.errors.jsonl)')
    .option('--strict', 'stop at the first bad row')
    .option('--max-length <n>', 'tokens per input (a cut image is dropped whole)', positiveInt, 1280)
    .option('--pooling <mode>', 'pooling', oneOf(['mean', 'last'] as const), 'mean')
    .option('--attention <mode>', 'attention', oneOf(['bidirectional', 'causal'] as const), 'bidirectional')
    .option('--min-pixels <n>', 'override the image processor minimum pixels', positiveInt)
    .option('--max-pixels <n>', 'override the image processor maximum pixels', positiveInt)
    .option('--threads <n>', 'libtorch intra-op threads', positiveInt)
    .addHelpText(
      'after',
      [
        '',
        'Input rows (image paths relative to the input file):',
        '  {"id": "q1", "text": "<|vision_start|><|image_pad|><|vision_end|>\\nRepresent the given image.\\n", "images": ["img/a.png"]}',
        '  {"id": "q2", "content": [{"type": "image", "image": "img/a.png"}, {"type": "text", "text": "Represent the given image."}]}',
        '',
        'Example:',
        '  $ moca embed --model ./moca-3b --input queries.jsonl --output queries.emb.jsonl --batch-size 16',
        '',
        'Exit status is 1 when any row failed (see the errors file), 0 otherwise.',
      ].join('\n'),
    )
    .action(async (opts: EmbedCommandOptions) => {
      process.exitCode = await runEmbed(opts);
    });
}

async function runEmbed(opts: EmbedCommandOptions): Promise<number> {
  const embedder = await Embedder.load(opts.model, {
    dtype: opts.dtype,
    pooling: opts.pooling,
    attention: opts.attention,
    maxLength: opts.maxLength,
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    ...(opts.minPixels === undefined ? {} : { minPixels: opts.minPixels }),
    ...(opts.maxPixels === undefined ? {} : { maxPixels: opts.maxPixels }),
  });
  const baseDir = path.dirname(path.resolve(opts.input));
  const total = await countJsonlRows(opts.input);
  const out = new AtomicLineWriter(opts.output);
  const errors = new ErrorLog(opts.errors ?? `${opts.output}.errors.jsonl`);
  const progress = new Progress('embed', total, { unit: 'rows' });
  let done = 0;
  let written = 0;
  let stopped = false;
  try {
    for await (const chunk of chunked(readJsonl(opts.input), Math.max(64, opts.batchSize * 8))) {
      const rows: { id: string; line: number; input: EmbedInput }[] = [];
      for (const rec of chunk) {
        if ('error' in rec) {
          errors.record({ line: rec.line, error: rec.error });
          continue;
        }
        try {
          const row = parseInputRow(rec.value, { baseDir, index: rec.line - 1 });
          rows.push({
            id: row.id,
            line: rec.line,
            input: { text: row.text, images: row.images.map((r) => (r.kind === 'path' ? r.path : r.uri)) },
          });
        } catch (e) {
          const id = idOf(rec.value);
          errors.record({ ...(id === undefined ? {} : { id }), line: rec.line, error: (e as Error).message });
        }
      }
      if (opts.strict && errors.count > 0) {
        stopped = true;
        break;
      }
      const outcomes = await embedder.embedSettled(
        rows.map((r) => r.input),
        {
          batchSize: opts.batchSize,
          ...(opts.maxBatchTokens === undefined ? {} : { maxBatchTokens: opts.maxBatchTokens }),
        },
      );
      outcomes.forEach((o, i) => {
        const r = rows[i]!;
        if (o.ok) {
          out.write(JSON.stringify({ id: r.id, embedding: Array.from(o.embedding) }));
          written++;
        } else {
          errors.record({ id: r.id, line: r.line, error: o.error });
        }
      });
      done += chunk.length;
      progress.update(done, errors.count ? `${errors.count} failed` : '');
      if (opts.strict && errors.count > 0) {
        stopped = true;
        break;
      }
    }
  } catch (e) {
    out.abandon();
    errors.close();
    throw e;
  }
  errors.close();
  if (stopped) {
    out.abandon();
    console.error(`moca embed: stopped at the first bad row (--strict); see ${errors.file}`);
    return 1;
  }
  out.commit();
  console.error(
    `moca embed: ${written} embedded (dim ${embedder.dimension}) → ${opts.output}` +
      (errors.count ? `; ${errors.count} failed → ${errors.file}` : ''),
  );
  return errors.count > 0 ? 1 : 0;
}

function idOf(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object' && 'id' in value) {
    const id = (value as { id: unknown }).id;
    if (typeof id === 'string' || typeof id === 'number') return String(id);
  }
  return undefined;
}
