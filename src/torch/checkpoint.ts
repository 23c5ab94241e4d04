// Hugging Face checkpoint layout: `model.safetensors`, or `model.safetensors.index.json` + shards.
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { itemSize } from './dtype.js';
import { SafetensorsError, SafetensorsFile, type TensorInfo, saveSafetensors, writeFileAtomic } from './safetensors.js';
import type { Tensor } from './tensor.js';

export const SAFE_WEIGHTS_NAME = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';

/** Lazy access to the tensors of a checkpoint directory (single file or sharded). */
export class CheckpointReader {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly location = new Map<string, string>();

  constructor(readonly dir: string) {
    const single = path.join(dir, SAFE_WEIGHTS_NAME);
    const index = path.join(dir, SAFE_WEIGHTS_INDEX_NAME);
    if (existsSync(index)) {
      let parsed: { weight_map?: Record<string, string> };
      try {
        parsed = JSON.parse(readFileSync(index, 'utf8')) as typeof parsed;
      } catch (e) {
        throw new SafetensorsError(`${index}: not valid JSON (${(e as Error).message})`);
      }
      if (!parsed.weight_map || typeof parsed.weight_map !== 'object') {
        throw new SafetensorsError(`${index}: missing "weight_map"`);
      }
      for (const [name, shard] of Object.entries(parsed.weight_map)) {
        if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
          throw new SafetensorsError(`${index}: weight_map entry for '${name}' is not a shard file name`);
        }
        this.location.set(name, shard);
      }
      for (const shard of new Set(this.location.values())) {
        const f = SafetensorsFile.open(path.join(dir, shard));
        this.files.set(shard, f);
      }
      for (const [name, shard] of this.location) {
        if (!this.files.get(shard)!.has(name)) {
          throw new SafetensorsError(`${index}: '${name}' is mapped to ${shard}, which does not contain it`);
        }
      }
    } else if (existsSync(single)) {
      const f = SafetensorsFile.open(single);
      this.files.set(SAFE_WEIGHTS_NAME, f);
      for (const k of f.keys()) this.location.set(k, SAFE_WEIGHTS_NAME);
    } else {
      throw new SafetensorsError(`${dir}: no ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME} found`);
    }
  }

  keys(): string[] {
    return [...this.location.keys()];
  }

  has(name: string): boolean {
    return this.location.has(name);
  }

  info(name: string): TensorInfo {
    const shard = this.location.get(name);
    if (shard === undefined) throw new SafetensorsError(`${this.dir}: checkpoint has no tensor '${name}'`);
    return this.files.get(shard)!.tensors.get(name)!;
  }

  /** A memory-mapped CPU tensor (dispose it when copied into the model). */
  get(name: string): Tensor {
    const shard = this.location.get(name);
    if (shard === undefined) throw new SafetensorsError(`${this.dir}: checkpoint has no tensor '${name}'`);
    return this.files.get(shard)!.get(name);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

/**
 * Saves tensors in the Hugging Face layout, sharding above `maxShardBytes` (default 5 GB, as transformers).
 * Each file is written atomically and the index last; shards of an earlier save that are no longer
 * referenced are removed.
 */
export function saveCheckpoint(
  dir: string,
  tensors: Map<string, Tensor>,
  options: { maxShardBytes?: number; metadata?: Record<string, string> } = {},
): string[] {
  const maxShard = options.maxShardBytes ?? 5_000_000_000;
  const metadata = { format: 'pt', ...(options.metadata ?? {}) };
  const shards: Map<string, Tensor>[] = [new Map()];
  let current = 0;
  let total = 0;
  for (const [name, t] of tensors) {
    const bytes = t.numel() * itemSize(t.dtype);
    total += bytes;
    if (current > 0 && current + bytes > maxShard) {
      shards.push(new Map());
      current = 0;
    }
    shards[shards.length - 1]!.set(name, t);
    current += bytes;
  }
  const written: string[] = [];
  if (shards.length === 1) {
    saveSafetensors(path.join(dir, SAFE_WEIGHTS_NAME), shards[0]!, metadata);
    written.push(SAFE_WEIGHTS_NAME);
  } else {
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      saveSafetensors(path.join(dir, name), shard, metadata);
      for (const k of shard.keys()) weightMap[k] = name;
      written.push(name);
    });
    const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n';
    writeFileAtomic(path.join(dir, SAFE_WEIGHTS_INDEX_NAME), (fd) => writeFileSync(fd, index));
    written.push(SAFE_WEIGHTS_INDEX_NAME);
  }
  for (const f of readdirSync(dir)) {
    const stale =
      (/^model-\d{5}-of-\d{5}\.safetensors$/.test(f) || f === SAFE_WEIGHTS_NAME || f === SAFE_WEIGHTS_INDEX_NAME) &&
      !written.includes(f);
    if (stale) unlinkSync(path.join(dir, f));
  }
  return written;
}
