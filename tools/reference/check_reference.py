#!/usr/bin/env python3
"""Self-checks of tools/reference/qwen25vl_reference.py. Run: /usr/bin/python3 tools/reference/check_reference.py

Uses test/fixtures/qwen25vl-tiny (run tools/gen_model_fixture.py first). Exits non-zero on any failure.
"""
import copy
import json
import math
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, HERE)
import qwen25vl_reference as ref  # noqa: E402

FIX = os.path.join(HERE, "..", "..", "test", "fixtures", "qwen25vl-tiny")
torch.set_num_threads(min(2, torch.get_num_threads()))

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}{(': ' + detail) if detail else ''}")


def maxdiff(a, b):
    return (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()


cfg = ref.load_config(FIX)
weights = ref.load_weights(FIX)
inp, _ = ref.read_safetensors(os.path.join(FIX, "inputs.safetensors"))
exp, exp_meta = ref.read_safetensors(os.path.join(FIX, "expected.safetensors"))
ARGS = (inp["input_ids"], inp["attention_mask"], inp["pixel_values"], inp["image_grid_thw"])
VEC = ref.Qwen25VLEmbedderRef(cfg, weights, impl="vectorized")
LOOP = ref.Qwen25VLEmbedderRef(cfg, weights, impl="loop")
IMG, VS, VE, PAD = cfg["image_token_id"], cfg["vision_start_token_id"], cfg["vision_end_token_id"], 256

torch.no_grad().__enter__()

# ---------------------------------------------------------------------------------------------- 0. I/O
with tempfile.TemporaryDirectory() as d:
    t = {
        "a": torch.randn(3, 4),
        "b": torch.arange(5, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
        "d": torch.tensor([True, False]),
        "e": torch.randn(7).to(torch.float16),
        "z": torch.zeros(0, 3),
    }
    p = os.path.join(d, "x.safetensors")
    ref.write_safetensors(p, t, {"k": "v"})
    back, meta = ref.read_safetensors(p)
    ok = meta == {"k": "v"} and set(back) == set(t)
    ok = ok and all(back[k].dtype == t[k].dtype and torch.equal(back[k], t[k]) for k in t)
    raw = open(p, "rb").read()
    ok = ok and (8 + int.from_bytes(raw[:8], "little")) % 8 == 0
    check("safetensors round trip (F32/I64/BF16/BOOL/F16/empty, metadata, 8-byte aligned data)", ok)
    # sharded checkpoint through model.safetensors.index.json
    names = sorted(weights)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    wm = {}
    for fname, ns in shards.items():
        ref.write_safetensors(os.path.join(d, fname), {n: weights[n] for n in ns}, {"format": "pt"})
        wm.update({n: fname for n in ns})

    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)
    sw = ref.load_weights(d)
    check("sharded load (index.json) equals single-file load", set(sw) == set(weights) and all(
        torch.equal(sw[n], weights[n]) for n in weights))

# ---------------------------------------------------------------------------------------------- 1. fixture
o_bi = VEC.forward(*ARGS, attention="bidirectional", pooling="mean")
o_ca = VEC.forward(*ARGS, attention="causal", pooling="last")
same = all(
    torch.equal(a, b)
    for a, b in [
        (o_bi["embeddings"], exp["bidirectional.embeddings_mean"]),
        (o_ca["embeddings"], exp["causal.embeddings_last"]),
        (o_bi["vision"]["output"], exp["vision.output"]),
        (o_bi["position_ids"], exp["position_ids"]),
    ]
)
check("vectorised path reproduces expected.safetensors bit-exactly", same)

# ---------------------------------------------------------------------------------------------- 2. loop == vectorised
l_bi = LOOP.forward(*ARGS, attention="bidirectional", pooling="mean")
l_ca = LOOP.forward(*ARGS, attention="causal", pooling="last")
d_vis = maxdiff(l_bi["vision"]["output"], o_bi["vision"]["output"])
d_pe = maxdiff(l_bi["vision"]["patch_embeds"], o_bi["vision"]["patch_embeds"])
d_hb = maxdiff(l_bi["hidden_states"], o_bi["hidden_states"])
d_hc = maxdiff(l_ca["hidden_states"], o_ca["hidden_states"])
d_eb = maxdiff(l_bi["embeddings"], o_bi["embeddings"])
d_ec = maxdiff(l_ca["embeddings"], o_ca["embeddings"])
check("patch embed Conv3d (loop path) == Linear(1176) (vectorised)", d_pe < 1e-5, f"max diff {d_pe:.2e}")
check("vision: loop-per-segment attention == batched segment attention", d_vis < 1e-5, f"max diff {d_vis:.2e}")
check(
    "LLM: loop attention == batched attention (bidirectional, causal; all positions incl. pad)",
    max(d_hb, d_hc) < 1e-4,
    f"hidden {d_hb:.2e}/{d_hc:.2e}, embeddings {d_eb:.2e}/{d_ec:.2e}",
)
d_fix = max(
    maxdiff(l_bi["embeddings"], exp["bidirectional.embeddings_mean"]),
    maxdiff(l_ca["embeddings"], exp["causal.embeddings_last"]),
)
check("loop path matches expected.safetensors", d_fix < 1e-5, f"max diff {d_fix:.2e}")

# ---------------------------------------------------------------------------------------------- 3. windows
# hand-derived window order for merged grids 6x5 (index r*5+c) and 4x4 (offset 30): 4x4-token windows row-major
win_expected = (
    [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18]  # window (0,0)
    + [4, 9, 14, 19]  # window (0,1): column 4, rows 0-3
    + [20, 21, 22, 23, 25, 26, 27, 28]  # window (1,0): rows 4-5, cols 0-3
    + [24, 29]  # window (1,1)
    + list(range(30, 46))  # 4x4 image = exactly one window
)
cu_expected = [0, 64, 80, 112, 120, 184]
wi, cw = ref.vision_window_index(torch.tensor([[1, 12, 10], [1, 8, 8]]), 112, 14, 2)
check("window_index / cu_window_seqlens equal hand-derived values (6x5 + 4x4 merged)",
      wi.tolist() == win_expected and cw.tolist() == cu_expected, f"{cw.tolist()}")
check("fixture window_index / cu_window_seqlens (incl. 3x7 image)",
      exp["vision.window_index"].tolist() == win_expected + [46 + x for x in [0, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 17,
                                                                               4, 5, 6, 11, 12, 13, 18, 19, 20]]
      and exp["vision.cu_window_seqlens"].tolist() == cu_expected + [232, 268])


def window_index_tensor_ops(grid_thw, ws, unit=4, merge=2):
    """Second derivation, HF-style: pad the merged grid by ws - g % ws (a whole empty window when divisible),
    reshape into windows, drop pads, cumulative counts, unique_consecutive."""
    idx_all, cu, base = [], [0], 0
    for t, h, w in grid_thw.tolist():
        gh, gw = h // merge, w // merge
        index = torch.arange(t * gh * gw).reshape(t, gh, gw)
        ph, pw = ws - gh % ws, ws - gw % ws
        padded = torch.nn.functional.pad(index, (0, pw, 0, ph), value=-1)
        nh, nw = (gh + ph) // ws, (gw + pw) // ws
        win = padded.reshape(t, nh, ws, nw, ws).permute(0, 1, 3, 2, 4).reshape(t, nh * nw, ws, ws)
        counts = (win != -1).sum([2, 3]).reshape(-1)
        flat = win.reshape(-1)
        idx_all.append(flat[flat != -1] + base)
        cu.extend((counts.cumsum(0) * unit + cu[-1]).tolist())
        base += t * gh * gw
    return torch.cat(idx_all), torch.unique_consecutive(torch.tensor(cu))


gr = torch.tensor([[1, 8, 8], [1, 12, 10], [2, 6, 14], [1, 16, 16], [1, 2, 2], [1, 18, 4], [3, 4, 10]])
wi1, cw1 = ref.vision_window_index(gr, 112, 14, 2)
wi2, cw2 = window_index_tensor_ops(gr, 4)
check("window index: loop derivation == padded-reshape derivation (divisible grids, t>1)",
      torch.equal(wi1, wi2) and torch.equal(cw1, cw2))
# hand-derived merge-window order of patch coordinates for one 4x4-patch image
pos_expected = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3),
                (2, 0), (2, 1), (3, 0), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3)]
