// Output files of batch jobs: results written to `<file>.partial` and renamed when complete (a reader never
// sees a half-written result file), and an errors file that records every failed row.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

export class AtomicLineWriter {
  private fd: number;
  private readonly tmp: string;

  constructor(readonly file: string) {
    this.tmp = `${file}.partial`;
    this.fd = openSync(this.tmp, 'w');
  }

  write(line: string): void {
    writeSync(this.fd, line.endsWith('\n') ? line : line + '\n');
  }

  /** Flushes and moves the file into place. */
  commit(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.tmp, this.file);
  }

  /** Leaves the partial file for inspection (the final name is not created). */
  abandon(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** JSON Lines of `{...context, error}` records, created on first use. */
export class ErrorLog {
  private fd = -1;
  count = 0;

  constructor(readonly file: string) {
    // A stale errors file from an earlier run would be misleading.
    if (existsSync(file)) unlinkSync(file);
  }

  record(entry: Record<string, unknown>): void {
    if (this.fd < 0) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = openSync(this.file, 'w');
    }
    writeSync(this.fd, JSON.stringify(entry) + '\n');
    this.count++;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
