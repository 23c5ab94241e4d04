// Tensor factories, dtype inference, random generators and dtype conversions.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { assertClose, assertValues } from '../helpers/assert-close.js';

/** Runs a test body inside a scope so that every tensor it creates is freed. */
const scoped = (fn: () => void) => () => torch.scope(fn);

describe('tensor() from nested arrays', () => {
  test(
    'integers infer int64',
    scoped(() => {
      const t = torch.tensor([
        [1, 2, 3],
        [4, 5, -6],
      ]);
      assert.equal(t.dtype, 'int64');
      assert.deepEqual(t.shape, [2, 3]);
      assert.deepEqual(t.tolist(), [
        [1, 2, 3],
        [4, 5, -6],
      ]);
    }),
  );

  test(
    'any fraction infers float32',
    scoped(() => {
      const t = torch.tensor([1, 2.5, -3]);
      assert.equal(t.dtype, 'float32');
      assert.deepEqual(t.tolist(), [1, 2.5, -3]);
      // 0.1 is stored as the nearest float32.
      assert.equal(torch.tensor([0.1]).item(), Math.fround(0.1));
    }),
  );

  test(
    'booleans infer bool and come back as booleans',
    scoped(() => {
      const t = torch.tensor([
        [true, false],
        [false, true],
      ]);
      assert.equal(t.dtype, 'bool');
      assert.deepEqual(t.tolist(), [
        [true, false],
        [false, true],
      ]);
    }),
  );

  test(
    'a number is a 0-d tensor',
    scoped(() => {
      const i = torch.tensor(7);
      assert.equal(i.dtype, 'int64');
      assert.deepEqual(i.shape, []);
      assert.equal(i.ndim, 0);
      assert.equal(i.numel(), 1);
      assert.equal(i.item(), 7);
      assert.equal(i.tolist(), 7);
      const f = torch.tensor(-2.25);
      assert.equal(f.dtype, 'float32');
      assert.equal(f.item(), -2.25);
      assert.equal(torch.tensor(true).tolist(), true);
    }),
  );

  test(
    'empty arrays',
    scoped(() => {
      const t = torch.tensor([]);
      assert.deepEqual(t.shape, [0]);
      assert.equal(t.numel(), 0);
      assert.deepEqual(t.tolist(), []);
      assert.deepEqual(torch.tensor([[], []]).shape, [2, 0]);
    }),
  );

  test(
    'explicit dtype and shape',
    scoped(() => {
      const d = torch.tensor([1, 2, 3], { dtype: 'float64' });
      assert.equal(d.dtype, 'float64');
      assert.deepEqual(d.tolist(), [1, 2, 3]);
      const r = torch.tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3], dtype: 'int32' });
      assertValues(
        r,
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        'int32',
      );
      // A fraction given an integer dtype is truncated toward zero, as torch.tensor(..., dtype=int64).
      assert.deepEqual(torch.tensor([2.7, -2.7], { dtype: 'int64' }).tolist(), [2, -2]);
      assert.deepEqual(torch.tensor([0, 2, 0], { dtype: 'bool' }).tolist(), [false, true, false]);
      assertValues(torch.tensor([1.5, -2], { dtype: 'bf16' }), [1.5, -2], 'bfloat16');
      assertValues(torch.tensor([1.5, -2], { dtype: 'half' }), [1.5, -2], 'float16');
    }),
  );

  test(
    'requiresGrad option',
    scoped(() => {
      const t = torch.tensor([1, 2], { dtype: 'float32', requiresGrad: true });
      assert.equal(t.requiresGrad, true);
      assert.equal(t.isLeaf, true);
      assert.equal(torch.tensor([1.5]).requiresGrad, false);
    }),
  );

  test(
    'integers beyond the int64 range do not wrap around',
    scoped(() => {
      const t = torch.tensor([1e20]);
      assert.equal(t.dtype, 'float32');
      assertClose(t, [1e20], { atol: 0, rtol: 1e-7 });
    }),
  );

  test('ragged arrays are rejected', () => {
    assert.throws(() => torch.tensor([[1, 2], [3]]), TypeError);
    assert.throws(() => torch.tensor([[1, 2], 3] as unknown as number[][]), TypeError);
  });
});

