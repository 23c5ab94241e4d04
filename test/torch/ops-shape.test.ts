// Shape ops, Python-style indexing, gather/scatter family, sorting, and view-vs-copy semantics.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { slice } from '../../src/torch/index.js';
import { assertValues } from '../helpers/assert-close.js';

const scoped = (fn: () => void) => () => torch.scope(fn);

/** x[i][j][k] = 12i + 4j + k, the values of arange(24).reshape(2, 3, 4). */
const X = (i: number, j: number, k: number) => 12 * i + 4 * j + k;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const x234 = () => torch.arange(24).reshape(2, 3, 4);

describe('reshaping', () => {
  test(
    'view / reshape',
    scoped(() => {
      const x = x234();
      assert.deepEqual(x.shape, [2, 3, 4]);
      const v = x.view(6, 4);
      assertValues(
        v,
        range(6).map((r) => range(4).map((c) => 4 * r + c)),
      );
      assert.deepEqual(x.view(-1).shape, [24]);
      assert.deepEqual(x.view(4, -1).shape, [4, 6]);
      assert.deepEqual(x.reshape(3, 8).shape, [3, 8]);
      assertValues(x.reshape(-1).narrow(0, 20, 4), [20, 21, 22, 23]);
      assert.throws(() => x.view(5, 5));
      // view needs compatible strides; reshape copies when it must.
      const t = x.transpose(0, 2);
      assert.throws(() => t.view(-1), /view size is not compatible/);
      const r = t.reshape(-1);
      assert.equal(r.sharesStorageWith(x), false);
      assertValues(r.narrow(0, 0, 4), [X(0, 0, 0), X(1, 0, 0), X(0, 1, 0), X(1, 1, 0)]);
    }),
  );

  test(
    'permute / transpose / t / contiguous / stride',
    scoped(() => {
      const x = x234();
      assert.deepEqual(x.stride(), [12, 4, 1]);
      const p = x.permute(2, 0, 1);
      assert.deepEqual(p.shape, [4, 2, 3]);
      assert.deepEqual(p.stride(), [1, 12, 4]);
      assertValues(
        p,
        range(4).map((k) => range(2).map((i) => range(3).map((j) => X(i, j, k)))),
      );
      const tr = x.transpose(0, 2);
      assert.deepEqual(tr.shape, [4, 3, 2]);
      assertValues(
        tr,
        range(4).map((k) => range(3).map((j) => range(2).map((i) => X(i, j, k)))),
      );
      assert.deepEqual(x.transpose(-1, -2).shape, [2, 4, 3]);
      assert.equal(tr.isContiguous(), false);
      const c = tr.contiguous();
      assert.equal(c.isContiguous(), true);
      assert.deepEqual(c.stride(), [6, 2, 1]);
      assert.equal(c.sharesStorageWith(x), false);
      assert.equal(c.equal(tr), true);
      // contiguous() of a contiguous tensor is the same data.
      assert.equal(x.contiguous().sharesStorageWith(x), true);
      const m = torch.tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      assertValues(m.t(), [
        [1, 4],
        [2, 5],
        [3, 6],
      ]);
    }),
  );

  test(
    't() of a 1-D tensor is the tensor itself (as torch)',
    scoped(() => {
      assertValues(torch.tensor([1, 2]).t(), [1, 2]);
    }),
  );

  test(
    'unsqueeze / squeeze',
    scoped(() => {
      const x = torch.zeros([2, 1, 3, 1]);
      assert.deepEqual(x.squeeze().shape, [2, 3]);
      assert.deepEqual(x.squeeze(1).shape, [2, 3, 1]);
      assert.deepEqual(x.squeeze(-1).shape, [2, 1, 3]);
      assert.deepEqual(x.squeeze(0).shape, [2, 1, 3, 1]); // size 2: unchanged
      assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 1, 3, 1]);
      assert.deepEqual(x.unsqueeze(-1).shape, [2, 1, 3, 1, 1]);
      assert.deepEqual(x.unsqueeze(2).shape, [2, 1, 1, 3, 1]);
      assertValues(torch.tensor([1, 2]).unsqueeze(1), [[1], [2]]);
    }),
  );

  test(
    'expand / expandAs / repeat / repeatInterleave',
    scoped(() => {
      const col = torch.tensor([[1], [2]]);
      const e = col.expand(2, 3);
      assertValues(e, [
        [1, 1, 1],
        [2, 2, 2],
      ]);
      assert.deepEqual(e.stride(), [1, 0]);
      assert.equal(e.sharesStorageWith(col), true);
      assert.deepEqual(col.expand(4, -1, 3).shape, [4, 2, 3]);
      assert.deepEqual(col.expandAs(torch.zeros([2, 5])).shape, [2, 5]);
      assert.throws(() => col.expand(3, 3));
      const r = torch.tensor([1, 2]).repeat(2, 2);
      assertValues(r, [
        [1, 2, 1, 2],
        [1, 2, 1, 2],
      ]);
      assert.equal(r.sharesStorageWith(col), false);
      assertValues(torch.tensor([1, 2]).repeatInterleave(2), [1, 1, 2, 2]);
      assertValues(torch.tensor([1, 2]).repeatInterleave(torch.tensor([1, 3]), 0), [1, 2, 2, 2]);
    }),
  );

  test(
    'flatten / unflatten',
    scoped(() => {
      const x = x234();
      assert.deepEqual(x.flatten().shape, [24]);
      assert.deepEqual(x.flatten(1).shape, [2, 12]);
      assert.deepEqual(x.flatten(0, 1).shape, [6, 4]);
      assertValues(x.flatten(0, 1).select(0, 5), [20, 21, 22, 23]);
      assert.deepEqual(x.flatten().unflatten(0, [4, 6]).shape, [4, 6]);
      assert.deepEqual(x.unflatten(2, [2, 2]).shape, [2, 3, 2, 2]);
    }),
  );

  test(
    'flip / roll / diagonal',
    scoped(() => {
      assertValues(torch.arange(4).flip(0), [3, 2, 1, 0]);
      assertValues(torch.arange(4).roll(1, 0), [3, 0, 1, 2]);
      assertValues(torch.arange(4).roll(-1, 0), [1, 2, 3, 0]);
      const m = torch.arange(9).reshape(3, 3);
      assertValues(m.flip([0, 1]), [
        [8, 7, 6],
        [5, 4, 3],
        [2, 1, 0],
      ]);
      assertValues(m.diagonal(), [0, 4, 8]);
      assertValues(m.diagonal(1), [1, 5]);
      assertValues(m.diagonal(-1), [3, 7]);
    }),
  );
});

