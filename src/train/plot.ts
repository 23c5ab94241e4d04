// Dependency-free SVG line charts and the self-contained HTML training report built from them (no scripts, no
// external assets: the file opens offline and can be attached anywhere).

export interface Series {
  name: string;
  /** [x, y] pairs in drawing order; a non-finite y (NaN, ±Infinity, null) breaks the line there. */
  points: readonly (readonly [number, number | null])[];
  color?: string;
  /** Stroke width (default 1.5). */
  width?: number;
  /** Stroke opacity (default 1). */
  opacity?: number;
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixel size of the drawing (default 640 × 280). */
  width?: number;
  height?: number;
  /** Logarithmic y axis (ignored, i.e. linear, when any finite y is ≤ 0). */
  logY?: boolean;
  /** Approximate number of ticks per axis (default 6 on x, 5 on y). */
  xTicks?: number;
  yTicks?: number;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Escapes text for XML / HTML element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Step between "nice" ticks (1, 2 or 5 × 10^k) giving about `count` intervals over [min, max]. */
export function niceStep(min: number, max: number, count: number): number {
  const span = Math.abs(max - min);
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * mag;
}

/** Nice tick values covering [min, max] (the first ≤ min, the last ≥ max). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const step = niceStep(min, max, count);
  const start = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0, v = start; i < 1000; i++, v = start + i * step) {
    ticks.push(cleanFloat(v, step));
    if (v >= max - step * 1e-9) break;
  }
  return ticks;
}

function cleanFloat(v: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(20, digits)));
}

/** Compact tick / value label: integers as such, small or large magnitudes in exponent form. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential(2).split('e') as [string, string];
    return `${trimZeros(m)}e${Number(e)}`;
  }
  if (Number.isInteger(v)) return String(v);
  return trimZeros(v.toPrecision(4));
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function fmt(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/**
 * An SVG line chart (axes, ticks, grid, labels, legend) of several series. Every finite point of every series
 * appears exactly once in a `<polyline points="…">`; runs of points separated by non-finite values become
 * separate polylines, and an isolated point also gets a small circle so that it stays visible.
 */
export function lineChartSvg(series: readonly Series[], options: LineChartOptions = {}): string {
  const width = options.width ?? 640;
  const height = options.height ?? 280;
  const margin = { left: 64, right: 16, top: options.title ? 30 : 12, bottom: options.xLabel ? 44 : 28 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const finite = series.flatMap((s) => s.points.filter((p) => p[1] !== null && Number.isFinite(p[1]!)));
  const xs = finite.map((p) => p[0]);
  const ys = finite.map((p) => p[1] as number);
  const logY = (options.logY ?? false) && ys.length > 0 && ys.every((y) => y > 0);

  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (xMin === xMax) [xMin, xMax] = [xMin - 1, xMax + 1];
  const xTicks = niceTicks(xMin, xMax, options.xTicks ?? 6).filter((t) => t >= xMin - 1e-9 && t <= xMax + 1e-9);

  const ty = (y: number): number => (logY ? Math.log10(y) : y);
  let yMin = ys.length ? Math.min(...ys.map(ty)) : 0;
  let yMax = ys.length ? Math.max(...ys.map(ty)) : 1;
  if (yMin === yMax) {
    const pad = Math.abs(yMin) * 0.05 || 1;
    [yMin, yMax] = [yMin - pad, yMax + pad];
  }
  let yTicks: number[];
  if (logY) {
    yMin = Math.floor(yMin);
    yMax = Math.ceil(yMax);
    if (yMin === yMax) yMax = yMin + 1;
    yTicks = [];
    for (let e = yMin; e <= yMax; e++) yTicks.push(e);
  } else {
    yTicks = niceTicks(yMin, yMax, options.yTicks ?? 5);
    yMin = Math.min(yMin, yTicks[0]!);
    yMax = Math.max(yMax, yTicks[yTicks.length - 1]!);
  }

  const px = (x: number): number => margin.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number): number => margin.top + plotH - ((ty(y) - yMin) / (yMax - yMin)) * plotH;
  const pyT = (t: number): number => margin.top + plotH - ((t - yMin) / (yMax - yMin)) * plotH;

  const out: string[] = [];
  const label = options.title ?? series.map((s) => s.name).join(', ');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ` +
      `role="img" aria-label="${escapeXml(label)}" font-family="sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (options.title) {
    out.push(
      `<text x="${margin.left}" y="18" font-size="13" font-weight="bold" fill="#222">${escapeXml(options.title)}</text>`,
    );
  }
  // Grid and tick labels.
  out.push('<g stroke="#e5e5e5" stroke-width="1">');
  for (const t of yTicks)
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${fmt(pyT(t))}" y2="${fmt(pyT(t))}"/>`);
  for (const t of xTicks)
    out.push(`<line x1="${fmt(px(t))}" x2="${fmt(px(t))}" y1="${margin.top}" y2="${margin.top + plotH}"/>`);
  out.push('</g>');
  out.push('<g fill="#444">');
  for (const t of yTicks) {
    const text = logY ? formatTick(10 ** t) : formatTick(t);
    out.push(`<text x="${margin.left - 6}" y="${fmt(pyT(t) + 4)}" text-anchor="end">${escapeXml(text)}</text>`);
  }
  for (const t of xTicks) {
    out.push(
      `<text x="${fmt(px(t))}" y="${margin.top + plotH + 16}" text-anchor="middle">${escapeXml(formatTick(t))}</text>`,
    );
  }
  out.push('</g>');
  // Axes.
  out.push(
    `<path d="M${margin.left},${margin.top}V${margin.top + plotH}H${margin.left + plotW}" fill="none" stroke="#666" stroke-width="1"/>`,
  );
  if (options.xLabel) {
    out.push(
      `<text x="${fmt(margin.left + plotW / 2)}" y="${height - 8}" text-anchor="middle" fill="#222">${escapeXml(options.xLabel)}</text>`,
    );
  }
  if (options.yLabel) {
    const cy = fmt(margin.top + plotH / 2);
    out.push(
      `<text x="14" y="${cy}" text-anchor="middle" transform="rotate(-90 14 ${cy})" fill="#222">${escapeXml(options.yLabel)}</text>`,
    );
  }
  // Series.
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const stroke = `stroke="${escapeXml(color)}" stroke-width="${s.width ?? 1.5}"${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}`;
    const runs: [number, number][][] = [];
    let run: [number, number][] = [];
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y) || !Number.isFinite(x)) {
        if (run.length) runs.push(run);
        run = [];
      } else {
        run.push([px(x), py(y)]);
      }
    }
    if (run.length) runs.push(run);
    out.push(`<g data-series="${escapeXml(s.name)}">`);
    for (const r of runs) {
      out.push(
        `<polyline fill="none" ${stroke} stroke-linejoin="round" points="${r.map(([x, y]) => `${fmt(x)},${fmt(y)}`).join(' ')}"/>`,
      );
      if (r.length === 1)
        out.push(`<circle cx="${fmt(r[0]![0])}" cy="${fmt(r[0]![1])}" r="2" fill="${escapeXml(color)}"/>`);
    }
    out.push('</g>');
  });
  // Legend (top right, inside the plot).
  if (series.length > 1 || (series.length === 1 && !options.title)) {
    const lx = margin.left + plotW - 8;
    series.forEach((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length]!;
      const y = margin.top + 12 + i * 14;
      out.push(
        `<line x1="${lx - 18}" x2="${lx}" y1="${y - 4}" y2="${y - 4}" stroke="${escapeXml(color)}" stroke-width="2"/>` +
          `<text x="${lx - 22}" y="${y}" text-anchor="end" fill="#222">${escapeXml(s.name)}</text>`,
      );
    });
  }
  out.push('</svg>');
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ report

