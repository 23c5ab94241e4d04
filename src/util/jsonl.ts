// Streaming JSON Lines input (never the whole file in memory) and line counting for progress totals.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export type JsonlRecord = { line: number; value: unknown } | { line: number; error: string; raw: string };

/** Yields each non-blank line (1-based line numbers), parsed, or with the parse error. */
export async function* readJsonl(file: string): AsyncGenerator<JsonlRecord> {
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text.trim() === '') continue;
    try {
      yield { line, value: JSON.parse(text) as unknown };
    } catch (e) {
      yield {
        line,
        error: `invalid JSON: ${(e as Error).message}`,
        raw: text.length > 200 ? text.slice(0, 200) + '…' : text,
      };
    }
  }
}

/** Groups an async iterable into arrays of at most `size`. */
export async function* chunked<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let buf: T[] = [];
  for await (const x of source) {
    buf.push(x);
    if (buf.length >= size) {
      yield buf;
      buf = [];
    }
  }
  if (buf.length > 0) yield buf;
}

/** Number of non-blank lines. */
export async function countJsonlRows(file: string): Promise<number> {
  let n = 0;
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const text of rl) if (text.trim() !== '') n++;
  return n;
}