describe('tensor() from typed arrays', () => {
  test(
    'the element type gives the dtype',
    scoped(() => {
      const cases: [ArrayBufferView, string, number[]][] = [
        [new Float32Array([1.5, -2]), 'float32', [1.5, -2]],
        [new Float64Array([0.1, 1e300]), 'float64', [0.1, 1e300]],
        [new Int32Array([-7, 2 ** 31 - 1]), 'int32', [-7, 2 ** 31 - 1]],
        [new Int16Array([-300, 300]), 'int16', [-300, 300]],
        [new Int8Array([-128, 127]), 'int8', [-128, 127]],
        [new Uint8Array([0, 255]), 'uint8', [0, 255]],
        [new BigInt64Array([-(2n ** 40n), 5n]), 'int64', [-(2 ** 40), 5]],
      ];
      for (const [data, dtype, values] of cases) {
        const t = torch.tensor(data);
        assert.equal(t.dtype, dtype);
        assert.deepEqual(t.shape, [values.length]);
        assert.deepEqual(t.toArray(), values, dtype);
      }
    }),
  );

  test(
    'shape option',
    scoped(() => {
      const t = torch.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
      assert.deepEqual(t.tolist(), [
        [1, 2],
        [3, 4],
        [5, 6],
      ]);
    }),
  );

  test(
    'Uint16Array holds bfloat16 / float16 bits',
    scoped(() => {
      // bf16: sign|8 exponent|7 mantissa. 0x3F80 = 1, 0xC000 = -2, 0x4049 = 1.5703125 * 2.
      const bf = torch.tensor(new Uint16Array([0x3f80, 0xc000, 0x4049]), { dtype: 'bfloat16' });
      assertValues(bf, [1, -2, 3.140625], 'bfloat16');
      // f16: sign|5 exponent|10 mantissa. 0x3C00 = 1, 0xC000 = -2, 0x7C00 = +inf, 0x0001 = 2^-24.
      const h = torch.tensor(new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001]), { dtype: 'float16' });
      assertValues(h, [1, -2, Infinity, 2 ** -24], 'float16');
      assert.throws(() => torch.tensor(new Uint16Array([1])), TypeError);
    }),
  );

  test(
    'a dtype different from the typed array converts the values (or is refused)',
    scoped(() => {
      let t: torch.Tensor | undefined;
      try {
        t = torch.tensor(new Float32Array([1, 2]), { dtype: 'float64' });
      } catch (e) {
        assert.ok(e instanceof TypeError, 'refused with a TypeError');
        return;
      }
      assertValues(t, [1, 2], 'float64');
    }),
  );

  test(
    'the typed array is copied',
    scoped(() => {
      const data = new Float32Array([1, 2]);
      const t = torch.tensor(data);
      data[0] = 100;
      assert.deepEqual(t.toArray(), [1, 2]);
    }),
  );
});