pos = ref.vision_rot_pos_ids(torch.tensor([[1, 4, 4]]), 2)
check("vision rotary (h, w) positions in merge-window order", [tuple(p) for p in pos.tolist()] == pos_expected)

cfg_full = copy.deepcopy(cfg)
cfg_full["vision_config"]["fullatt_block_indexes"] = list(range(cfg["vision_config"]["depth"]))
VFULL = ref.Qwen25VLEmbedderRef(cfg_full, weights)
g = torch.Generator().manual_seed(1)
small = torch.tensor([[1, 8, 6], [1, 4, 4], [1, 6, 8], [1, 8, 8]])  # merged 4x3, 2x2, 3x4, 4x4: one window each
px = torch.randn(int((small[:, 1] * small[:, 2]).sum()), 1176, generator=g)
a = VEC.vision(px, small)
b = VFULL.vision(px, small)
check(
    "window attention == full attention when every image fits in one window",
    torch.equal(a["window_index"], torch.arange(a["window_index"].numel()))
    and torch.equal(a["cu_window_seqlens"], a["cu_seqlens"])
    and maxdiff(a["output"], b["output"]) < 1e-6,
    f"max diff {maxdiff(a['output'], b['output']):.2e}",
)
cfg_bigwin = copy.deepcopy(cfg)
cfg_bigwin["vision_config"]["window_size"] = 112 * 4
a = ref.Qwen25VLEmbedderRef(cfg_bigwin, weights).vision(inp["pixel_values"], inp["image_grid_thw"])
b = VFULL.vision(inp["pixel_values"], inp["image_grid_thw"])
d_big = maxdiff(a["output"], b["output"])
d_neg = maxdiff(o_bi["vision"]["output"], b["output"])
check("fixture images with window_size 448 (one window each) == full attention", d_big < 1e-5, f"{d_big:.2e}")
check("negative control: fixture images (several windows) != full attention", d_neg > 1e-3, f"{d_neg:.2e}")
# images are independent in the vision tower
parts, off = [], 0
for gr in inp["image_grid_thw"]:
    n = int(gr.prod())
    parts.append(VEC.vision(inp["pixel_values"][off : off + n], gr[None])["output"])
    off += n