describe('joining and splitting', () => {
  test(
    'cat / stack',
    scoped(() => {
      const a = torch.tensor([
        [1, 2],
        [3, 4],
      ]);
      const b = torch.tensor([[5, 6]]);
      assertValues(torch.cat([a, b]), [
        [1, 2],
        [3, 4],
        [5, 6],
      ]);
      assertValues(torch.cat([a, b.t()], 1), [
        [1, 2, 5],
        [3, 4, 6],
      ]);
      assertValues(torch.cat([a, a], -1), [
        [1, 2, 1, 2],
        [3, 4, 3, 4],
      ]);
      assert.throws(() => torch.cat([a, b], 1));
      const s0 = torch.stack([a, a.mul(10)]);
      assert.deepEqual(s0.shape, [2, 2, 2]);
      assertValues(s0, [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [10, 20],
          [30, 40],
        ],
      ]);
      const s1 = torch.stack([a, a.mul(10)], 1);
      assertValues(s1, [
        [
          [1, 2],
          [10, 20],
        ],
        [
          [3, 4],
          [30, 40],
        ],
      ]);
      assertValues(torch.stack([torch.tensor([1, 2]), torch.tensor([3, 4])], -1), [
        [1, 3],
        [2, 4],
      ]);
      assert.throws(() => torch.stack([a, b]));
    }),
  );

  test(
    'split / chunk / unbind',
    scoped(() => {
      const parts = torch.arange(5).split(2);
      assert.equal(parts.length, 3);
      assert.deepEqual(
        parts.map((p) => p.tolist()),
        [[0, 1], [2, 3], [4]],
      );
      const m = torch.arange(6).reshape(2, 3);
      const [l, r] = m.split([1, 2], 1);
      assertValues(l!, [[0], [3]]);
      assertValues(r!, [
        [1, 2],
        [4, 5],
      ]);
      assert.ok(r!.sharesStorageWith(m), 'split pieces are views');
      assert.deepEqual(
        torch
          .arange(6)
          .chunk(3)
          .map((c) => c.tolist()),
        [
          [0, 1],
          [2, 3],
          [4, 5],
        ],
      );
      assert.deepEqual(
        torch
          .arange(5)
          .chunk(3)
          .map((c) => c.shape[0]),
        [2, 2, 1],
      );
      const cols = m.chunk(3, 1);
      assertValues(cols[2]!, [[2], [5]]);
      const rows = m.unbind();
      assert.equal(rows.length, 2);
      assertValues(rows[1]!, [3, 4, 5]);
      assertValues(m.unbind(1)[0]!, [0, 3]);
    }),
  );

  test(
    'narrow / slice / select',
    scoped(() => {
      const x = x234();
      assertValues(
        x.narrow(1, 1, 2),
        range(2).map((i) => [1, 2].map((j) => range(4).map((k) => X(i, j, k)))),
      );
      assertValues(
        x.slice(2, 0, null, 2),
        range(2).map((i) => range(3).map((j) => [0, 2].map((k) => X(i, j, k)))),
      );
      assertValues(
        x.slice(2, -2),
        range(2).map((i) => range(3).map((j) => [2, 3].map((k) => X(i, j, k)))),
      );
      assertValues(
        x.slice(1, 1, 100),
        range(2).map((i) => [1, 2].map((j) => range(4).map((k) => X(i, j, k)))),
      );
      assertValues(
        x.select(0, 1),
        range(3).map((j) => range(4).map((k) => X(1, j, k))),
      );
      assertValues(
        x.select(-1, 3),
        range(2).map((i) => range(3).map((j) => X(i, j, 3))),
      );
      assert.throws(() => x.select(1, 3));
      assert.throws(() => x.narrow(2, 3, 2));
    }),
  );
});

