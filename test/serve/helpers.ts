// Shared fixtures of the server tests: a tiny random model, small PNGs made from raw pixels, HTTP helpers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { initModelDirectory } from '../../src/embed/index.js';
import { MocaServer, type ServeOptions } from '../../src/serve/index.js';

export const BIN = fileURLToPath(new URL('../../../bin/moca.js', import.meta.url));
export const PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';

/** Image processor limits used by the tests (56×56 … 112×112 px → 4 … 16 merged tokens): small and fast. */
export const PIXELS = { minPixels: 56 * 56, maxPixels: 112 * 112 } as const;

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function tinyModel(dir: string, seed = 3): Promise<string> {
  const model = path.join(dir, 'model');
  await initModelDirectory(model, { preset: 'tiny', seed });
  return model;
}

/** A w×h PNG whose pixels are a deterministic pattern of `seed`. */
export async function png(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const x = i % width;
    const y = Math.floor(i / width);
    raw[i * 3] = (x * 7 + seed * 31) & 255;
    raw[i * 3 + 1] = (y * 5 + seed * 17) & 255;
    raw[i * 3 + 2] = ((x ^ y) * 3 + seed * 13) & 255;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

export function dataUri(bytes: Buffer, type = 'image/png'): string {
  return `data:${type};base64,${bytes.toString('base64')}`;
}

export async function startServer(options: ServeOptions): Promise<{ server: MocaServer; url: string }> {
  const server = await MocaServer.create({ port: 0, embedder: { ...PIXELS, threads: 1 }, ...options });
  const url = await server.listen();
  await server.ready();
  return { server, url };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Values of a Prometheus text exposition, by full series name (`name{labels}`). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Sum of the series of `name` whose labels contain every given `key="value"`. */
export function metricSum(metrics: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let s = 0;
  for (const [k, v] of metrics) {
    const base = k.includes('{') ? k.slice(0, k.indexOf('{')) : k;
    if (base !== name) continue;
    if (Object.entries(labels).every(([lk, lv]) => k.includes(`${lk}="${lv}"`))) s += v;
  }
  return s;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
