// Large-model check: load time, embedding time and peak RSS of a real-shape (3B / 7B) random Qwen2.5-VL in bf16.
// Usage: node dist/bench/large-model.js [--preset 3b|7b] [--dir DIR] [--threads N]
// The model directory is created once with `moca init` (≈7.5 GB for 3B) and reused. The measurement runs in a
// fresh child process so that its peak RSS (VmHWM) is the load + embed alone. One JSON line on stdout.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { readRss } from './harness.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function measure(dir: string, threads: number): Promise<Record<string, unknown>> {
  const { Embedder } = await import('../src/embed/index.js');
  const t0 = performance.now();
  const embedder = await Embedder.load(dir, { dtype: 'bfloat16', threads });
  const loadMs = performance.now() - t0;
  const rssAfterLoad = readRss('self').currentMiB;
  const text = 'A photograph of a cat and a dog sitting next to each other on a sofa. '.repeat(8);
  const t1 = performance.now();
  const [e] = await embedder.embed([text]);
  const textMs = performance.now() - t1;
  const image = { width: 448, height: 448, data: new Uint8Array(448 * 448 * 3).fill(128) };
  const t2 = performance.now();
  await embedder.embed([
    { text: '<|vision_start|><|image_pad|><|vision_end|>\nRepresent the given image.\n', images: [image] },
  ]);
  const imageMs = performance.now() - t2;
  return {
    load_ms: Math.round(loadMs),
    rss_after_load_mib: rssAfterLoad === null ? null : Math.round(rssAfterLoad),
    text_tokens: embedder.tokenizer.encode(text).length,
    embed_text_ms: Math.round(textMs),
    embed_image_ms: Math.round(imageMs),
    dim: e!.length,
    peak_rss_mib: Math.round(readRss('self').peakMiB ?? NaN),
  };
}

async function main(): Promise<void> {
  const preset = arg('preset', '3b');
  const dir = arg('dir', path.join(os.tmpdir(), `moca-${preset}-random`));
  const threads = Number(arg('threads', String(os.availableParallelism())));
  if (process.argv.includes('--child')) {
    process.stdout.write(JSON.stringify(await measure(dir, threads)) + '\n');
    return;
  }
  const bin = fileURLToPath(new URL('../../bin/moca.js', import.meta.url));
  let initMs: number | null = null;
  if (!existsSync(path.join(dir, 'config.json'))) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'init', '--preset', preset, '--output', dir], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('moca init failed');
    initMs = Math.round(performance.now() - t0);
  }
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(
    process.execPath,
    [self, '--child', '--preset', preset, '--dir', dir, '--threads', String(threads)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  if (child.status !== 0) throw new Error(`measurement failed (exit ${child.status})`);
  const result = JSON.parse(child.stdout.trim()) as Record<string, unknown>;
  process.stdout.write(
    JSON.stringify({ bench: 'large-model', preset, dtype: 'bfloat16', threads, init_ms: initMs, ...result }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`large-model failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
