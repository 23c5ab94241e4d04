import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';

class MLP extends torch.Module {
  fc1 = new torch.Linear(32, 64);
  fc2 = new torch.Linear(64, 8);
  forward(x: torch.Tensor): torch.Tensor {
    return this.fc2.forward(torch.F.gelu(this.fc1.forward(x), 'tanh'));
  }
}

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

describe('memory', () => {
  test('scope disposes intermediates and keeps the returned tensors', () => {
    const base = torch.liveTensorStats().handles;
    const kept = torch.scope(() => {
      const a = torch.randn([8, 8]);
      const b = a.matmul(a).relu();
      const c = b.sum();
      return { b, list: [c] };
    });
    assert.equal(torch.liveTensorStats().handles, base + 2);
    assert.ok(!kept.b.isDisposed && !kept.list[0]!.isDisposed);
    kept.b.dispose();
    kept.list[0]!.dispose();
    assert.equal(torch.liveTensorStats().handles, base);
  });

  test('nested scopes hand results outwards; a throw disposes everything created', () => {
    const base = torch.liveTensorStats().handles;
    torch.scope(() => {
      const inner = torch.scope(() => torch.ones([2]).add(1));
      assert.ok(!inner.isDisposed);
      return undefined;
    });
    assert.equal(torch.liveTensorStats().handles, base);
    assert.throws(() =>
      torch.scope(() => {
        torch.ones([3]).mul(2);
        throw new Error('boom');
      }),
    );
    assert.equal(torch.liveTensorStats().handles, base);
  });

  test('keep() survives scopes; `using` disposes at block end', () => {
    const base = torch.liveTensorStats().handles;
    const k = torch.scope(() => {
      torch.zeros([1]).keep();
      return null;
    });
    assert.equal(k, null);
    assert.equal(torch.liveTensorStats().handles, base + 1);
    {
      using t = torch.ones([4]);
      assert.equal(
        torch.scope(() => t.sum().item()),
        4,
      );
    }
    assert.equal(torch.liveTensorStats().handles, base + 1, 'the `using` tensor was disposed');
  });

  test('a view keeps its storage alive after the base is disposed, and memory is accounted once', () => {
    const base = torch.liveTensorStats();
    const a = torch.ones([1024], { dtype: 'float32' });
    const v = a.view(32, 32);
    assert.equal(torch.liveTensorStats().bytes - base.bytes, 4096, 'shared storage counted once');
    a.dispose();
    assert.equal(
      torch.scope(() => v.sum().item()),
      1024,
    );
    v.dispose();
    assert.equal(torch.liveTensorStats().bytes, base.bytes);
  });

  test('10,000 forward/backward/AdamW steps of an MLP do not grow memory', () => {
    torch.manualSeed(0);
    const model = new MLP();
    const opt = new torch.AdamW(model.parameters(), { lr: 1e-3 });
    const x = torch.randn([16, 32]).keep();
    const y = torch.randint(0, 8, [16]).keep();
    const step = (): number =>
      torch.scope(() => {
        opt.zeroGrad();
        const loss = torch.F.crossEntropy(model.forward(x), y);
        loss.backward();
        opt.step();
        return loss.item();
      });
    for (let i = 0; i < 500; i++) step();
    global.gc?.();
    const handles0 = torch.liveTensorStats().handles;
    const rss0 = rssMiB();
    let first = NaN;
    let last = NaN;
    for (let i = 0; i < 10_000; i++) {
      const l = step();
      if (i === 0) first = l;
      last = l;
    }
    const handles1 = torch.liveTensorStats().handles;
    const growth = rssMiB() - rss0;
    assert.equal(handles1, handles0, 'no tensor handle leaked');
    assert.ok(growth < 16, `RSS grew by ${growth.toFixed(1)} MiB over 10,000 steps`);
    assert.ok(last < first, 'the model trained (loss went down)');
    opt.dispose();
  });
});

describe('caching CPU allocator', () => {
  test('large buffers freed by dispose are reused instead of being mapped again', () => {
    torch.emptyCache();
    const before = torch.cpuCacheStats();
    const x = torch.randn([1024, 1024]);
    for (let i = 0; i < 10; i++) torch.scope(() => void x.add(x));
    const after = torch.cpuCacheStats();
    assert.ok(after.hits - before.hits >= 9, `expected reuse, got ${after.hits - before.hits} hits`);
    assert.ok(after.cachedBytes >= 4 * 1024 * 1024);
    torch.emptyCache();
    assert.equal(torch.cpuCacheStats().cachedBytes, 0);
    x.dispose();
  });

  test('kernels using the raw allocator interface work on cached blocks (gelu, large)', () => {
    const x = torch.randn([512, 1024]);
    const expected = torch.scope(() => x.mul(0.5).mul(x.mul(Math.SQRT1_2).erf().add(1)).sum().item());
    for (let i = 0; i < 3; i++) {
      const got = torch.scope(() => torch.F.gelu(x).sum().item());
      assert.ok(Math.abs(got - expected) < 1e-2 * Math.max(1, Math.abs(expected)));
    }
    x.dispose();
  });
});