/** One row of metrics.jsonl as the report reads it. */
export type ReportRecord = Readonly<Record<string, number | boolean | null | undefined>> & { step: number };

export interface ReportOptions {
  title?: string;
  /** Lines shown under the title (run directory, status, …). */
  subtitle?: readonly string[];
  /** Shown as a key/value table. */
  summary?: Readonly<Record<string, string | number>>;
  /** Shown verbatim (pretty JSON) in a collapsible block. */
  config?: unknown;
  /** Most points per series; longer series are averaged in equal step buckets (default 2000). */
  maxPoints?: number;
  /** Timestamp shown in the footer (default now). */
  generatedAt?: Date;
}

/** Keys of a metrics record that are bookkeeping rather than curves. */
const NOT_CHARTED = new Set(['step', 'elapsed_s', 'micro_batches', 'skipped']);

/** Averages consecutive points into at most `max` buckets (x and y averaged over finite y). */
export function downsample(
  points: readonly (readonly [number, number | null])[],
  max: number,
): [number, number | null][] {
  if (points.length <= max) return points.map(([x, y]) => [x, y]);
  const out: [number, number | null][] = [];
  const size = points.length / max;
  for (let b = 0; b < max; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.floor((b + 1) * size);
    let sx = 0;
    let sy = 0;
    let n = 0;
    for (let i = lo; i < hi; i++) {
      const [x, y] = points[i]!;
      if (y !== null && Number.isFinite(y)) {
        sx += x;
        sy += y;
        n++;
      }
    }
    out.push(n > 0 ? [sx / n, sy / n] : [points[lo]![0], null]);
  }
  return out;
}

