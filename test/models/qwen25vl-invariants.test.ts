import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import * as m from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moca-model-'));
after(() => rmSync(dir, { recursive: true, force: true }));

torch.manualSeed(1234);
const cfg = m.presetConfig('tiny');
const { visionStartTokenId: VS, visionEndTokenId: VE, imageTokenId: IMG } = cfg;
const PAD = cfg.bosTokenId!;

function randomModel(attention: m.AttentionMode = 'bidirectional', config = cfg): m.Qwen25VLModel {
  torch.manualSeed(7);
  const model = new m.Qwen25VLModel(config, { attention });
  // Larger-than-default weights so that differences propagate visibly through a 2-layer model.
  torch.noGrad(() => {
    for (const p of model.parameters()) if (p.ndim >= 2) p.mul_(3);
  });
  return model.eval();
}

/** ids of one row: text, an image of `grid` (t, h, w) expanded to its merged tokens, more text. */
function rowWithImage(before: number[], grid: m.GridThw, afterIds: number[]): number[] {
  return [...before, VS, ...new Array<number>(m.imageTokenCount(grid, 2)).fill(IMG), VE, ...afterIds];
}

function batch(rows: number[][]): { inputIds: torch.Tensor; attentionMask: torch.Tensor } {
  const len = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: torch.tensor(rows.map((r) => [...r, ...new Array<number>(len - r.length).fill(PAD)])),
    attentionMask: torch.tensor(rows.map((r) => [...r.map(() => 1), ...new Array<number>(len - r.length).fill(0)])),
  };
}

function maxAbsDiff(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item());
}

describe('Qwen2.5-VL invariants (tiny random model)', () => {
  const gridA: m.GridThw = [1, 12, 10]; // merged 6×5: two window rows, partial windows
  const gridB: m.GridThw = [1, 4, 6];
  const pixA = torch.randn([120, 1176]).keep();
  const pixB = torch.randn([24, 1176]).keep();
  const rows = [
    rowWithImage([5, 6, 7], gridA, [8, 9]),
    [30, 31, 32, 33],
    rowWithImage([40], gridB, [41, 42, 43, 44, 45]),
  ];

  test('batch of mixed lengths equals rows embedded one by one (padding invariance)', () => {
    const model = randomModel();
    torch.noGrad(() => {
      const batched = model.embed({
        ...batch(rows),
        pixelValues: torch.cat([pixA, pixB]),
        imageGridThw: [gridA, gridB],
      });
      const singles = [
        model.embed({ ...batch([rows[0]!]), pixelValues: pixA, imageGridThw: [gridA] }),
        model.embed({ ...batch([rows[1]!]) }),
        model.embed({ ...batch([rows[2]!]), pixelValues: pixB, imageGridThw: [gridB] }),
      ];
      singles.forEach((s, i) => {
        const d = maxAbsDiff(batched.index(i), s.index(0));
        assert.ok(d < 1e-5, `row ${i}: batched vs alone differ by ${d}`);
      });
    });
  });

  test('bidirectional: a later token changes earlier hidden states; causal: it does not', () => {
    const a = [3, 4, 5, 6, 7, 8];
    const b = [3, 4, 5, 6, 7, 99];
    for (const mode of ['bidirectional', 'causal'] as const) {
      const model = randomModel(mode);
      torch.noGrad(() => {
        const ha = model.hiddenStates(batch([a]));
        const hb = model.hiddenStates(batch([b]));
        const earlier = maxAbsDiff(ha.index(0, '0:5'), hb.index(0, '0:5'));
        const last = maxAbsDiff(ha.index(0, 5), hb.index(0, 5));
        assert.ok(last > 1e-3, `${mode}: the changed position itself must change`);
        if (mode === 'bidirectional')
          assert.ok(earlier > 1e-4, `bidirectional: earlier positions changed by ${earlier}`);
        else assert.ok(earlier < 1e-6, `causal: earlier positions changed by ${earlier}`);
      });
    }
  });

  test('causal mode with last-token pooling ignores padding too', () => {
    const model = randomModel('causal');
    torch.noGrad(() => {
      const both = model.embed(
        batch([
          [3, 4, 5, 6, 7],
          [9, 8],
        ]),
        { pooling: 'last' },
      );
      const alone = model.embed(batch([[9, 8]]), { pooling: 'last' });
      assert.ok(maxAbsDiff(both.index(1), alone.index(0)) < 1e-5);
    });
  });

  test('window attention equals full attention when the image fits one window', () => {
    const small: m.GridThw = [1, 8, 6]; // merged 4×3 ≤ one 4×4 window
    const pix = torch.randn([48, 1176]);
    const windowed = randomModel('bidirectional', { ...cfg, vision: { ...cfg.vision, fullattBlockIndexes: [] } });
    const full = randomModel('bidirectional', { ...cfg, vision: { ...cfg.vision, fullattBlockIndexes: [0, 1] } });
    full.loadStateDict(windowed.stateDict());
    torch.noGrad(() => {
      const a = windowed.visual.forward(pix, [small]);
      const b = full.visual.forward(pix, [small]);
      assert.ok(maxAbsDiff(a, b) < 1e-5);
      // …and differs when the image spans several windows.
      const big = torch.randn([120, 1176]);
      assert.ok(maxAbsDiff(windowed.visual.forward(big, [gridA]), full.visual.forward(big, [gridA])) > 1e-4);
    });
  });

  test('window layout: windows of 4×4 merged tokens, row-major, partial windows kept, pads dropped', () => {
    const layout = m.windowLayout([[1, 12, 10]], cfg.vision); // merged 6 rows × 5 cols
    // Windows: (rows 0-3, cols 0-3)=16, (rows 0-3, col 4)=4, (rows 4-5, cols 0-3)=8, (rows 4-5, col 4)=2.
    assert.deepEqual(
      layout.windowSegments.map(([s, e]) => (e - s) / 4),
      [16, 4, 8, 2],
    );
    assert.deepEqual(layout.windowIndex.slice(0, 5), [0, 1, 2, 3, 5]);
    assert.deepEqual(layout.windowIndex.slice(16, 20), [4, 9, 14, 19]);
    assert.deepEqual(layout.fullSegments, [[0, 120]]);
    assert.equal(new Set(layout.windowIndex).size, 30);
  });

  test('image features must match the image tokens', () => {
    const model = randomModel();
    const inputs = batch([rowWithImage([1], gridB, [2])]);
    assert.throws(
      () => model.embed({ ...inputs, pixelValues: pixA, imageGridThw: [gridA] }),
      /tokens: 6, features 30|image tokens do not match/,
    );
    assert.throws(() => model.embed(inputs), /image tokens but no pixel values/);
  });

  test('embeddings are L2-normalised float32 vectors of hidden size', () => {
    const model = randomModel();
    const e = torch.noGrad(() => model.embed(batch([[1, 2, 3]])));
    assert.deepEqual(e.shape, [1, cfg.hiddenSize]);
    assert.equal(e.dtype, 'float32');
    assert.ok(Math.abs(e.norm().item() - 1) < 1e-6);
  });
});

