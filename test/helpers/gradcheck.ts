// Finite-difference gradient checks in float64: autograd's gradients of sum(fn(...inputs) * w), with fixed
// random weights w so that every output element matters, against central differences of the same sum
// computed in plain JS from forward passes.
import assert from 'node:assert/strict';

import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';

export interface GradcheckOptions {
  /** Central-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance, scaled by |numeric| (default 1e-5). */
  rtol?: number;
  /** Seed of the output weights (default 1234). */
  seed?: number;
  /** Indices of the inputs to differentiate (default: every float64 input). */
  wrt?: readonly number[];
}

export interface GradcheckResult {
  analytic: Float64Array[];
  numeric: Float64Array[];
}

/** mulberry32: a small deterministic PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A float64 tensor of values uniform in [low, high), from a JS PRNG (torch's generator is left alone). */
export function randomInput(shape: readonly number[], seed: number, low = -1, high = 1): Tensor {
  const next = prng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float64Array.from({ length: n }, () => low + (high - low) * next());
  return torch.tensor(data, { shape });
}

/**
 * Compares analytic and numeric gradients elementwise: `|a - n| <= atol + rtol * |n|`.
 * Returns one line per problem (empty when they agree).
 */
export function compareGradients(
  analytic: readonly ArrayLike<number>[],
  numeric: readonly ArrayLike<number>[],
  tol: { atol: number; rtol: number },
  names: readonly string[] = [],
): string[] {
  const problems: string[] = [];
  if (analytic.length !== numeric.length) {
    return [`${analytic.length} analytic gradients but ${numeric.length} numeric ones`];
  }
  for (let i = 0; i < analytic.length; i++) {
    const a = analytic[i]!;
    const n = numeric[i]!;
    const name = names[i] ?? `input ${i}`;
    if (a.length !== n.length) {
      problems.push(`${name}: analytic gradient has ${a.length} elements, numeric ${n.length}`);
      continue;
    }
    for (let j = 0; j < a.length; j++) {
      const av = a[j]!;
      const nv = n[j]!;
      const ok = Number.isFinite(av) && Number.isFinite(nv) && Math.abs(av - nv) <= tol.atol + tol.rtol * Math.abs(nv);
      if (!ok) problems.push(`${name}[${j}]: analytic ${av}, numeric ${nv} (|diff| ${Math.abs(av - nv)})`);
    }
  }
  return problems;
}

function weightedSum(values: ArrayLike<number>, weights: Float64Array): number {
  let s = 0;
  for (let i = 0; i < weights.length; i++) s += values[i]! * weights[i]!;
  return s;
}

function forwardValues(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[]): number[] {
  return torch.scope(() => torch.noGrad(() => fn(...inputs).toArray()));
}

/**
 * Checks autograd's gradients of `fn` against central differences; throws an AssertionError listing the
 * elements that disagree. Every tensor it creates (including `fn`'s) is disposed before it returns.
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  options: GradcheckOptions = {},
): GradcheckResult {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-5, seed = 1234 } = options;
  const wrt = options.wrt ?? inputs.flatMap((t, i) => (t.dtype === 'float64' ? [i] : []));
  assert.ok(wrt.length > 0, 'gradcheck: nothing to differentiate');
  for (const i of wrt) {
    assert.equal(inputs[i]!.dtype, 'float64', `gradcheck: input ${i} must be float64`);
  }

  return torch.scope(() => {
    // Output shape and weights.
    const out0 = torch.noGrad(() => fn(...inputs));
    assert.equal(out0.dtype, 'float64', 'gradcheck: fn must return a float64 tensor');
    const outShape = [...out0.shape];
    const next = prng(seed);
    const weights = Float64Array.from({ length: out0.numel() }, () => (next() < 0.5 ? -1 : 1) * (0.5 + next()));
    const w = torch.tensor(weights, { shape: outShape });

    // Analytic gradients.
    const analytic = torch.scope(() => {
      const leaves = inputs.map((x, i) => (wrt.includes(i) ? x.detach().requiresGrad_(true) : x));
      const out = fn(...leaves);
      const loss = out.mul(w).sum();
      const grads = torch.grad(
        [loss],
        wrt.map((i) => leaves[i]!),
        { allowUnused: true },
      );
      return grads.map((g, k) => {
        const n = inputs[wrt[k]!]!.numel();
        return g === null ? new Float64Array(n) : Float64Array.from(g.toArray());
      });
    });

    // Central differences.
    const numeric = wrt.map((i) => {
      const x = inputs[i]!;
      const base = Float64Array.from(x.toArray());
      const shape = [...x.shape];
      const grad = new Float64Array(base.length);
      for (let j = 0; j < base.length; j++) {
        const at = (delta: number): number =>
          torch.scope(() => {
            const data = base.slice();
            data[j] = data[j]! + delta;
            const perturbed = inputs.map((t, k) => (k === i ? torch.tensor(data, { shape }) : t));
            return weightedSum(forwardValues(fn, perturbed), weights);
          });
        grad[j] = (at(eps) - at(-eps)) / (2 * eps);
      }
      return grad;
    });

    const problems = compareGradients(
      analytic,
      numeric,
      { atol, rtol },
      wrt.map((i) => `input ${i}`),
    );
    if (problems.length > 0) {
      const shown = problems.slice(0, 8).join('\n  ');
      const more = problems.length > 8 ? `\n  ... and ${problems.length - 8} more` : '';
      assert.fail(`gradcheck: ${problems.length} gradient elements disagree:\n  ${shown}${more}`);
    }
    return { analytic, numeric };
  });
}
