import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  applyMaeMask,
  applyMlmMask,
  maePredictionMask,
  sampleMaeTokenMask,
  sampleMlmMask,
} from '../../src/train/cpt/masking.js';
import * as torch from '../../src/torch/index.js';

const SPECIAL = [0, 1, 2, 99];

describe('stage-1 masking', () => {
  test('MLM selects real non-special tokens at the requested rate and never specials or padding', () => {
    torch.manualSeed(11);
    const B = 8;
    const L = 500;
    const ids: number[][] = [];
    const mask: number[][] = [];
    for (let b = 0; b < B; b++) {
      const row: number[] = [];
      const m: number[] = [];
      for (let i = 0; i < L; i++) {
        row.push(i % 10 === 0 ? SPECIAL[i % 4]! : 3 + ((i * 7 + b) % 50));
        m.push(i < L - 50 * (b % 3) ? 1 : 0);
      }
      ids.push(row);
      mask.push(m);
    }
    const inputIds = torch.tensor(ids);
    const attention = torch.tensor(mask);
    const selected = sampleMlmMask(inputIds, attention, SPECIAL, 0.4);
    const sel = selected.tolist() as boolean[][];
    let candidates = 0;
    let chosen = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < L; i++) {
        const isCandidate = mask[b]![i] === 1 && !SPECIAL.includes(ids[b]![i]!);
        if (!isCandidate) assert.equal(sel[b]![i], false, `row ${b} pos ${i} must not be masked`);
        else {
          candidates++;
          if (sel[b]![i]) chosen++;
        }
      }
    }
    const rate = chosen / candidates;
    // 3,000+ Bernoulli(0.4) draws: 5 standard deviations ≈ 0.045.
    assert.ok(Math.abs(rate - 0.4) < 0.045, `rate ${rate}`);
    const { ids: masked, labels } = applyMlmMask(inputIds, selected, 77);
    const mIds = masked.tolist() as number[][];
    const lab = labels.tolist() as number[][];
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < L; i++) {
        if (sel[b]![i]) {
          assert.equal(mIds[b]![i], 77);
          assert.equal(lab[b]![i], ids[b]![i]);
        } else {
          assert.equal(mIds[b]![i], ids[b]![i]);
          assert.equal(lab[b]![i], -100);
        }
      }
    }
  });

  test('masks are reproducible under a seed and differ across seeds', () => {
    const ids = torch.randint(3, 50, [4, 64]);
    const att = torch.ones([4, 64], { dtype: 'int64' });
    torch.manualSeed(5);
    const a = sampleMlmMask(ids, att, SPECIAL, 0.4).toArray();
    torch.manualSeed(5);
    const b = sampleMlmMask(ids, att, SPECIAL, 0.4).toArray();
    torch.manualSeed(6);
    const c = sampleMlmMask(ids, att, SPECIAL, 0.4).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  test('MAE masks whole merged tokens: all 4 pixel rows of a masked token get the same noise vector', () => {
    torch.manualSeed(3);
    const tokens = 400;
    const tokenMask = sampleMaeTokenMask(tokens, 0.5);
    const rate = tokenMask.sum().item() / tokens;
    assert.ok(Math.abs(rate - 0.5) < 0.125, `rate ${rate}`);
    const pixels = torch.randn([tokens * 4, 6]);
    const noise = torch.tensor(new Float32Array([9, 8, 7, 6, 5, 4]));
    const corrupted = applyMaeMask(pixels, tokenMask, noise, 4);
    const tm = tokenMask.tolist() as boolean[];
    const rows = corrupted.tolist() as number[][];
    const orig = pixels.tolist() as number[][];
    for (let t = 0; t < tokens; t++) {
      for (let r = 0; r < 4; r++) {
        assert.deepEqual(rows[t * 4 + r], tm[t] ? [9, 8, 7, 6, 5, 4] : orig[t * 4 + r]);
      }
    }
  });

  test('MAE prediction positions are the image tokens of masked merged tokens, in order', () => {
    const IMG = 50;
    const ids = torch.tensor([
      [1, IMG, IMG, IMG, 2, 0],
      [IMG, IMG, 3, 4, 0, 0],
    ]);
    const tokenMask = torch.tensor([true, false, true, false, true]);
    const pred = maePredictionMask(ids, IMG, tokenMask).tolist();
    assert.deepEqual(pred, [
      [false, true, false, true, false, false],
      [false, true, false, false, false, false],
    ]);
    assert.throws(() => maePredictionMask(ids, IMG, torch.tensor([true])), /covers 1 merged tokens but the ids hold 5/);
  });
});
