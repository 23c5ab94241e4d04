// A minimal Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with labels.
// Small on purpose: the server needs a dozen series, not a client library.

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return String(x);
}

interface Metric {
  readonly name: string;
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${formatNumber(v)}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read?: () => number,
  ) {}

  set(v: number): void {
    this.value = v;
  }

  get(): number {
    return this.read ? this.read() : this.value;
  }

  render(): string {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${formatNumber(this.get())}`,
    ].join('\n');
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly buckets: readonly number[];

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
  ) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Count and sum of one series (for tests and summaries). */
  stats(labels: Labels = {}): { count: number; sum: number } {
    const s = this.series.get(labelKey(labels));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    const series =
      this.series.size > 0 ? this.series : new Map([['', { counts: this.buckets.map(() => 0), sum: 0, count: 0 }]]);
    for (const [k, s] of series) {
      const sep = k ? ',' : '';
      this.buckets.forEach((b, i) =>
        lines.push(`${this.name}_bucket{${k}${sep}le="${formatNumber(b)}"} ${s.counts[i]}`),
      );
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${formatNumber(s.sum)}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }

  gauge(name: string, help: string, read?: () => number): Gauge {
    return this.add(new Gauge(name, help, read));
  }

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }

  private add<T extends Metric>(m: T): T {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }

  render(): string {
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const TOKEN_BUCKETS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

/** The server's metrics. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = this.registry.counter('moca_http_requests_total', 'HTTP requests by route, method and status');
  readonly requestSeconds = this.registry.histogram(
    'moca_http_request_duration_seconds',
    'HTTP request latency by route',
    LATENCY_BUCKETS,
  );
  readonly errors = this.registry.counter(
    'moca_errors_total',
    'Refused or failed requests by reason (invalid, too_large, unauthorized, queue_full, timeout, shutting_down, inference, internal)',
  );
  readonly inputs = this.registry.counter(
    'moca_embedded_inputs_total',
    'Inputs embedded, by kind (text, image, interleaved)',
  );
  readonly tokens = this.registry.counter(
    'moca_embedded_tokens_total',
    'Tokens embedded (after image expansion and truncation)',
  );
  readonly batches = this.registry.counter('moca_batches_total', 'Forward passes run by the inference worker');
  readonly batchSize = this.registry.histogram('moca_batch_size', 'Inputs per forward pass', SIZE_BUCKETS);
  readonly batchRequests = this.registry.histogram(
    'moca_batch_requests',
    'Distinct HTTP requests sharing a forward pass',
    SIZE_BUCKETS,
  );
  readonly batchTokens = this.registry.histogram(
    'moca_batch_padded_tokens',
    'Padded tokens per forward pass (longest input × inputs)',
    TOKEN_BUCKETS,
  );
  readonly inferenceSeconds = this.registry.histogram(
    'moca_inference_duration_seconds',
    'Wall time of one forward pass in the worker (decoding included)',
    LATENCY_BUCKETS,
  );
  readonly queueSeconds = this.registry.histogram(
    'moca_queue_wait_seconds',
    'Time an input waited in the queue before its forward pass',
    LATENCY_BUCKETS,
  );
  readonly queueDepth: Gauge;
  readonly queueBytes: Gauge;
  readonly inflight: Gauge;
  readonly ready: Gauge;

  constructor(read: {
    queueDepth: () => number;
    queueBytes: () => number;
    inflight: () => number;
    ready: () => number;
  }) {
    this.queueDepth = this.registry.gauge('moca_queue_depth', 'Inputs waiting for a forward pass', read.queueDepth);
    this.queueBytes = this.registry.gauge('moca_queue_bytes', 'Image bytes held by queued inputs', read.queueBytes);
    this.inflight = this.registry.gauge('moca_inflight_batches', 'Forward passes running now', read.inflight);
    this.ready = this.registry.gauge('moca_model_ready', '1 when the model is loaded', read.ready);
    this.registry.gauge('process_resident_memory_bytes', 'Resident set size', () => process.memoryUsage.rss());
  }

  render(): string {
    return this.registry.render();
  }
}