describe('index(): Python-style indexing', () => {
  test(
    'integers select',
    scoped(() => {
      const x = x234();
      assertValues(
        x.index(1),
        range(3).map((j) => range(4).map((k) => X(1, j, k))),
      );
      assertValues(x.index(1, 2), [20, 21, 22, 23]);
      assertValues(x.index(-1, -1, -1), 23);
      assertValues(x.index(0, 1, 2), 6);
    }),
  );

  test(
    'slices, strings and ellipsis',
    scoped(() => {
      const x = x234();
      // x[:, 1]
      assertValues(
        x.index(':', 1),
        range(2).map((i) => range(4).map((k) => X(i, 1, k))),
      );
      // x[..., 0]
      assertValues(x.index('...', 0), [
        [0, 4, 8],
        [12, 16, 20],
      ]);
      // x[0, ..., -1]
      assertValues(x.index(0, '...', -1), [3, 7, 11]);
      // x[0:1, 1:, ::2]
      assertValues(x.index(slice(0, 1), '1:', '::2'), [
        [
          [4, 6],
          [8, 10],
        ],
      ]);
      // x[1, :2, 1:3]
      assertValues(x.index(1, ':2', slice(1, 3)), [
        [13, 14],
        [17, 18],
      ]);
      // x[:, -2:, 3]
      assertValues(x.index(':', '-2:', 3), [
        [7, 11],
        [19, 23],
      ]);
      // x[:, ::2, 1::2]
      assertValues(x.index(slice(), '::2', '1::2'), [
        [
          [1, 3],
          [9, 11],
        ],
        [
          [13, 15],
          [21, 23],
        ],
      ]);
      assertValues(
        x.index('...'),
        range(2).map((i) => range(3).map((j) => range(4).map((k) => X(i, j, k)))),
      );
      assert.deepEqual(x.index().shape, [2, 3, 4]);
    }),
  );

  test(
    'null inserts a new axis',
    scoped(() => {
      const x = x234();
      assert.deepEqual(x.index(null).shape, [1, 2, 3, 4]);
      assert.deepEqual(x.index(':', null).shape, [2, 1, 3, 4]);
      assert.deepEqual(x.index('...', null).shape, [2, 3, 4, 1]);
      // x[:, None, 0] → (2, 1, 4)
      const y = x.index(':', null, 0);
      assert.deepEqual(y.shape, [2, 1, 4]);
      assertValues(
        y,
        range(2).map((i) => [range(4).map((k) => X(i, 0, k))]),
      );
      assertValues(torch.tensor([1, 2]).index(null, ':', null), [[[1], [2]]]);
    }),
  );

  test(
    'int64 tensor indices',
    scoped(() => {
      const x = x234();
      // x[[1, 0]]
      assertValues(
        x.index(torch.tensor([1, 0])),
        [1, 0].map((i) => range(3).map((j) => range(4).map((k) => X(i, j, k)))),
      );
      // x[:, [2, 0], [1, 3]]: paired indices → (2, 2)
      assertValues(x.index(':', torch.tensor([2, 0]), torch.tensor([1, 3])), [
        [X(0, 2, 1), X(0, 0, 3)],
        [X(1, 2, 1), X(1, 0, 3)],
      ]);
      // x[[0, 1], :, [0, 3]]: separated advanced indices put their dimension first → (2, 3)
      assertValues(x.index(torch.tensor([0, 1]), ':', torch.tensor([0, 3])), [
        [X(0, 0, 0), X(0, 1, 0), X(0, 2, 0)],
        [X(1, 0, 3), X(1, 1, 3), X(1, 2, 3)],
      ]);
      // x[[1, 0], 2]: an integer with a tensor index
      assertValues(x.index(torch.tensor([1, 0]), 2), [
        [20, 21, 22, 23],
        [8, 9, 10, 11],
      ]);
      // x[1, :, [-1]]
      assertValues(x.index(1, ':', torch.tensor([-1])), [[15], [19], [23]]);
      // A 2-D index tensor gives its own shape.
      assertValues(
        torch
          .arange(10)
          .mul(10)
          .index(
            torch.tensor([
              [0, 4],
              [1, 1],
            ]),
          ),
        [
          [0, 40],
          [10, 10],
        ],
      );
      // x[..., [0, 0, 2]]
      assertValues(
        x
          .index('...', torch.tensor([0, 0, 2]))
          .select(0, 1)
          .select(0, 2),
        [20, 20, 22],
      );
      // x[None, [1]] → (1, 1, 3, 4)
      assert.deepEqual(x.index(null, torch.tensor([1])).shape, [1, 1, 3, 4]);
    }),
  );

  test(
    'bool tensor masks',
    scoped(() => {
      const x = x234();
      // x[[False, True]] keeps the second block
      const b = x.index(torch.tensor([false, true]));
      assert.deepEqual(b.shape, [1, 3, 4]);
      assertValues(b.select(0, 0).select(0, 0), [12, 13, 14, 15]);
      // A 2-D mask consumes two dims: x[mask] → (count, 4)
      const mask = torch.tensor([
        [true, false, true],
        [false, true, false],
      ]);
      assertValues(x.index(mask), [
        range(4).map((k) => X(0, 0, k)),
        range(4).map((k) => X(0, 2, k)),
        range(4).map((k) => X(1, 1, k)),
      ]);
      // x[:, [True, False, True], 0]
      assertValues(x.index(':', torch.tensor([true, false, true]), 0), [
        [0, 8],
        [12, 20],
      ]);
      // A mask over every dimension gives a 1-D tensor.
      const v = torch.tensor([
        [1, -2],
        [-3, 4],
      ]);
      assertValues(v.index(v.gt(0)), [1, 4]);
    }),
  );

  test(
    'basic indexing gives views, advanced indexing copies',
    scoped(() => {
      const x = x234();
      assert.equal(x.index(0).sharesStorageWith(x), true);
      assert.equal(x.index(':', '1:', null).sharesStorageWith(x), true);
      assert.equal(x.index('...').sharesStorageWith(x), true);
      assert.equal(x.index(torch.tensor([0])).sharesStorageWith(x), false);
      assert.equal(x.index(torch.tensor([true, false])).sharesStorageWith(x), false);
      x.index(0, 0).fill_(-1);
      assertValues(x.index(0, 0), [-1, -1, -1, -1]);
    }),
  );

  test(
    'index() of a 0-d tensor with only basic terms',
    scoped(() => {
      const s = torch.tensor(5);
      assertValues(s.index('...'), 5);
      assertValues(s.index(), 5);
    }),
  );

  test(
    'invalid index terms throw',
    scoped(() => {
      const x = x234();
      assert.throws(() => x.index(0, 0, 0, 0), RangeError);
      assert.throws(() => x.index('...', 0, '...'), TypeError);
      assert.throws(() => x.index('a:b'), TypeError);
      assert.throws(() => x.index('1'), TypeError);
      assert.throws(() => slice(0, 2, 0), RangeError);
      assert.throws(() => x.index(5));
    }),
  );
});

