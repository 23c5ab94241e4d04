// libtorch errors surface as JS exceptions with useful messages, and the process carries on afterwards.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { assertValues } from '../helpers/assert-close.js';

const F = torch.F;
const scoped = (fn: () => void) => () => torch.scope(fn);

describe('native errors', () => {
  test(
    'a matmul shape mismatch throws an Error naming the op and the shapes',
    scoped(() => {
      const a = torch.ones([2, 3]);
      const b = torch.ones([2, 3]);
      assert.throws(
        () => a.matmul(b),
        (e: unknown) => {
          assert.ok(e instanceof Error, 'an Error');
          assert.match(e.message, /matmul/);
          assert.match(e.message, /2x3/);
          return true;
        },
      );
      assert.throws(() => torch.ones([2, 3]).mm(torch.ones([4, 5])), /mm.*2x3.*4x5/);
      assert.throws(() => torch.ones([2, 2, 3]).bmm(torch.ones([2, 4, 1])), /bmm/);
    }),
  );

  test(
    'the process survives and later ops work',
    scoped(() => {
      for (let i = 0; i < 3; i++) {
        assert.throws(() => torch.ones([3]).matmul(torch.ones([4])));
        assert.throws(() => torch.ones([2, 3]).add(torch.ones([4])), /add/);
        assert.throws(() => torch.cat([torch.ones([2, 3]), torch.ones([2, 4])], 0), /cat/);
      }
      const c = torch
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .float()
        .matmul(torch.eye(2));
      assertValues(c, [
        [1, 2],
        [3, 4],
      ]);
    }),
  );

  test(
    'an error inside a scope frees the scope',
    scoped(() => {
      const before = torch.liveTensorStats().handles;
      assert.throws(() =>
        torch.scope(() => {
          const x = torch.ones([8, 8]);
          return x.matmul(torch.ones([7, 8]));
        }),
      );
      assert.equal(torch.liveTensorStats().handles, before);
    }),
  );

  test(
    'other libtorch checks reach JS',
    scoped(() => {
      assert.throws(() => torch.arange(6).view(4, 2), /view|shape/);
      assert.throws(() => torch.ones([2]).select(0, 5), /index 5 is out of bounds|out of range/);
      assert.throws(() => F.crossEntropy(torch.ones([2, 3]), torch.tensor([0, 3])), /out of bounds|Target 3/);
      assert.throws(
        () => torch.ones([2, 3]).backward(),
        /grad can be implicitly created only for scalar outputs|does not require grad/,
      );
      assert.throws(() => torch.ones([3], { dtype: 'int64' }).requiresGrad_(true), /floating point/);
    }),
  );
});

describe('argument validation', () => {
  test(
    'a wrong argument type is a TypeError naming the argument',
    scoped(() => {
      const t = torch.ones([2, 3]);
      const any = (v: unknown) => v as never;
      assert.throws(
        () => t.add(any('x')),
        (e: unknown) => e instanceof TypeError && /'other'/.test(e.message),
      );
      assert.throws(
        () => t.mul(any('x')),
        (e: unknown) => e instanceof TypeError && /'other'/.test(e.message),
      );
      assert.throws(
        () => t.narrow(0, any('x'), 1),
        (e: unknown) => e instanceof TypeError && /narrow/.test(e.message) && /'start'/.test(e.message),
      );
      assert.throws(
        () => t.view(any('a'), 3),
        (e: unknown) => e instanceof TypeError && /'shape'/.test(e.message),
      );
      assert.throws(
        () => t.matmul(any(3)),
        (e: unknown) => e instanceof TypeError && /'other'/.test(e.message) && /Tensor/.test(e.message),
      );
      assert.throws(
        () => t.sum(any('0')),
        (e: unknown) => e instanceof TypeError && /sum/.test(e.message),
      );
      assert.throws(() => torch.zeros(any([2, 'b'])), TypeError);
      assert.throws(() => t.transpose(any(0.5), 1), TypeError);
    }),
  );

  test(
    'a disposed tensor cannot be used',
    scoped(() => {
      const t = torch.ones([2]);
      const other = torch.ones([2]);
      t.dispose();
      assert.equal(t.isDisposed, true);
      assert.throws(
        () => t.add(1),
        (e: unknown) => e instanceof Error && /disposed/.test(e.message),
      );
      assert.throws(() => other.add(t), /disposed/);
      assert.throws(() => t.shape, /disposed/);
      assert.throws(() => t.toArray(), /disposed/);
      assert.throws(() => torch.cat([other, t]), /disposed/);
      // The other tensor is unaffected.
      assertValues(other.add(1), [2, 2]);
    }),
  );

  test(
    'an unknown dtype string is a TypeError',
    scoped(() => {
      const bad = 'float128' as torch.DTypeLike;
      assert.throws(
        () => torch.zeros([2], { dtype: bad }),
        (e: unknown) => e instanceof TypeError && /unknown dtype 'float128'/.test(e.message),
      );
      assert.throws(() => torch.tensor([1, 2], { dtype: bad }), TypeError);
      assert.throws(() => torch.ones([2]).to(bad), TypeError);
      assert.throws(() => torch.ones([2]).to({ dtype: bad }), TypeError);
      assert.throws(() => torch.toDType('complex64'), TypeError);
      assert.equal(torch.toDType('half'), 'float16');
    }),
  );

  test(
    'factories validate their input',
    scoped(() => {
      assert.throws(() => torch.tensor(new Int32Array([1, 2, 3]), { shape: [2, 2] }));
      assert.throws(() => torch.zeros([-1]));
      assert.throws(() => torch.ones([2]).size(5), RangeError);
      assert.throws(() => torch.scope(() => Promise.resolve(1)), TypeError);
    }),
  );
});
