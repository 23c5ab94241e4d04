// Progress lines on stderr for long work: done/total, rate, ETA (stdout stays machine-readable).
export interface ProgressOptions {
  /** Unit name for the rate ("rows", "steps"). */
  unit?: string;
  /** Minimum milliseconds between lines (default 1000; the final line is always printed). */
  intervalMs?: number;
  stream?: NodeJS.WritableStream;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}:${String(sec).padStart(2, '0')}`;
}

export class Progress {
  private readonly start = Date.now();
  private last = 0;
  private readonly unit: string;
  private readonly interval: number;
  private readonly stream: NodeJS.WritableStream;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    options: ProgressOptions = {},
  ) {
    this.unit = options.unit ?? 'items';
    this.interval = options.intervalMs ?? 1000;
    this.stream = options.stream ?? process.stderr;
  }

  /** Reports `done` items so far; prints at most once per interval unless `force`. */
  update(done: number, extra = '', force = false): void {
    const now = Date.now();
    if (!force && now - this.last < this.interval) return;
    this.last = now;
    this.stream.write(this.line(done, extra, now) + '\n');
  }

  line(done: number, extra = '', now = Date.now()): string {
    const elapsed = (now - this.start) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const parts = [`${this.label}: ${done}${this.total === undefined ? '' : `/${this.total}`} ${this.unit}`];
    if (this.total) parts.push(`${((100 * done) / this.total).toFixed(1)}%`);
    parts.push(`${rate.toFixed(rate < 10 ? 2 : 1)} ${this.unit}/s`);
    if (this.total !== undefined && rate > 0) parts.push(`ETA ${formatDuration((this.total - done) / rate)}`);
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    if (extra) parts.push(extra);
    return parts.join(' · ');
  }
}