describe('gather / scatter family', () => {
  test(
    'indexSelect / gather',
    scoped(() => {
      const m = torch.tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      assertValues(m.indexSelect(1, torch.tensor([2, 0, 2])), [
        [3, 1, 3],
        [6, 4, 6],
      ]);
      assertValues(m.indexSelect(0, torch.tensor([1])), [[4, 5, 6]]);
      // out[i][j] = m[i][idx[i][j]]
      assertValues(
        m.gather(
          1,
          torch.tensor([
            [0, 0],
            [2, 1],
          ]),
        ),
        [
          [1, 1],
          [6, 5],
        ],
      );
      // out[i][j] = m[idx[i][j]][j]
      assertValues(m.gather(0, torch.tensor([[1, 0, 1]])), [[4, 2, 6]]);
    }),
  );

  test(
    'scatter / scatterAdd / indexAdd',
    scoped(() => {
      // out[i][idx[i][j]] = src[i][j]
      const s = torch.zeros([2, 3]).scatter(
        1,
        torch.tensor([
          [1, 0],
          [2, 2],
        ]),
        torch
          .tensor([
            [9, 8],
            [7, 7],
          ])
          .float(),
      );
      assertValues(s, [
        [8, 9, 0],
        [0, 0, 7],
      ]);
      assertValues(torch.zeros([1, 4]).scatter(1, torch.tensor([[3, 0]]), 5), [[5, 0, 0, 5]]);
      const base = torch.zeros([3]);
      const sa = base.scatterAdd(0, torch.tensor([0, 1, 0, 2, 0]), torch.tensor([1, 2, 3, 4, 5]).float());
      assertValues(sa, [9, 2, 4]);
      assertValues(base, [0, 0, 0]); // out of place
      const ia = torch.zeros([3, 2]).indexAdd(
        0,
        torch.tensor([2, 0, 2]),
        torch
          .tensor([
            [1, 1],
            [2, 2],
            [3, 3],
          ])
          .float(),
        2,
      );
      assertValues(ia, [
        [4, 4],
        [0, 0],
        [8, 8],
      ]);
    }),
  );

  test(
    'indexPut / indexPut_',
    scoped(() => {
      const z = torch.zeros([2, 3]);
      const p = z.indexPut([torch.tensor([0, 1]), torch.tensor([2, 0])], torch.tensor([5, 6]).float());
      assertValues(p, [
        [0, 0, 5],
        [6, 0, 0],
      ]);
      assertValues(z, [
        [0, 0, 0],
        [0, 0, 0],
      ]);
      // A single index on the first dimension writes whole rows.
      assertValues(z.indexPut([torch.tensor([1])], torch.tensor([1, 2, 3]).float()), [
        [0, 0, 0],
        [1, 2, 3],
      ]);
      // accumulate sums duplicates; without it one write wins.
      const acc = torch.zeros([3]).indexPut([torch.tensor([0, 0, 2])], torch.tensor([1, 2, 3]).float(), true);
      assertValues(acc, [3, 0, 3]);
      const t = torch.zeros([2, 2]);
      t.indexPut_([torch.tensor([true, false])], torch.tensor([7]).float());
      assertValues(t, [
        [7, 7],
        [0, 0],
      ]);
      t.indexPut_([null, torch.tensor([1])], torch.tensor([4]).float(), true);
      assertValues(t, [
        [7, 11],
        [0, 4],
      ]);
    }),
  );

  test(
    'maskedFill / maskedScatter / maskedSelect',
    scoped(() => {
      const x = torch
        .tensor([
          [1, 2, 3],
          [4, 5, 6],
        ])
        .float();
      const mask = torch.tensor([
        [true, false, true],
        [false, true, false],
      ]);
      assertValues(x.maskedFill(mask, 0), [
        [0, 2, 0],
        [4, 0, 6],
      ]);
      assertValues(x.maskedFill(mask, -Infinity), [
        [-Infinity, 2, -Infinity],
        [4, -Infinity, 6],
      ]);
      assertValues(x.maskedFill(mask, torch.scalarTensor(9)), [
        [9, 2, 9],
        [4, 9, 6],
      ]);
      // A (3,) mask broadcasts over rows.
      assertValues(x.maskedFill(torch.tensor([false, true, false]), 0), [
        [1, 0, 3],
        [4, 0, 6],
      ]);
      // maskedScatter takes source elements in order for each true position.
      const src = torch.tensor([10, 20, 30, 40, 50, 60]).float();
      assertValues(x.maskedScatter(mask, src), [
        [10, 2, 20],
        [4, 30, 6],
      ]);
      const sel = x.maskedSelect(mask);
      assertValues(sel, [1, 3, 5]);
      assert.equal(sel.sharesStorageWith(x), false);
      assertValues(x.maskedSelect(torch.tensor([true, false, false])), [1, 4]);
    }),
  );

  test(
    'nonzero',
    scoped(() => {
      assertValues(
        torch
          .tensor([
            [0, 1],
            [2, 0],
          ])
          .nonzero(),
        [
          [0, 1],
          [1, 0],
        ],
        'int64',
      );
      assertValues(torch.tensor([0, 3, 0, 4]).nonzero(), [[1], [3]]);
      assert.deepEqual(torch.zeros([3]).nonzero().shape, [0, 1]);
    }),
  );
});