describe('filled factories', () => {
  test(
    'zeros / ones / full / empty shapes and dtypes',
    scoped(() => {
      const z = torch.zeros([2, 3]);
      assert.equal(z.dtype, 'float32');
      assertValues(z, [
        [0, 0, 0],
        [0, 0, 0],
      ]);
      const o = torch.ones([3], { dtype: 'int32' });
      assertValues(o, [1, 1, 1], 'int32');
      assertValues(torch.ones([2], { dtype: 'bool' }), [true, true], 'bool');
      assertValues(torch.full([2, 2], 2.5), [
        [2.5, 2.5],
        [2.5, 2.5],
      ]);
      assert.equal(torch.full([2], 2.5).dtype, 'float32');
      assertValues(torch.full([2], 7), [7, 7], 'int64');
      assertValues(torch.full([1], true), [true], 'bool');
      assertValues(torch.full([2], -1, { dtype: 'float64' }), [-1, -1], 'float64');
      const e = torch.empty([4, 0, 2], { dtype: 'float16' });
      assert.deepEqual(e.shape, [4, 0, 2]);
      assert.equal(e.numel(), 0);
      assert.equal(e.dtype, 'float16');
      assert.deepEqual(torch.empty([3, 5]).shape, [3, 5]);
      assert.deepEqual(torch.zeros([]).shape, []);
      assert.equal(torch.zeros([]).item(), 0);
    }),
  );

  test(
    '*Like factories keep shape and dtype',
    scoped(() => {
      const base = torch.tensor(
        [
          [1, 2],
          [3, 4],
        ],
        { dtype: 'int32' },
      );
      assertValues(torch.zerosLike(base), [
        [0, 0],
        [0, 0],
      ]);
      assert.equal(torch.zerosLike(base).dtype, 'int32');
      assertValues(
        torch.onesLike(base),
        [
          [1, 1],
          [1, 1],
        ],
        'int32',
      );
      assertValues(
        torch.fullLike(base, 9),
        [
          [9, 9],
          [9, 9],
        ],
        'int32',
      );
      const el = torch.emptyLike(base);
      assert.deepEqual(el.shape, [2, 2]);
      assert.equal(el.dtype, 'int32');
      assertValues(torch.scalarTensor(1.5), 1.5, 'float32');
      assertValues(torch.scalarTensor(3, { dtype: 'int64' }), 3, 'int64');
    }),
  );

  test(
    'arange',
    scoped(() => {
      assertValues(torch.arange(5), [0, 1, 2, 3, 4], 'int64');
      assertValues(torch.arange(2, 8, 2), [2, 4, 6], 'int64');
      assertValues(torch.arange(5, 0, -2), [5, 3, 1], 'int64');
      assertValues(torch.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75], 'float32');
      assertValues(torch.arange(-1.5, 1), [-1.5, -0.5, 0.5], 'float32');
      assertValues(torch.arange(3, undefined, 1, { dtype: 'float64' }), [0, 1, 2], 'float64');
      assert.equal(torch.arange(0).numel(), 0);
    }),
  );

  test(
    'linspace',
    scoped(() => {
      assertValues(torch.linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1], 'float32');
      assertValues(torch.linspace(-1, 1, 3), [-1, 0, 1]);
      assertValues(torch.linspace(2, 2, 1), [2]);
      assertClose(torch.linspace(0, 1, 4, { dtype: 'float64' }), [0, 1 / 3, 2 / 3, 1], { atol: 1e-15, rtol: 0 });
      assert.equal(torch.linspace(0, 1, 4, { dtype: 'float64' }).dtype, 'float64');
    }),
  );

  test(
    'eye',
    scoped(() => {
      assertValues(torch.eye(3), [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ]);
      assertValues(
        torch.eye(2, 3, { dtype: 'int64' }),
        [
          [1, 0, 0],
          [0, 1, 0],
        ],
        'int64',
      );
      assertValues(torch.eye(3, 2), [
        [1, 0],
        [0, 1],
        [0, 0],
      ]);
    }),
  );
});