d_img = maxdiff(torch.cat(parts), o_bi["vision"]["output"])
check("vision per image alone == batched vision", d_img < 1e-5, f"{d_img:.2e}")

# ---------------------------------------------------------------------------------------------- 4. attention mode
ids2 = inp["input_ids"].clone()
row, pos_change = 1, 31  # row 1: last image ends at 27 (vision_end); 28..33 text; change token 31
ids2[row, pos_change] = (ids2[row, pos_change] + 1) % 256
b2 = VEC.forward(ids2, *ARGS[1:], attention="bidirectional", pooling="mean")
c2 = VEC.forward(ids2, *ARGS[1:], attention="causal", pooling="last")
d_b = maxdiff(b2["hidden_states"][row, :pos_change], o_bi["hidden_states"][row, :pos_change])
d_c = maxdiff(c2["hidden_states"][row, :pos_change], o_ca["hidden_states"][row, :pos_change])
d_c_after = maxdiff(c2["hidden_states"][row, pos_change:34], o_ca["hidden_states"][row, pos_change:34])
d_other = max(maxdiff(b2["hidden_states"][r], o_bi["hidden_states"][r]) for r in (0, 2))
check("bidirectional: changing a later token changes earlier hidden states", d_b > 1e-4, f"{d_b:.2e}")
check("causal: changing a later token leaves earlier hidden states unchanged", d_c == 0.0,
      f"earlier {d_c:.2e}, later {d_c_after:.2e}")
check("changing a token of one row leaves other rows unchanged", d_other == 0.0, f"{d_other:.2e}")

# ---------------------------------------------------------------------------------------------- 5. padding / rows
rows = ref.split_rows(*ARGS, IMG, VS)
s_bi, s_ca = [], []
for r in rows:
    ra = (r["input_ids"], r["attention_mask"], r["pixel_values"], r["image_grid_thw"])
    s_bi.append(VEC.forward(*ra, attention="bidirectional", pooling="mean")["embeddings"][0])
    s_ca.append(VEC.forward(*ra, attention="causal", pooling="last")["embeddings"][0])
d_rb = maxdiff(torch.stack(s_bi), o_bi["embeddings"])
d_rc = maxdiff(torch.stack(s_ca), o_ca["embeddings"])
check("per-row (unpadded) embeddings == batched, bidirectional mean", d_rb < 1e-5, f"{d_rb:.2e}")
check("per-row (unpadded) embeddings == batched, causal last", d_rc < 1e-5, f"{d_rc:.2e}")
check("fixture single.* == batched within 1e-5", max(
    maxdiff(exp["single.bidirectional.embeddings_mean"], exp["bidirectional.embeddings_mean"]),
    maxdiff(exp["single.causal.embeddings_last"], exp["causal.embeddings_last"])) < 1e-5)