describe('M-RoPE position ids', () => {
  test('text, image and text after the image follow get_rope_index (hand-derived)', () => {
    // tokens: a b VS [img 2×3 merged] VE c  (mask all ones), then a padded text-only row.
    const row0 = [1, 2, VS, IMG, IMG, IMG, IMG, IMG, IMG, VE, 3];
    const row1 = [4, 5, 6, PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD];
    const mask = [...row0.map(() => 1), 1, 1, 1, ...new Array<number>(8).fill(0)];
    const pos = m.ropePositionIds([...row0, ...row1], mask, 2, 11, [[1, 4, 6]], {
      imageTokenId: IMG,
      visionStartTokenId: VS,
      spatialMergeSize: 2,
    });
    const axis = (a: number, b: number) => Array.from(pos.slice(a * 22 + b * 11, a * 22 + b * 11 + 11));
    // Text a b VS → 0 1 2 on all axes; image offset 3: t=3, h=3+row, w=3+col; VE resumes at max(3+1, 3+2)+1 = 6.
    assert.deepEqual(axis(0, 0), [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]);
    assert.deepEqual(axis(1, 0), [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]);
    assert.deepEqual(axis(2, 0), [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]);
    // Text-only row: 0.. over real tokens, padding positions are 1.
    for (let a = 0; a < 3; a++) assert.deepEqual(axis(a, 1), [0, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
  });

  test('two images in one row: positions continue after each image', () => {
    const ids = [VS, IMG, VE, 7, VS, IMG, IMG, VE];
    const pos = m.ropePositionIds(
      ids,
      ids.map(() => 1),
      1,
      8,
      [
        [1, 2, 2],
        [1, 2, 4],
      ],
      { imageTokenId: IMG, visionStartTokenId: VS, spatialMergeSize: 2 },
    );
    // VS→0; img (1×1) at 1; VE 7 VS → 2 3 4; img (1×2) t=5, h=5, w=5,6; VE → 7.
    assert.deepEqual(Array.from(pos.slice(0, 8)), [0, 1, 2, 3, 4, 5, 5, 7]);
    assert.deepEqual(Array.from(pos.slice(8, 16)), [0, 1, 2, 3, 4, 5, 5, 7]);
    assert.deepEqual(Array.from(pos.slice(16, 24)), [0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

describe('Hugging Face checkpoints', () => {
  test('save → load reproduces every parameter bit for bit, with transformers key names', () => {
    const model = randomModel();
    const out = path.join(dir, 'roundtrip');
    m.saveQwen25VL(out, model);
    const saved = torch.loadSafetensors(path.join(out, 'model.safetensors'));
    assert.ok(saved.has('visual.patch_embed.proj.weight'));
    assert.deepEqual(saved.get('visual.patch_embed.proj.weight')!.shape, [32, 3, 2, 14, 14]);
    assert.ok(saved.has('visual.merger.mlp.2.bias'));
    assert.ok(saved.has('model.layers.1.self_attn.q_proj.bias'));
    assert.ok(!saved.has('model.layers.1.self_attn.o_proj.bias'));
    assert.ok(!saved.has('lm_head.weight'), 'tied head is not stored');
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.model_type, 'qwen2_5_vl');
    assert.deepEqual(config.architectures, ['Qwen2_5_VLForConditionalGeneration']);
    const { model: loaded, report } = m.loadQwen25VL(out);
    assert.equal(report.zeroCopy, report.loaded);
    for (const [name, p] of model.stateDict()) {
      assert.ok(p.equal(loaded.stateDict().get(name)!), `${name} differs after reload`);
    }
  });

  test('the newer transformers layout (model.language_model.*, model.visual.*) loads the same', () => {
    const model = randomModel();
    const out = path.join(dir, 'newlayout');
    m.saveQwen25VL(out, model);
    const tensors = torch.loadSafetensors(path.join(out, 'model.safetensors'));
    const renamed = new Map<string, torch.Tensor>();
    for (const [k, v] of tensors) {
      renamed.set(k.startsWith('visual.') ? `model.${k}` : k.replace(/^model\./, 'model.language_model.'), v);
    }
    torch.saveSafetensors(path.join(out, 'model.safetensors'), renamed);
    const { model: loaded } = m.loadQwen25VL(out);
    const ids = batch([[1, 2, 3, 4]]);
    torch.noGrad(() => assert.ok(maxAbsDiff(model.embed(ids), loaded.embed(ids)) === 0));
  });

  test('bf16 checkpoint loads into an f32 model and a bf16 model', () => {
    const model = randomModel();
    const out = path.join(dir, 'bf16');
    m.saveQwen25VL(out, model, { dtype: 'bfloat16' });
    assert.equal(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
    const f32 = m.loadQwen25VL(out, { dtype: 'float32' }).model;
    const bf16 = m.loadQwen25VL(out, { dtype: 'bfloat16' }).model;
    assert.equal(bf16.dtype, 'bfloat16');
    const ids = batch([[1, 2, 3, 4]]);
    torch.noGrad(() => {
      const a = model.embed(ids);
      const b = f32.embed(ids);
      const c = bf16.embed(ids);
      assert.ok(torch.F.cosineSimilarity(a, b).item() > 0.999);
      assert.ok(torch.F.cosineSimilarity(a, c).item() > 0.99);
    });
  });

  test('untied LM head is saved and loaded; tied head shares the embedding', () => {
    const untied = { ...cfg, tieWordEmbeddings: false };
    torch.manualSeed(3);
    const model = new m.Qwen25VLModel(untied, { withLmHead: true });
    const out = path.join(dir, 'untied');
    m.saveQwen25VL(out, model);
    assert.ok(torch.loadSafetensors(path.join(out, 'model.safetensors')).has('lm_head.weight'));
    const loaded = m.loadQwen25VL(out, { withLmHead: true }).model;
    assert.ok(loaded.lm_head!.weight.equal(model.lm_head!.weight));
    const tied = new m.Qwen25VLModel(cfg, { withLmHead: true });
    assert.equal(tied.lm_head!.weight, tied.model.embed_tokens.weight);
    // An embedding-only load skips the head.
    const { report } = m.loadQwen25VL(out);
    assert.deepEqual(report.skipped, ['lm_head.weight']);
  });

  test('missing, unexpected and mis-shaped tensors are reported by name', () => {
    const model = randomModel();
    const out = path.join(dir, 'broken');
    m.saveQwen25VL(out, model);
    const tensors = torch.loadSafetensors(path.join(out, 'model.safetensors'));
    tensors.delete('model.norm.weight');
    tensors.set('model.extra.weight', torch.zeros([2]));
    tensors.set('visual.merger.ln_q.weight', torch.zeros([7]));
    torch.saveSafetensors(path.join(out, 'model.safetensors'), tensors);
    assert.throws(
      () => m.loadQwen25VL(out),
      (e: Error) =>
        /missing tensors \(1\): model\.norm\.weight/.test(e.message) &&
        /unexpected tensors \(1\): model\.extra\.weight/.test(e.message) &&
        /visual\.merger\.ln_q\.weight: checkpoint \[7\] vs model \[32\]/.test(e.message),
    );
  });

  test('an unsupported model_type is refused with a clear error', () => {
    const out = path.join(dir, 'llama');
    m.saveQwen25VL(out, randomModel());
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...config, model_type: 'llama' }));
    assert.throws(() => m.loadQwen25VL(out), /unsupported model_type 'llama'/);
  });
});