describe('random generators', () => {
  const draw = (seed: number, f: () => torch.Tensor): number[] =>
    torch.scope(() => {
      torch.manualSeed(seed);
      return f().toArray();
    });

  test('same seed gives the same values; another seed different ones', () => {
    const gens: [string, () => torch.Tensor][] = [
      ['randn', () => torch.randn([64])],
      ['rand', () => torch.rand([64])],
      ['randn f64', () => torch.randn([64], { dtype: 'float64' })],
      ['randint', () => torch.randint(0, 1000, [64])],
      ['randperm', () => torch.randperm(64)],
      ['bernoulli', () => torch.scope(() => torch.bernoulli(torch.zeros([64]), 0.5))],
      ['normal_', () => torch.empty([64]).normal_(2, 3)],
      ['uniform_', () => torch.empty([64]).uniform_(-1, 1)],
    ];
    for (const [name, f] of gens) {
      const a = draw(42, f);
      const b = draw(42, f);
      const c = draw(43, f);
      assert.deepEqual(a, b, `${name}: same seed`);
      assert.notDeepEqual(a, c, `${name}: different seed`);
    }
  });

  test('the generator advances: two draws after one seed differ', () => {
    torch.scope(() => {
      torch.manualSeed(7);
      const a = torch.randn([16]).toArray();
      const b = torch.randn([16]).toArray();
      assert.notDeepEqual(a, b);
    });
  });

  test('getRngState / setRngState replay a sequence', () => {
    torch.scope(() => {
      torch.manualSeed(3);
      const state = torch.getRngState();
      const a = torch.rand([8]).toArray();
      torch.randn([100]);
      torch.setRngState(state);
      assert.deepEqual(torch.rand([8]).toArray(), a);
    });
  });

  test(
    'rand is in [0, 1) and randn looks standard normal',
    scoped(() => {
      torch.manualSeed(0);
      const u = torch.rand([20000]).toArray();
      assert.ok(
        u.every((x) => x >= 0 && x < 1),
        'rand range',
      );
      const um = u.reduce((a, b) => a + b, 0) / u.length;
      assert.ok(Math.abs(um - 0.5) < 0.01, `rand mean ${um}`);
      const n = torch.randn([20000], { dtype: 'float64' }).toArray();
      const mean = n.reduce((a, b) => a + b, 0) / n.length;
      const variance = n.reduce((a, b) => a + (b - mean) ** 2, 0) / n.length;
      assert.ok(Math.abs(mean) < 0.03, `randn mean ${mean}`);
      assert.ok(Math.abs(variance - 1) < 0.05, `randn variance ${variance}`);
      assert.ok(
        n.some((x) => x < 0),
        'randn has negatives',
      );
    }),
  );

  test(
    'randint stays in [low, high) and reaches both ends',
    scoped(() => {
      torch.manualSeed(1);
      const r = torch.randint(-3, 4, [2000]);
      assert.equal(r.dtype, 'int64');
      const v = r.toArray();
      assert.ok(
        v.every((x) => Number.isInteger(x) && x >= -3 && x < 4),
        'range',
      );
      assert.deepEqual(
        [...new Set(v)].sort((a, b) => a - b),
        [-3, -2, -1, 0, 1, 2, 3],
      );
      assert.deepEqual(torch.randint(0, 5, [2, 3]).shape, [2, 3]);
      assert.equal(torch.randint(0, 5, [3], { dtype: 'int32' }).dtype, 'int32');
    }),
  );

  test(
    'randperm is a permutation',
    scoped(() => {
      torch.manualSeed(5);
      const p = torch.randperm(50);
      assert.equal(p.dtype, 'int64');
      const v = p.toArray();
      assert.deepEqual(
        [...v].sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i),
      );
      assert.notDeepEqual(
        v,
        Array.from({ length: 50 }, (_, i) => i),
        'shuffled',
      );
    }),
  );

  test(
    'bernoulli with p = 0 or 1 is exact',
    scoped(() => {
      const like = torch.zeros([3, 4]);
      assertValues(torch.bernoulli(like, 0), new Array(3).fill(new Array(4).fill(0)));
      assertValues(torch.bernoulli(like, 1), new Array(3).fill(new Array(4).fill(1)));
      const probs = torch.tensor([0, 1, 1, 0], { dtype: 'float32' });
      assertValues(torch.bernoulli(probs), [0, 1, 1, 0]);
      torch.manualSeed(11);
      const half = torch.bernoulli(torch.zeros([10000]), 0.3).toArray();
      assert.ok(
        half.every((x) => x === 0 || x === 1),
        'values are 0/1',
      );
      const frac = half.reduce<number>((a, b) => a + b, 0) / half.length;
      assert.ok(Math.abs(frac - 0.3) < 0.02, `fraction of ones ${frac}`);
      const inPlace = torch.empty([5]).bernoulli_(1);
      assertValues(inPlace, [1, 1, 1, 1, 1]);
    }),
  );

  test(
    'multinomial never picks zero-probability classes',
    scoped(() => {
      torch.manualSeed(2);
      const probs = torch.tensor([0, 0.5, 0, 0.5]);
      const s = torch.multinomial(probs, 100, true).toArray();
      assert.ok(s.every((i) => i === 1 || i === 3));
      const noRepl = torch.multinomial(torch.tensor([0.25, 0.25, 0.25, 0.25]), 4, false).toArray();
      assert.deepEqual(
        [...noRepl].sort((a, b) => a - b),
        [0, 1, 2, 3],
      );
    }),
  );
});