describe('sorting and triangles', () => {
  test(
    'sort / argsort',
    scoped(() => {
      const t = torch.tensor([3, 1, 2]).float();
      const s = t.sort();
      assertValues(s.values, [1, 2, 3]);
      assertValues(s.indices, [1, 2, 0], 'int64');
      const d = t.sort(0, { descending: true });
      assertValues(d.values, [3, 2, 1]);
      assertValues(d.indices, [0, 2, 1]);
      assertValues(t.argsort(), [1, 2, 0]);
      assertValues(t.argsort(-1, { descending: true }), [0, 2, 1]);
      // Stable sorting keeps ties in their original order.
      assertValues(torch.tensor([2, 1, 2, 1, 0]).argsort(0, { stable: true }), [4, 1, 3, 0, 2]);
      assertValues(torch.tensor([2, 1, 2, 1]).sort(0, { stable: true, descending: true }).indices, [0, 2, 1, 3]);
      const m = torch.tensor([
        [3, 1],
        [1, 2],
        [2, 0],
      ]);
      const s0 = m.sort(0);
      assertValues(s0.values, [
        [1, 0],
        [2, 1],
        [3, 2],
      ]);
      assertValues(s0.indices, [
        [1, 2],
        [2, 0],
        [0, 1],
      ]);
    }),
  );

  test(
    'topk',
    scoped(() => {
      const t = torch.tensor([1, 5, 3, 4]).float();
      const top = t.topk(2);
      assertValues(top.values, [5, 4]);
      assertValues(top.indices, [1, 3], 'int64');
      const low = t.topk(2, -1, { largest: false });
      assertValues(low.values, [1, 3]);
      assertValues(low.indices, [0, 2]);
      const m = torch
        .tensor([
          [1, 9, 5],
          [8, 2, 7],
        ])
        .float();
      const r = m.topk(1, 1);
      assertValues(r.values, [[9], [8]]);
      assertValues(r.indices, [[1], [0]]);
      assertValues(m.topk(1, 0).indices, [[1, 0, 1]]);
      assert.throws(() => t.topk(5));
    }),
  );

  test(
    'tril / triu',
    scoped(() => {
      const m = torch.arange(1, 10).reshape(3, 3);
      assertValues(m.tril(), [
        [1, 0, 0],
        [4, 5, 0],
        [7, 8, 9],
      ]);
      assertValues(m.triu(), [
        [1, 2, 3],
        [0, 5, 6],
        [0, 0, 9],
      ]);
      assertValues(m.tril(-1), [
        [0, 0, 0],
        [4, 0, 0],
        [7, 8, 0],
      ]);
      assertValues(m.triu(1), [
        [0, 2, 3],
        [0, 0, 6],
        [0, 0, 0],
      ]);
      assertValues(torch.ones([2, 3], { dtype: 'bool' }).tril(), [
        [true, false, false],
        [true, true, false],
      ]);
      // Batched: applies to the last two dims.
      assertValues(torch.ones([2, 2, 2]).triu(), [
        [
          [1, 1],
          [0, 1],
        ],
        [
          [1, 1],
          [0, 1],
        ],
      ]);
    }),
  );

  test(
    'searchsorted / unique / bincount / oneHot / pad',
    scoped(() => {
      const seq = torch.tensor([1, 3, 5, 7]);
      assertValues(torch.searchsorted(seq, torch.tensor([0, 3, 6, 9])), [0, 1, 3, 4]);
      assertValues(torch.searchsorted(seq, torch.tensor([3]), { right: true }), [2]);
      const u = torch.unique(torch.tensor([3, 1, 3, 2, 1]));
      assertValues(u.values, [1, 2, 3]);
      assertValues(u.inverse, [2, 0, 2, 1, 0]);
      assertValues(torch.bincount(torch.tensor([0, 2, 2, 3])), [1, 0, 2, 1]);
      assertValues(torch.bincount(torch.tensor([1]), { minlength: 3 }), [0, 1, 0]);
      assertValues(torch.F.oneHot(torch.tensor([2, 0]), 3), [
        [0, 0, 1],
        [1, 0, 0],
      ]);
      assertValues(torch.F.pad(torch.tensor([[1, 2]]).float(), [1, 2]), [[0, 1, 2, 0, 0]]);
      assertValues(torch.F.pad(torch.tensor([[1, 2]]).float(), [0, 0, 1, 0], -1), [
        [-1, -1],
        [1, 2],
      ]);
    }),
  );
});