# more padding and different pad ids do not change embeddings
ext_ids = inp["input_ids"].masked_fill(inp["attention_mask"] == 0, 3)
ext_ids = torch.cat([ext_ids, torch.full((3, 9), 7)], 1)
ext_mask = torch.cat([inp["attention_mask"], torch.zeros(3, 9, dtype=torch.int64)], 1)
e2 = VEC.forward(ext_ids, ext_mask, *ARGS[2:], attention="bidirectional", pooling="mean")["embeddings"]
check("extra padding / other pad ids do not change embeddings", maxdiff(e2, o_bi["embeddings"]) < 1e-5,
      f"{maxdiff(e2, o_bi['embeddings']):.2e}")

# pooling definitions
h, m = o_bi["hidden_states"], inp["attention_mask"]
mean_manual = torch.stack([h[i, : int(m[i].sum())].mean(0) for i in range(3)])
mean_manual = mean_manual / mean_manual.norm(dim=-1, keepdim=True)
hc = o_ca["hidden_states"]
last_manual = torch.stack([hc[i, int(m[i].sum()) - 1] for i in range(3)])
last_manual = last_manual / last_manual.norm(dim=-1, keepdim=True)
check("mean pooling / last-token pooling match manual definitions",
      maxdiff(mean_manual, o_bi["embeddings"]) < 1e-6 and maxdiff(last_manual, o_ca["embeddings"]) < 1e-6)

# ---------------------------------------------------------------------------------------------- 6. M-RoPE
# row A: [t t VS IMG*6 VE t t]  grid (1,4,6) -> merged 2x3
# row B: [VS IMG*4 VE t VS IMG*2 VE pad]  grids (1,4,4) -> 2x2, (1,2,4) -> 1x2
# row C: [t t t t] + 8 pads   (hand-derived positions below; pad positions are 1)
T = 5
grids = torch.tensor([[1, 4, 6], [1, 4, 4], [1, 2, 4]])
expected = torch.tensor([
    [  # t axis
        [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8],
        [0, 1, 1, 1, 1, 3, 4, 5, 6, 6, 8, 1],  # last position (index 11) is pad -> 1
        [0, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
    [  # h axis
        [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8],
        [0, 1, 1, 2, 2, 3, 4, 5, 6, 6, 8, 1],
        [0, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
    [  # w axis
        [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8],
        [0, 1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 1],
        [0, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
])
ids = torch.tensor([
    [T, T, VS] + [IMG] * 6 + [VE, T, T],
    [VS] + [IMG] * 4 + [VE, T, VS] + [IMG] * 2 + [VE, PAD],
    [T] * 4 + [PAD] * 8,
])
mask = (ids != PAD).long()
got = ref.rope_index(ids, mask, grids, IMG, VS, 2)
check("M-RoPE position ids == hand-derived (image first/middle, 2 images, text-only row, pads = 1)",
      torch.equal(got, expected), "" if torch.equal(got, expected) else f"\n{got}")
got_txt = ref.rope_index(ids[2:], mask[2:], None, IMG, VS, 2)
check("text-only batch: cumsum(mask)-1, pads = 1", got_txt[:, 0].tolist() == [[0, 1, 2, 3] + [1] * 8] * 3)
# channel -> axis map for head_dim 16, mrope_section [2,3,3]: t t h h h w w w | t t h h h w w w
axis = [0, 0, 1, 1, 1, 2, 2, 2] * 2
pid = torch.tensor([[[3]], [[50]], [[700]]])
cos, sin = ref.mrope_cos_sin(pid, 16, 1e6, [2, 3, 3])
inv = [1.0 / (1e6 ** (2 * i / 16)) for i in range(8)]
want_c = torch.tensor([math.cos(pid[axis[c], 0, 0].item() * inv[c % 8]) for c in range(16)])
want_s = torch.tensor([math.sin(pid[axis[c], 0, 0].item() * inv[c % 8]) for c in range(16)])
check("M-RoPE cos/sin channel sections (axis j mod 3 over mrope_section*2)",
      maxdiff(cos[0, 0], want_c) < 1e-5 and maxdiff(sin[0, 0], want_s) < 1e-5,
      f"{maxdiff(cos[0, 0], want_c):.1e}")

# ---------------------------------------------------------------------------------------------- 7. errors
try:
    bad = inp["input_ids"].clone()
    bad[1, 10] = 7  # one image token fewer than vision features
    VEC.forward(bad, *ARGS[1:])
    check("image token / feature count mismatch raises", False)
except ValueError as e:
    check("image token / feature count mismatch raises", True, str(e)[:60])

failed = [n for n, ok in results if not ok]
print(f"\n{len(results) - len(failed)}/{len(results)} checks passed")
sys.exit(1 if failed else 0)