describe('dtype conversions', () => {
  test(
    'float32 <-> float64',
    scoped(() => {
      const f = torch.tensor([0.1, -2.5, 1e-3]);
      const d = f.to('float64');
      assert.equal(d.dtype, 'float64');
      assert.deepEqual(d.toArray(), [Math.fround(0.1), -2.5, Math.fround(1e-3)]);
      const back = torch.tensor(new Float64Array([0.1, 1 / 3, 1e40])).to('f32');
      assert.equal(back.dtype, 'float32');
      assert.deepEqual(back.toArray(), [Math.fround(0.1), Math.fround(1 / 3), Infinity]);
      assert.equal(f.double().dtype, 'float64');
      assert.equal(d.float().dtype, 'float32');
      assert.equal(f.to('double').dtype, 'float64');
    }),
  );

  test(
    'bfloat16 rounds to nearest, ties to even (hand-derived)',
    scoped(() => {
      // bf16 keeps 7 mantissa bits: the spacing in [1, 2) is 2^-7 = 0.0078125.
      const x = torch.tensor(
        new Float32Array([1.00390625, 1.01171875, 1.005859375, 3.14159, 256.5, -0.1, 1e-40, 3e-41]),
      );
      const b = x.to('bf16');
      assert.equal(b.dtype, 'bfloat16');
      assert.equal(b.elementSize(), 2);
      assertValues(b, [
        1, // 1 + 2^-8: tie between 1 (even) and 1 + 2^-7 → 1
        1.015625, // 1 + 3·2^-8: tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even) → 1 + 2^-6
        1.0078125, // 1 + 1.5·2^-8 → nearer 1 + 2^-7
        3.140625, // 2 · (1 + 73/128)
        256, // spacing at 256 is 2: 256.5 → 256
        -0.10009765625, // -(1 + 77/128) · 2^-4
        2 ** -133, // 1e-40 ≈ 1.09 · 2^-133, bf16's smallest subnormal
        0, // 3e-41 ≈ 0.33 · 2^-133 → 0
      ]);
      assert.equal(x.bfloat16().dtype, 'bfloat16');
    }),
  );

  test(
    'float16 rounds to nearest, ties to even, and overflows to inf (hand-derived)',
    scoped(() => {
      const x = torch.tensor(new Float32Array([1.00048828125, 1.000732421875, 0.1, 65504, 65520, -70000, 6e-8, 1e-8]));
      const h = x.to('half');
      assert.equal(h.dtype, 'float16');
      assertValues(h, [
        1, // 1 + 2^-11 is a tie between 1 and 1 + 2^-10 → 1 (even)
        1.0009765625, // 1 + 1.5·2^-11 → 1 + 2^-10
        0.0999755859375, // (1 + 614/1024) · 2^-4
        65504, // largest finite half
        Infinity, // tie between 65504 and 2^16 (even) → overflow
        -Infinity,
        2 ** -24, // smallest subnormal
        0,
      ]);
      assert.equal(x.half().dtype, 'float16');
    }),
  );

  test(
    'float → integer truncates toward zero; integer ↔ integer; to bool',
    scoped(() => {
      const f = torch.tensor([-1.5, 2.7, -0.3, 100.9]);
      assertValues(f.to('i64'), [-1, 2, 0, 100], 'int64');
      assertValues(f.to('int32'), [-1, 2, 0, 100], 'int32');
      assertValues(f.long(), [-1, 2, 0, 100], 'int64');
      assertValues(f.int(), [-1, 2, 0, 100], 'int32');
      assertValues(torch.tensor([0, 1.9, 200.5, 255]).to('u8'), [0, 1, 200, 255], 'uint8');
      assertValues(torch.tensor([0, -0.0, 0.5, -2, NaN]).to('bool'), [false, false, true, true, true], 'bool');
      assertValues(torch.tensor([0, 3, -1]).bool(), [false, true, true], 'bool');
      assertValues(torch.tensor([true, false]).to('float32'), [1, 0], 'float32');
      assertValues(torch.tensor([true, false]).to('long'), [1, 0], 'int64');
      assertValues(torch.tensor([-5, 70000]).to('int'), [-5, 70000], 'int32');
      assertValues(torch.tensor([3, 250], { dtype: 'uint8' }).to('i64'), [3, 250], 'int64');
      assertValues(torch.tensor([2 ** 40 + 1]).to('f64'), [2 ** 40 + 1], 'float64');
      // int64 → float32 rounds: 2^24 + 1 is not representable in float32.
      assertValues(torch.tensor([2 ** 24 + 1]).to('float32'), [2 ** 24], 'float32');
    }),
  );

  test(
    'to() with an object, copies and no-op conversions',
    scoped(() => {
      const x = torch.tensor([1.5, 2.5]);
      const same = x.to('float32');
      assert.equal(same.dtype, 'float32');
      assert.ok(same.sharesStorageWith(x), 'to(same dtype) returns the same data');
      const copy = x.to({ dtype: 'float32', copy: true });
      assert.ok(!copy.sharesStorageWith(x), 'copy: true copies');
      assertValues(copy, [1.5, 2.5]);
      const converted = x.to({ dtype: 'f64' });
      assert.ok(!converted.sharesStorageWith(x));
      assertValues(converted, [1.5, 2.5], 'float64');
      assert.equal(x.to('cpu').device, 'cpu');
      assertValues(torch.F.cast(x, 'bf16'), [1.5, 2.5], 'bfloat16');
    }),
  );

  test(
    'every alias resolves',
    scoped(() => {
      const x = torch.tensor([1, 0]);
      const aliases: [torch.DTypeLike, torch.DType][] = [
        ['f32', 'float32'],
        ['float', 'float32'],
        ['f64', 'float64'],
        ['double', 'float64'],
        ['bf16', 'bfloat16'],
        ['f16', 'float16'],
        ['half', 'float16'],
        ['i64', 'int64'],
        ['long', 'int64'],
        ['i32', 'int32'],
        ['int', 'int32'],
        ['i16', 'int16'],
        ['short', 'int16'],
        ['i8', 'int8'],
        ['u8', 'uint8'],
        ['bool', 'bool'],
      ];
      for (const [alias, dtype] of aliases) {
        const y = x.to(alias);
        assert.equal(y.dtype, dtype, alias);
        assert.equal(y.elementSize(), torch.itemSize(dtype), alias);
        assertValues(y, [1, 0], undefined, alias);
      }
    }),
  );
});

