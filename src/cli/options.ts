// Option value parsers shared by the commands: invalid values fail with a one-line reason.
import { InvalidArgumentError, Option } from 'commander';

import { INFERENCE_DTYPES, type InferenceDtype } from '../models/index.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, got '${value}'`);
    }
    return value as T;
  };
}

/** `--dtype` of the commands that embed (`embed`, `serve`): the same choices and help text in both. */
export function inferenceDtypeOption(): Option {
  return new Option(
    '--dtype <dtype>',
    'inference precision: float32, bfloat16 (bf16 linear weights, f32 accumulation) or int8 (int8 linear weights, per-channel scales)',
  )
    .argParser(oneOf<InferenceDtype>(INFERENCE_DTYPES))
    .default('float32');
}
