import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';

interface Trajectory {
  options: Record<string, unknown>;
  shapes: number[][];
  init: number[][];
  grads: number[][][];
  after: number[][][];
}
interface Fixture {
  cases: Record<string, Trajectory>;
  clip: { maxNorm: number; normType: number | 'inf'; grads: number[][]; total: number; clipped: number[][] }[];
}
const fixture = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/optim.json', import.meta.url), 'utf8'),
) as Fixture;

function closeArrays(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e}`);
  });
}

function params(init: number[][], shapes: number[][]): torch.Parameter[] {
  return init.map((v, i) => {
    const t = torch.tensor(Float64Array.from(v), { shape: shapes[i] });
    const p = new torch.Parameter(t);
    t.dispose();
    return p;
  });
}

function setGrads(ps: torch.Parameter[], grads: number[][]): void {
  ps.forEach((p, i) => {
    const g = torch.tensor(Float64Array.from(grads[i]!), { shape: p.shape });
    p.grad = g;
    g.dispose();
  });
}

describe('AdamW', () => {
  test('three steps on one scalar equal the hand-computed decoupled-decay Adam update', () => {
    const lr = 0.1;
    const [b1, b2] = [0.9, 0.99];
    const eps = 1e-8;
    const wd = 0.5;
    const grads = [0.5, -1.25, 2.0];
    // Hand-derived reference: AdamW (Loshchilov & Hutter) with PyTorch's bias correction.
    let w = 1.5;
    let m = 0;
    let v = 0;
    const expected: number[] = [];
    grads.forEach((g, k) => {
      const t = k + 1;
      w = w * (1 - lr * wd);
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      const mHat = m / (1 - b1 ** t);
      const denom = Math.sqrt(v) / Math.sqrt(1 - b2 ** t) + eps;
      w = w - (lr * mHat) / denom;
      expected.push(w);
    });
    const p = params([[1.5]], [[1]])[0]!;
    const opt = new torch.AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd });
    grads.forEach((g, k) => {
      setGrads([p], [[g]]);
      opt.step();
      closeArrays(p.toArray(), [expected[k]!], 1e-12, `step ${k + 1}`);
    });
    // First step of Adam moves by ~lr regardless of the gradient's scale: a sanity check on the reference.
    assert.ok(Math.abs(1.5 * (1 - lr * wd) - lr - expected[0]!) < 1e-6);
    opt.dispose();
    p.dispose();
  });

  for (const name of ['adamw_default', 'adamw_wd_betas', 'adamw_amsgrad']) {
    test(`matches torch.optim.AdamW trajectory (${name})`, () => {
      const c = fixture.cases[name]!;
      const ps = params(c.init, c.shapes);
      const opt = new torch.AdamW(ps, c.options as Partial<torch.AdamWOptions>);
      c.grads.forEach((g, step) => {
        setGrads(ps, g);
        opt.step();
        ps.forEach((p, i) =>
          closeArrays(p.toArray(), c.after[step]![i]!, 1e-12, `${name} step ${step + 1} param ${i}`),
        );
      });
      opt.dispose();
      ps.forEach((p) => p.dispose());
    });
  }

  test('parameters without a gradient are left untouched, and zeroGrad clears gradients', () => {
    const [a, b] = params([[1, 2], [3]], [[2], [1]]);
    const opt = new torch.AdamW([a!, b!], { lr: 0.1 });
    setGrads([a!], [[1, 1]]);
    opt.step();
    assert.deepEqual(b!.toArray(), [3]);
    assert.notDeepEqual(a!.toArray(), [1, 2]);
    opt.zeroGrad();
    assert.equal(a!.grad, null);
    opt.dispose();
  });

  test('stateDict/loadStateDict resumes with identical updates', () => {
    const c = fixture.cases.adamw_wd_betas!;
    const ps = params(c.init, c.shapes);
    const opt = new torch.AdamW(ps, c.options as Partial<torch.AdamWOptions>);
    for (let s = 0; s < 2; s++) {
      setGrads(ps, c.grads[s]!);
      opt.step();
    }
    // A fresh optimizer over copies of the parameters, restored from the first one's state.
    const copies = ps.map((p) => {
      const t = p.detach().clone();
      const q = new torch.Parameter(t);
      t.dispose();
      return q;
    });
    const restored = new torch.AdamW(copies, { lr: 123 });
    restored.loadStateDict(opt.stateDict());
    assert.equal(restored.paramGroups[0]!.options.lr, 0.05, 'group options restored');
    for (let s = 2; s < c.grads.length; s++) {
      setGrads(copies, c.grads[s]!);
      restored.step();
      copies.forEach((p, i) => closeArrays(p.toArray(), c.after[s]![i]!, 1e-12, `resumed step ${s + 1}`));
    }
    opt.dispose();
    restored.dispose();
  });

  test('rejects invalid hyper-parameters with a clear error', () => {
    assert.throws(() => new torch.AdamW([], { lr: -1 }), /Invalid learning rate/);
    assert.throws(() => new torch.AdamW([], { betas: [1, 0.9] }), /Invalid beta parameter at index 0/);
  });
});

describe('SGD', () => {
  for (const name of ['sgd_momentum_nesterov_wd', 'sgd_dampening']) {
    test(`matches torch.optim.SGD trajectory (${name})`, () => {
      const c = fixture.cases[name]!;
      const ps = params(c.init, c.shapes);
      const opt = new torch.SGD(ps, c.options as Partial<torch.SGDOptions>);
      c.grads.forEach((g, step) => {
        setGrads(ps, g);
        opt.step();
        ps.forEach((p, i) => closeArrays(p.toArray(), c.after[step]![i]!, 1e-12, `${name} step ${step + 1}`));
      });
      opt.dispose();
    });
  }

  test('plain SGD is w ← w − lr·g', () => {
    const [p] = params([[1, -2]], [[2]]);
    const opt = new torch.SGD([p!], { lr: 0.5 });
    setGrads([p!], [[4, -6]]);
    opt.step();
    assert.deepEqual(p!.toArray(), [1 - 2, -2 + 3]);
  });
});

describe('clipGradNorm', () => {
  fixture.clip.forEach((c, k) => {
    test(`matches torch.nn.utils.clip_grad_norm_ (case ${k}: max ${c.maxNorm}, p=${c.normType})`, () => {
      const shapes = c.grads.map((g) => [g.length]);
      const ps = params(
        c.grads.map((g) => g.map(() => 0)),
        shapes,
      );
      setGrads(ps, c.grads);
      const total = torch.clipGradNorm(ps, c.maxNorm, { normType: c.normType === 'inf' ? Infinity : c.normType });
      assert.ok(Math.abs(total - c.total) < 1e-10, `total ${total} vs ${c.total}`);
      ps.forEach((p, i) => {
        const g = p.grad!;
        closeArrays(g.toArray(), c.clipped[i]!, 1e-12, `clipped grad ${i}`);
        g.dispose();
      });
    });
  });

  test('hand case: gradients (3, 4) clipped to norm 1 become (0.6, 0.8)', () => {
    const [p] = params([[0, 0]], [[2]]);
    setGrads([p!], [[3, 4]]);
    const total = torch.clipGradNorm([p!], 1);
    assert.equal(total, 5);
    const g = p!.grad!;
    closeArrays(g.toArray(), [3 / (5 + 1e-6), 4 / (5 + 1e-6)], 1e-12, 'clipped');
  });
});

describe('learning-rate schedules', () => {
  test('linear warmup then linear decay to zero', () => {
    const f = torch.linearWarmupLinearDecay(10, 110);
    assert.deepEqual([0, 5, 10, 60, 110, 200].map(f), [0, 0.5, 1, 0.5, 0, 0]);
  });

  test('linear warmup then cosine decay', () => {
    const f = torch.linearWarmupCosineDecay(10, 110);
    assert.equal(f(5), 0.5);
    assert.equal(f(10), 1);
    assert.ok(Math.abs(f(60) - 0.5) < 1e-12);
    assert.ok(Math.abs(f(110)) < 1e-12);
  });

  test('LambdaLR drives the optimizer lr and resumes from its state', () => {
    const [p] = params([[1]], [[1]]);
    const opt = new torch.AdamW([p!], { lr: 2e-5 });
    const sched = new torch.LambdaLR(opt, torch.linearWarmupLinearDecay(4, 20));
    assert.equal(opt.paramGroups[0]!.options.lr, 0);
    sched.step();
    sched.step();
    assert.ok(Math.abs(sched.getLastLr()[0]! - 1e-5) < 1e-18);
    const saved = sched.stateDict();
    const opt2 = new torch.AdamW([p!], { lr: 2e-5 });
    const sched2 = new torch.LambdaLR(opt2, torch.linearWarmupLinearDecay(4, 20));
    sched2.loadStateDict(saved);
    assert.equal(sched2.getLastLr()[0], sched.getLastLr()[0]);
  });
});

describe('optimizer state files', () => {
  test('save/load through a file resumes AdamW exactly', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(tmpdir(), 'moca-opt-'));
    try {
      const c = fixture.cases.adamw_amsgrad!;
      const ps = params(c.init, c.shapes);
      const opt = new torch.AdamW(ps, c.options as Partial<torch.AdamWOptions>);
      setGrads(ps, c.grads[0]!);
      opt.step();
      const file = path.join(dir, 'optimizer.safetensors');
      torch.saveOptimizerState(file, opt);
      const copies = ps.map((p) => {
        const t = p.detach().clone();
        const q = new torch.Parameter(t);
        t.dispose();
        return q;
      });
      const restored = new torch.AdamW(copies, { lr: 1 });
      torch.loadOptimizerState(file, restored);
      for (let s = 1; s < c.grads.length; s++) {
        setGrads(copies, c.grads[s]!);
        restored.step();
      }
      copies.forEach((p, i) => closeArrays(p.toArray(), c.after[c.grads.length - 1]![i]!, 1e-12, `param ${i}`));
      assert.throws(
        () => torch.loadOptimizerState(file, new torch.SGD(copies)),
        /AdamW optimizer cannot be loaded into SGD/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