describe('data out', () => {
  test(
    'tolist / toArray / item',
    scoped(() => {
      const t = torch.tensor([
        [[1.5], [2]],
        [[3], [4]],
      ]);
      assert.deepEqual(t.shape, [2, 2, 1]);
      assert.deepEqual(t.tolist(), [
        [[1.5], [2]],
        [[3], [4]],
      ]);
      assert.deepEqual(t.toArray(), [1.5, 2, 3, 4]);
      assert.equal(torch.tensor([[42]]).item(), 42);
      assert.equal(torch.tensor([2.5], { dtype: 'float64' }).item(), 2.5);
      assert.equal(torch.tensor([true]).item(), 1);
      assert.throws(() => torch.tensor([1, 2]).item());
    }),
  );

  test(
    'toTypedArray element types',
    scoped(() => {
      assert.ok(torch.tensor([1.5]).toTypedArray() instanceof Float32Array);
      assert.ok(torch.tensor([1.5], { dtype: 'f64' }).toTypedArray() instanceof Float64Array);
      const i64 = torch.tensor([-3, 2 ** 40]).toTypedArray();
      assert.ok(i64 instanceof BigInt64Array);
      assert.deepEqual(Array.from(i64), [-3n, 2n ** 40n]);
      assert.ok(torch.tensor([1], { dtype: 'i32' }).toTypedArray() instanceof Int32Array);
      assert.ok(torch.tensor([1], { dtype: 'i16' }).toTypedArray() instanceof Int16Array);
      assert.ok(torch.tensor([1], { dtype: 'i8' }).toTypedArray() instanceof Int8Array);
      assert.ok(torch.tensor([1], { dtype: 'u8' }).toTypedArray() instanceof Uint8Array);
      const b = torch.tensor([true, false, true]).toTypedArray();
      assert.ok(b instanceof Uint8Array);
      assert.deepEqual(Array.from(b), [1, 0, 1]);
      // Half types widen to float32.
      const h = torch.tensor([0.1, 1.5], { dtype: 'f16' }).toTypedArray();
      assert.ok(h instanceof Float32Array);
      assert.deepEqual(Array.from(h), [0.0999755859375, 1.5]);
      const bf = torch.tensor([0.1], { dtype: 'bf16' }).toTypedArray();
      assert.ok(bf instanceof Float32Array);
      assert.deepEqual(Array.from(bf), [0.10009765625]);
    }),
  );

  test(
    'a non-contiguous view reads out in logical row-major order',
    scoped(() => {
      const t = torch.arange(6).reshape(2, 3).t();
      assert.equal(t.isContiguous(), false);
      assert.deepEqual(t.toArray(), [0, 3, 1, 4, 2, 5]);
      assert.deepEqual(t.tolist(), [
        [0, 3],
        [1, 4],
        [2, 5],
      ]);
    }),
  );

  test(
    'toBytes is little-endian',
    scoped(() => {
      assert.deepEqual([...torch.tensor([1.0], { dtype: 'f32' }).toBytes()], [0x00, 0x00, 0x80, 0x3f]);
      assert.deepEqual([...torch.tensor([1], { dtype: 'bf16' }).toBytes()], [0x80, 0x3f]);
      assert.deepEqual([...torch.tensor([258], { dtype: 'i32' }).toBytes()], [2, 1, 0, 0]);
    }),
  );

  test(
    'metadata',
    scoped(() => {
      const t = torch.zeros([2, 3, 4]);
      assert.equal(t.ndim, 3);
      assert.equal(t.dim(), 3);
      assert.equal(t.size(-1), 4);
      assert.equal(t.size(0), 2);
      assert.deepEqual(t.size(), [2, 3, 4]);
      assert.throws(() => t.size(3), RangeError);
      assert.equal(t.numel(), 24);
      assert.deepEqual(t.stride(), [12, 4, 1]);
      assert.equal(t.device, 'cpu');
      assert.equal(t.elementSize(), 4);
      assert.match(t.toString(), /shape=\[2, 3, 4\], dtype=float32, device=cpu/);
    }),
  );
});

