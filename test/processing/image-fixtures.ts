// Access to the PIL/PyTorch reference fixtures written by tools/gen_image_fixtures.py.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { RgbImage } from '../../src/processing/image/index.js';

/** test/fixtures/image/ (tests run from dist/test/processing/). */
export const FIXTURE_DIR = fileURLToPath(new URL('../../../test/fixtures/image/', import.meta.url));

export interface DecodeCase {
  input: string;
  pilMode: string;
  applyExifOrientation: boolean;
  width: number;
  height: number;
  expected: string;
  lossy: boolean;
}

export interface ResizeCase {
  input: string;
  inWidth: number;
  inHeight: number;
  width: number;
  height: number;
  expected: string;
}

export interface SmartResizeCase {
  height: number;
  width: number;
  factor: number;
  minPixels: number;
  maxPixels: number;
  result?: [number, number];
  error?: string;
}

export interface ProcessorCase {
  input: string;
  minPixels: number;
  maxPixels: number;
  gridThw: [number, number, number];
  /** Full pixel_values (small limits). */
  pixelValues?: string;
  /** MoCa limits: digest, sum and a few rows only. */
  sha256?: string;
  sum?: number;
  sampleRows?: number[];
  sampleRowValues?: string;
}

export interface Manifest {
  pillow: string;
  decode: DecodeCase[];
  resize: ResizeCase[];
  smartResize: SmartResizeCase[];
  processor: ProcessorCase[];
}

let cached: Manifest | undefined;
export function manifest(): Manifest {
  cached ??= JSON.parse(readFileSync(FIXTURE_DIR + 'manifest.json', 'utf8')) as Manifest;
  return cached;
}

export function fixturePath(rel: string): string {
  return FIXTURE_DIR + rel;
}

export function readBytes(rel: string): Uint8Array {
  const b = readFileSync(fixturePath(rel));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function readRgb(rel: string, width: number, height: number): RgbImage {
  const data = readBytes(rel);
  if (data.length !== width * height * 3)
    throw new Error(`${rel}: ${data.length} bytes, expected ${width}×${height}×3`);
  return { width, height, data };
}

/** Little-endian float32 file → Float32Array (copied, so alignment does not matter). */
export function readF32(rel: string): Float32Array {
  const b = readFileSync(fixturePath(rel));
  const out = new Float32Array(b.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

/** Largest |a[i] - b[i]| and where it occurs (arrays must have equal length). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; at: number } {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let max = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max || Number.isNaN(d)) {
      max = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  return { max, at };
}