describe('views share storage, copies do not', () => {
  test(
    'view-producing ops',
    scoped(() => {
      const x = x234();
      const views: [string, torch.Tensor][] = [
        ['view', x.view(6, 4)],
        ['reshape (contiguous)', x.reshape(4, 6)],
        ['permute', x.permute(1, 2, 0)],
        ['transpose', x.transpose(0, 1)],
        ['unsqueeze', x.unsqueeze(1)],
        ['squeeze', x.unsqueeze(0).squeeze(0)],
        ['expand', x.index(':', ':', slice(0, 1)).expand(2, 3, 5)],
        ['flatten', x.flatten()],
        ['narrow', x.narrow(2, 1, 2)],
        ['slice', x.slice(1, 0, null, 2)],
        ['select', x.select(1, 2)],
        ['chunk', x.chunk(2, 2)[1]!],
        ['unbind', x.unbind(0)[1]!],
        ['diagonal', x.diagonal(0, 1, 2)],
        ['to(same dtype)', x.to('int64')],
        ['detach', x.detach()],
      ];
      for (const [name, v] of views) assert.equal(v.sharesStorageWith(x), true, name);
      // A write through a view shows in the base.
      x.view(-1).narrow(0, 0, 1).fill_(100);
      assert.equal(x.index(0, 0, 0).item(), 100);
    }),
  );

  test(
    'copying ops',
    scoped(() => {
      const x = x234();
      const copies: [string, torch.Tensor][] = [
        ['clone', x.clone()],
        ['contiguous (non-contiguous input)', x.transpose(0, 1).contiguous()],
        ['reshape (non-contiguous input)', x.transpose(0, 1).reshape(-1)],
        ['repeat', x.repeat(1, 1, 1)],
        ['cat', torch.cat([x])],
        ['stack', torch.stack([x])],
        ['index with tensor', x.index(torch.tensor([0, 1]))],
        ['indexSelect', x.indexSelect(0, torch.tensor([0]))],
        ['maskedSelect', x.maskedSelect(x.gt(3))],
        ['gather', x.gather(0, torch.zeros([1, 3, 4], { dtype: 'int64' }))],
        ['to(other dtype)', x.to('float32')],
        ['add', x.add(0)],
      ];
      for (const [name, c] of copies) assert.equal(c.sharesStorageWith(x), false, name);
      const c = x.clone();
      c.fill_(0);
      assert.equal(x.index(1, 2, 3).item(), 23);
    }),
  );
});