describe('scope and dispose', () => {
  test('scope frees what it created and keeps what it returns', () => {
    const before = torch.liveTensorStats().handles;
    const kept = torch.scope(() => {
      const a = torch.ones([3]);
      const b = a.add(1);
      return { b, list: [a.mul(2)] };
    });
    assert.equal(torch.liveTensorStats().handles, before + 2);
    assertValues(kept.b, [2, 2, 2]);
    assertValues(kept.list[0]!, [2, 2, 2]);
    kept.b.dispose();
    kept.list[0]!.dispose();
    kept.b.dispose(); // idempotent
    assert.equal(kept.b.isDisposed, true);
    assert.equal(torch.liveTensorStats().handles, before);
  });

  test('keep() survives the scope; a throwing scope still frees', () => {
    const before = torch.liveTensorStats().handles;
    let k: torch.Tensor | undefined;
    torch.scope(() => {
      k = torch.ones([2]).keep();
      torch.ones([2]);
    });
    assert.equal(k!.isDisposed, false);
    k!.dispose();
    assert.throws(() =>
      torch.scope(() => {
        torch.zeros([5]);
        throw new Error('boom');
      }),
    );
    assert.equal(torch.liveTensorStats().handles, before);
  });
});

describe('tensor() inference details', () => {
  test('booleans mixed with integers infer int64 (as PyTorch)', () => {
    const t = torch.tensor([true, 2]);
    assert.equal(t.dtype, 'int64');
    assert.deepEqual(t.toArray(), [1, 2]);
  });

  test('fromBytes reads raw little-endian bytes as the given dtype', () => {
    const bytes = Buffer.alloc(8);
    bytes.writeFloatLE(1.5, 0);
    bytes.writeFloatLE(-2, 4);
    const t = torch.fromBytes(bytes, [2], 'float32');
    assert.deepEqual(t.toArray(), [1.5, -2]);
    assert.throws(() => torch.fromBytes(bytes, [3], 'float32'), /needs 12 bytes, the buffer has 8/);
  });
});
