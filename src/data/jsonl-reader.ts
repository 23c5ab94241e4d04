// Streaming JSON Lines reader that knows the byte offset of every line, so a reader can be saved as
// (byte offset, line number) and resumed by seeking instead of re-reading the file from the start, and so a single
// row can be read again later (DataSource.fetch). Reads fixed-size chunks through a file handle: memory is one chunk
// plus the longest line, never the file. (src/util/jsonl.ts's readline-based reader cannot report byte offsets.)
import { open } from 'node:fs/promises';

export interface JsonlLine {
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Byte offset just past the line's terminating newline (where the next line starts). */
  next: number;
  /** 1-based line number, counting from `startLine` at `startOffset`. */
  line: number;
  /** The line without its `\n` (and a trailing `\r`). */
  text: string;
}

const CHUNK = 1 << 16;
const NL = 0x0a;
const utf8 = new TextDecoder('utf-8');

/** A line's text: UTF-8 (a leading byte-order mark dropped, as TextDecoder does), without a trailing `\r`. */
function lineText(bytes: Uint8Array): string {
  const text = utf8.decode(bytes);
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

/** Counters a test or a progress display can read: bytes actually read so far. */
export interface ReadCounter {
  bytesRead: number;
}

/**
 * Yields the lines of `file` from byte `startOffset` (which must be the start of a line) with their offsets;
 * blank lines are yielded too (the caller decides). `startLine` is the line number of the line at `startOffset`.
 */
export async function* readLinesWithOffsets(
  file: string,
  startOffset = 0,
  startLine = 1,
  counter?: ReadCounter,
): AsyncGenerator<JsonlLine> {
  const fh = await open(file, 'r');
  try {
    let pos = startOffset; // file position of the next read
    let lineStart = startOffset;
    let line = startLine;
    let pending: Buffer[] = []; // bytes of the current (unterminated) line
    let pendingLength = 0;
    const chunk = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, CHUNK, pos);
      if (counter) counter.bytesRead += bytesRead;
      if (bytesRead === 0) break;
      pos += bytesRead;
      let from = 0;
      for (;;) {
        const nl = chunk.indexOf(NL, from);
        if (nl < 0 || nl >= bytesRead) break;
        const piece = chunk.subarray(from, nl);
        const bytes = pendingLength === 0 ? piece : Buffer.concat([...pending, piece], pendingLength + piece.length);
        pending = [];
        pendingLength = 0;
        const next = lineStart + bytes.length + 1;
        const text = lineText(bytes);
        yield { offset: lineStart, next, line, text };
        lineStart = next;
        line++;
        from = nl + 1;
      }
      if (from < bytesRead) {
        // Copy: `chunk` is reused by the next read.
        const rest = Buffer.from(chunk.subarray(from, bytesRead));
        pending.push(rest);
        pendingLength += rest.length;
      }
    }
    if (pendingLength > 0) {
      const bytes = Buffer.concat(pending, pendingLength);
      yield { offset: lineStart, next: lineStart + bytes.length, line, text: lineText(bytes) };
    }
  } finally {
    await fh.close();
  }
}

/** Reads the one line starting at byte `offset` (for re-reading a saved row). */
export async function readLineAt(file: string, offset: number): Promise<string | undefined> {
  for await (const l of readLinesWithOffsets(file, offset)) return l.text;
  return undefined;
}
