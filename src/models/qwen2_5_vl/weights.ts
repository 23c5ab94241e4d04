// Loading and saving Qwen2.5-VL weights in the Hugging Face layout.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import {
  CheckpointReader,
  isFloatingPoint,
  type DTypeLike,
  noGrad,
  noInit,
  saveCheckpoint,
  toDType,
  type Tensor,
  writeFileAtomic,
} from '../../torch/index.js';
import { type Qwen25VLConfig, loadConfig, toHfConfig } from './config.js';
import { type ModelOptions, Qwen25VLModel } from './model.js';

export class CheckpointMismatchError extends Error {}

/**
 * Maps a checkpoint key to this model's parameter name. transformers ≥ 4.52 saves `model.language_model.*` and
 * `model.visual.*`; ≤ 4.51 (and MoCa's checkpoints) `model.*` and `visual.*`.
 */
export function canonicalKey(key: string): string {
  if (key.startsWith('model.language_model.')) return 'model.' + key.slice('model.language_model.'.length);
  if (key.startsWith('model.visual.')) return 'visual.' + key.slice('model.visual.'.length);
  return key;
}

/** Prefixes of tensors a checkpoint may carry that an embedding model does not use (MoCa's stage-1 heads). */
export const IGNORED_PREFIXES = ['mae_decoder.', 'mae_proj.'];

export interface LoadOptions extends ModelOptions {
  /** Tensors whose names start with one of these are skipped silently (default: MoCa's MAE heads). */
  ignorePrefixes?: string[];
}

export interface LoadReport {
  loaded: number;
  /** Checkpoint tensors skipped on purpose (LM head when not built, ignored prefixes). */
  skipped: string[];
  /** Parameters that share the checkpoint's memory (no copy: same dtype, CPU). */
  zeroCopy: number;
}

/**
 * Builds the model from `dir` (config.json + safetensors, single or sharded) without initialising parameters,
 * then points each parameter at its checkpoint tensor: zero-copy (memory-mapped, copy-on-write) when dtype and
 * device match, otherwise converted. Missing or unexpected tensors and shape mismatches are errors listing the
 * names.
 */
export function loadQwen25VL(
  dir: string,
  options: LoadOptions = {},
): { model: Qwen25VLModel; config: Qwen25VLConfig; report: LoadReport } {
  const config = loadConfig(dir);
  const dtype = toDType(options.dtype ?? 'float32');
  const device = options.device ?? 'cpu';
  const model = noInit(() => new Qwen25VLModel(config, { ...options, dtype, device }));
  const reader = new CheckpointReader(dir);
  const report: LoadReport = { loaded: 0, skipped: [], zeroCopy: 0 };
  try {
    const params = model.stateDict();
    const ignore = options.ignorePrefixes ?? IGNORED_PREFIXES;
    const unexpected: string[] = [];
    const mismatched: string[] = [];
    const seen = new Set<string>();
    noGrad(() => {
      for (const key of reader.keys()) {
        const name = canonicalKey(key);
        if (ignore.some((p) => name.startsWith(p)) || (name === 'lm_head.weight' && model.lm_head === null)) {
          report.skipped.push(key);
          continue;
        }
        if (name === 'lm_head.weight' && config.tieWordEmbeddings) {
          // A tied head saved anyway: the embedding matrix already provides it.
          report.skipped.push(key);
          continue;
        }
        const target = params.get(name);
        if (target === undefined) {
          unexpected.push(key);
          continue;
        }
        const info = reader.info(key);
        if (!sameShape(info.shape, target.shape)) {
          mismatched.push(`${key}: checkpoint [${info.shape.join(', ')}] vs model [${target.shape.join(', ')}]`);
          seen.add(name); // present, just the wrong shape: not also "missing"
          continue;
        }
        const source = reader.get(key);
        try {
          if (source.dtype === dtype && device === 'cpu') {
            target.setData_(source);
            report.zeroCopy++;
          } else {
            const converted = source.to({ dtype, device });
            target.setData_(converted);
            converted.dispose();
          }
        } finally {
          source.dispose();
        }
        seen.add(name);
        report.loaded++;
      }
    });
    const missing = [...params.keys()].filter(
      (n) => !seen.has(n) && !(n === 'lm_head.weight' && config.tieWordEmbeddings),
    );
    if (unexpected.length || missing.length || mismatched.length) {
      const lines = [`${dir}: checkpoint does not match the Qwen2.5-VL model built from its config.json`];
      if (missing.length) lines.push(`  missing tensors (${missing.length}): ${preview(missing)}`);
      if (unexpected.length) lines.push(`  unexpected tensors (${unexpected.length}): ${preview(unexpected)}`);
      if (mismatched.length)
        lines.push(`  shape mismatches (${mismatched.length}):\n    ${mismatched.slice(0, 20).join('\n    ')}`);
      throw new CheckpointMismatchError(lines.join('\n'));
    }
  } finally {
    reader.close();
  }
  return { model, config, report };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function preview(names: string[]): string {
  return names.length > 12 ? `${names.slice(0, 12).join(', ')}, … (${names.length - 12} more)` : names.join(', ');
}

/**
 * Writes config.json and the weights (transformers 4.50 names; a tied LM head is not stored, as transformers
 * does). `dtype` casts floating-point tensors on the way out (default: keep the model's dtype).
 */
export function saveQwen25VL(
  dir: string,
  model: Qwen25VLModel,
  options: { dtype?: DTypeLike; maxShardBytes?: number; extraTensors?: Map<string, Tensor> } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const outDtype = options.dtype ? toDType(options.dtype) : model.dtype;
  const tensors = new Map<string, Tensor>();
  const owned: Tensor[] = [];
  try {
    for (const [name, t] of model.stateDict()) {
      if (name === 'lm_head.weight' && model.config.tieWordEmbeddings) continue;
      if (t.dtype !== outDtype && isFloatingPoint(t.dtype)) {
        const c = t.to(outDtype);
        owned.push(c);
        tensors.set(name, c);
      } else {
        tensors.set(name, t);
      }
    }
    for (const [name, t] of options.extraTensors ?? []) tensors.set(name, t);
    saveCheckpoint(dir, tensors, options.maxShardBytes === undefined ? {} : { maxShardBytes: options.maxShardBytes });
  } finally {
    for (const t of owned) t.dispose();
  }
  const hf = toHfConfig({ ...model.config, torchDtype: outDtype });
  const text = JSON.stringify(hf, null, 2) + '\n';
  writeFileAtomic(path.join(dir, 'config.json'), (fd) => writeFileSync(fd, text));
}