/** Exponential moving average that skips non-finite values (bias-corrected, as TensorBoard's smoothing). */
export function ema(points: readonly (readonly [number, number | null])[], alpha: number): [number, number | null][] {
  let avg = 0;
  let weight = 0;
  return points.map(([x, y]) => {
    if (y === null || !Number.isFinite(y)) return [x, null];
    avg = alpha * avg + (1 - alpha) * y;
    weight = alpha * weight + (1 - alpha);
    return [x, avg / weight];
  });
}

/** The names of the charts renderReportHtml draws for these records, in order. */
export function reportChartNames(records: readonly ReportRecord[]): string[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    for (const [k, v] of Object.entries(r)) {
      if (seen.has(k) || NOT_CHARTED.has(k) || typeof v !== 'number') continue;
      seen.add(k);
      keys.push(k);
    }
  }
  const first = ['loss'];
  const last = ['lr', 'grad_norm', 'tokens_per_s'];
  const middle = keys.filter((k) => !first.includes(k) && !last.includes(k));
  return [...first.filter((k) => seen.has(k)), ...middle, ...last.filter((k) => seen.has(k))];
}

/**
 * A self-contained HTML page: summary, then one inline SVG chart per metric (loss with a smoothed overlay,
 * each task metric, lr, grad norm, throughput) against the optimizer step.
 */
export function renderReportHtml(records: readonly ReportRecord[], options: ReportOptions = {}): string {
  const maxPoints = options.maxPoints ?? 2000;
  const title = options.title ?? 'Training report';
  const charts: string[] = [];
  for (const key of reportChartNames(records)) {
    const raw = records.map((r) => [r.step, typeof r[key] === 'number' ? (r[key] as number) : null] as const);
    const series: Series[] = [];
    if (key === 'loss' && raw.length >= 20) {
      series.push({ name: 'loss', points: downsample(raw, maxPoints), opacity: 0.35, width: 1 });
      series.push({ name: 'loss (EMA 0.9)', points: downsample(ema(raw, 0.9), maxPoints), color: PALETTE[0]! });
    } else {
      series.push({ name: key, points: downsample(raw, maxPoints) });
    }
    charts.push(
      `<figure>${lineChartSvg(series, { title: key, xLabel: 'step', yLabel: key, width: 640, height: 280 })}</figure>`,
    );
  }
  const summaryRows = Object.entries(options.summary ?? {})
    .map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(String(v))}</td></tr>`)
    .join('\n');
  const subtitle = (options.subtitle ?? []).map((l) => `<p class="sub">${escapeXml(l)}</p>`).join('\n');
  const config =
    options.config === undefined
      ? ''
      : `<details><summary>Configuration</summary><pre>${escapeXml(JSON.stringify(options.config, null, 2))}</pre></details>`;
  const when = (options.generatedAt ?? new Date()).toISOString();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 6px; }
.sub { margin: 2px 0; color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 14px 0; font-size: 13px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #e5e5e5; }
th { font-weight: normal; color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; background: #fff; }
pre { font-size: 12px; background: #fff; border: 1px solid #ddd; padding: 8px; overflow: auto; }
.empty { color: #777; }
</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
${subtitle}
${summaryRows ? `<table>\n${summaryRows}\n</table>` : ''}
${charts.length ? `<div class="charts">\n${charts.join('\n')}\n</div>` : '<p class="empty">No steps recorded yet.</p>'}
${config}
<p class="sub">Generated ${escapeXml(when)} from metrics.jsonl.</p>
</body>
</html>
`;
}
