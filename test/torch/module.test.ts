import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';

class Block extends torch.Module {
  q_proj = new torch.Linear(4, 4);
  norm = new torch.RMSNorm(4);
  forward(x: torch.Tensor): torch.Tensor {
    return this.q_proj.forward(this.norm.forward(x));
  }
}

class TinyLM extends torch.Module {
  embed_tokens = new torch.Embedding(10, 4);
  layers = new torch.ModuleList([new Block(), new Block()]);
  lm_head = new torch.Linear(4, 10, { bias: false });
  constructor(tie: boolean) {
    super();
    if (tie) this.lm_head.weight = this.embed_tokens.weight;
    this.registerBuffer('inv_freq', torch.arange(0, 4, 2, { dtype: 'float32' }), false);
    this.registerBuffer('position_scale', torch.ones([1]));
  }
}

describe('Module', () => {
  test('parameters are named by attribute path, ModuleList children by index', () => {
    const m = new TinyLM(false);
    assert.deepEqual(
      m.namedParameters().map(([n]) => n),
      [
        'embed_tokens.weight',
        'layers.0.q_proj.weight',
        'layers.0.q_proj.bias',
        'layers.0.norm.weight',
        'layers.1.q_proj.weight',
        'layers.1.q_proj.bias',
        'layers.1.norm.weight',
        'lm_head.weight',
      ],
    );
    assert.equal(m.numParameters(), 40 + 2 * (16 + 4 + 4) + 40);
  });

  test('tied weights are one parameter but appear under both names in the state dict', () => {
    const m = new TinyLM(true);
    assert.equal(m.parameters().length, 7);
    const sd = m.stateDict();
    assert.ok(sd.has('lm_head.weight') && sd.has('embed_tokens.weight'));
    assert.equal(sd.get('lm_head.weight'), sd.get('embed_tokens.weight'));
  });

  test('state dict holds persistent buffers only', () => {
    const keys = [...new TinyLM(false).stateDict().keys()];
    assert.ok(keys.includes('position_scale'));
    assert.ok(!keys.includes('inv_freq'));
  });

  test('loadStateDict copies values; strict mode reports missing and unexpected keys', () => {
    const a = new TinyLM(false);
    const b = new TinyLM(false);
    b.loadStateDict(a.stateDict());
    for (const [name, p] of a.namedParameters()) {
      assert.ok(p.equal(b.stateDict().get(name)!), name);
    }
    const partial = new Map(a.stateDict());
    partial.delete('lm_head.weight');
    partial.set('extra.bias', torch.zeros([1]));
    assert.throws(
      () => b.loadStateDict(partial),
      (e: Error) =>
        e instanceof torch.StateDictError &&
        /missing keys \(1\): lm_head\.weight/.test(e.message) &&
        /unexpected keys \(1\): extra\.bias/.test(e.message),
    );
    const res = b.loadStateDict(partial, { strict: false });
    assert.deepEqual(res, { missingKeys: ['lm_head.weight'], unexpectedKeys: ['extra.bias'] });
  });

  test('a shape mismatch names the key and both shapes', () => {
    const m = new TinyLM(false);
    const sd = new Map(m.stateDict());
    sd.set('layers.1.q_proj.weight', torch.zeros([4, 5]));
    assert.throws(() => m.loadStateDict(sd), /layers\.1\.q_proj\.weight: checkpoint \[4, 5\] vs model \[4, 4\]/);
  });

  test('loadStateDict casts dtype (bf16 checkpoint into f32 model)', () => {
    const m = new Block();
    const sd = new Map([...m.stateDict()].map(([k, v]) => [k, v.to('bfloat16')]));
    sd.set('norm.weight', torch.full([4], 0.5, { dtype: 'bfloat16' }));
    m.loadStateDict(sd);
    assert.equal(m.norm.weight.dtype, 'float32');
    assert.deepEqual(m.norm.weight.toArray(), [0.5, 0.5, 0.5, 0.5]);
  });

  test('requiresGrad_(false) freezes: backward leaves frozen grads empty', () => {
    const m = new Block();
    m.norm.requiresGrad_(false);
    const y = m.forward(torch.randn([2, 4])).sum();
    y.backward();
    assert.equal(m.norm.weight.grad, null);
    assert.notEqual(m.q_proj.weight.grad, null);
    assert.equal(m.numParameters({ trainableOnly: true }), 20);
  });

  test('train()/eval() propagate to children', () => {
    const m = new TinyLM(false);
    m.eval();
    assert.ok(m.namedModules().every(([, c]) => !c.training));
    m.train();
    assert.ok(m.namedModules().every(([, c]) => c.training));
  });

  test('to(dtype) converts in place: the same Parameter objects, new dtype, optimizer still bound', () => {
    const m = new Block();
    const before = m.q_proj.weight;
    const value = before.toArray();
    m.to({ dtype: 'float64' });
    assert.equal(m.q_proj.weight, before);
    assert.equal(before.dtype, 'float64');
    assert.ok(before.requiresGrad);
    before.toArray().forEach((v, i) => assert.ok(Math.abs(v - value[i]!) < 1e-7));
  });

  test('Linear is initialised like torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in))', () => {
    torch.manualSeed(3);
    const l = new torch.Linear(64, 128);
    const bound = 1 / Math.sqrt(64);
    const w = l.weight.toArray();
    assert.ok(w.every((v) => Math.abs(v) <= bound));
    // Uniform on [-b, b] has variance b²/3.
    const variance = w.reduce((s, v) => s + v * v, 0) / w.length;
    assert.ok(Math.abs(variance - (bound * bound) / 3) < 0.1 * ((bound * bound) / 3));
    assert.ok(l.bias!.toArray().every((v) => Math.abs(v) <= bound));
  });

  test('zeroGrad drops gradients', () => {
    const m = new Block();
    m.forward(torch.randn([1, 4]))
      .sum()
      .backward();
    m.zeroGrad();
    assert.ok(m.parameters().every((p) => p.grad === null));
  });
});
