#!/usr/bin/env python3
"""Independent PyTorch reference of MoCa's embedding model (Qwen2.5-VL backbone, bidirectional attention).

Written from /work/shared/docs/moca-spec.md §1 and the semantics of transformers 4.50
`modeling_qwen2_5_vl.py` (eager paths); it does not import transformers or safetensors.
Runs with Debian's torch 1.13 (`/usr/bin/python3`).

Public API
  read_safetensors(path) -> (dict name->tensor, metadata dict)
  write_safetensors(path, tensors, metadata=None)
  load_config(dir) -> dict                    (config.json as written by transformers)
  load_weights(dir) -> dict name->tensor      (model.safetensors or model.safetensors.index.json + shards)
  Qwen25VLEmbedderRef(config, weights, impl="vectorized"|"loop")
    .forward(input_ids, attention_mask, pixel_values, image_grid_thw,
             attention="bidirectional"|"causal", pooling="mean"|"last") -> dict
    .vision(pixel_values, grid_thw) -> dict
    .rope_index(input_ids, attention_mask, image_grid_thw) -> (3, B, L) int64
  split_rows(input_ids, attention_mask, pixel_values, image_grid_thw, image_token_id, vision_start_token_id)
    -> list of per-row inputs with padding removed (for padding-invariance checks)

All computation is float32 (weights are upcast); softmax and RMSNorm statistics in float32 like HF.
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# safetensors (minimal): u64 LE header size N, N bytes of JSON header, then the raw data section.
# header = {name: {"dtype": str, "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
# offsets are relative to the start of the data section; little-endian, C order.

_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n :]
    metadata = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        dtype = _ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = list(info["shape"])
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.tensor([], dtype=dtype).element_size()
        if end - begin != numel * itemsize:
            raise ValueError(f"{path}: tensor {name}: byte size {end - begin} != {numel}*{itemsize}")
        if numel == 0:
            out[name] = torch.empty(shape, dtype=dtype)
            continue
        buf = bytearray(data[begin:end])  # copy: writable, aligned
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(shape).clone()
    return out, metadata


def write_safetensors(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _ST_NAMES:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        if t.dtype == torch.bfloat16:
            b = t.view(torch.int16).numpy().tobytes()
        else:
            b = t.numpy().tobytes()  # little-endian on x86/arm64
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad header so the data section is 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in chunks:
            f.write(b)


def load_config(directory):
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)


def load_weights(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            tensors, _ = read_safetensors(os.path.join(directory, shard))
            for name, t in tensors.items():
                if weight_map.get(name) == shard:
                    out[name] = t
        missing = [n for n in weight_map if n not in out]
        if missing:
            raise ValueError(f"tensors listed in the index but absent from their shard: {missing[:5]}")
        return out
    tensors, _ = read_safetensors(os.path.join(directory, "model.safetensors"))
    return tensors


# --------------------------------------------------------------------------------------------------
# building blocks


def rms_norm(x, weight, eps):
    # Qwen2RMSNorm: statistics in float32, cast back to the input dtype, then scale by the weight.
    dt = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dt)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    dt = x.dtype
    xf = x.to(torch.float32)
    return (xf * cos + rotate_half(xf) * sin).to(dt)


_ACTS = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


def linear(x, w, b=None):
    return F.linear(x, w, b)


def _neg_big(dtype):
    return torch.finfo(dtype).min


def softmax_f32(scores, dim=-1):
    return torch.softmax(scores.to(torch.float32), dim=dim)


# --------------------------------------------------------------------------------------------------
# vision helpers (pure functions of the grids; exposed for tests)


def vision_rot_pos_ids(grid_thw, merge):
    """(N, 2) int64 (h, w) patch coordinates in merge-window order, images concatenated, frames repeated."""
    out = []
    for t, h, w in grid_thw.tolist():
        hh = torch.arange(h).view(h // merge, merge, 1, 1).expand(h // merge, merge, w // merge, merge)
        ww = torch.arange(w).view(1, 1, w // merge, merge).expand(h // merge, merge, w // merge, merge)
        # processor order: (H/merge, W/merge, merge, merge) i.e. merged tokens row-major, 2x2 inside
        hh = hh.permute(0, 2, 1, 3).reshape(-1)
        ww = ww.permute(0, 2, 1, 3).reshape(-1)
        out.append(torch.stack([hh, ww], dim=-1).repeat(t, 1))
    return torch.cat(out, dim=0)


def vision_window_index(grid_thw, window_size, patch_size, merge):
    """Returns (window_index over merged tokens (int64), cu_window_seqlens (int64, in patches))."""
    ws = window_size // merge // patch_size  # merged tokens per window side
    unit = merge * merge
    index_list, cu = [], [0]
    base = 0
    for t, h, w in grid_thw.tolist():
        gh, gw = h // merge, w // merge
        nwh, nww = -(-gh // ws), -(-gw // ws)  # ceil; HF pads by ws - g % ws (a full empty window when
        # divisible); empty windows add duplicate cu entries that unique_consecutive removes -> same result
        for f in range(t):
            for wr in range(nwh):
                for wc in range(nww):
                    ids = []
                    for r in range(wr * ws, min((wr + 1) * ws, gh)):
                        for c in range(wc * ws, min((wc + 1) * ws, gw)):
                            ids.append(base + f * gh * gw + r * gw + c)
                    index_list.extend(ids)
                    cu.append(cu[-1] + len(ids) * unit)
        base += t * gh * gw
    cu = torch.unique_consecutive(torch.tensor(cu, dtype=torch.int64))
    return torch.tensor(index_list, dtype=torch.int64), cu


def vision_cu_seqlens(grid_thw):
    """Full-attention segments: one per frame (t) of each image, H*W patches each."""
    lens = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0])
    return F.pad(torch.cumsum(lens, 0), (1, 0), value=0).to(torch.int64)


# --------------------------------------------------------------------------------------------------
# attention kernels


def segment_attention_loop(q, k, v, cu):
    """q,k,v: (N, H, D). Bidirectional attention inside each [cu[i], cu[i+1]) segment, explicit loops."""
    n, nh, d = q.shape
    out = torch.zeros(n, nh, d, dtype=q.dtype)
    scale = 1.0 / math.sqrt(d)
    bounds = cu.tolist()
    for s in range(len(bounds) - 1):
        a, b = bounds[s], bounds[s + 1]
        if b <= a:
            continue
        for h in range(nh):
            qs, ks, vs = q[a:b, h], k[a:b, h], v[a:b, h]
            p = softmax_f32(qs @ ks.t() * scale).to(q.dtype)
            out[a:b, h] = p @ vs
    return out


def segment_attention_batched(q, k, v, cu):
    """Same as segment_attention_loop, vectorised: segments padded to the longest, key-padding mask."""
    n, nh, d = q.shape
    cu = cu.to(torch.int64)
    starts, lens = cu[:-1], cu[1:] - cu[:-1]
    keep = lens > 0
    starts, lens = starts[keep], lens[keep]
    if starts.numel() == 1:
        qs, ks, vs = (t.transpose(0, 1) for t in (q, k, v))  # (H, N, D)
        p = softmax_f32(qs @ ks.transpose(1, 2) / math.sqrt(d)).to(q.dtype)
        return (p @ vs).transpose(0, 1)
    lmax = int(lens.max())
    ar = torch.arange(lmax)
    valid = ar[None, :] < lens[:, None]  # (S, Lmax)
    idx = torch.where(valid, starts[:, None] + ar[None, :], torch.zeros_like(ar)[None, :])
    qs, ks, vs = (t[idx].permute(0, 2, 1, 3) for t in (q, k, v))  # (S, H, Lmax, D)
    scores = qs @ ks.transpose(-1, -2) / math.sqrt(d)
    scores = scores.to(torch.float32).masked_fill(~valid[:, None, None, :], _neg_big(torch.float32))
    p = torch.softmax(scores, dim=-1).to(q.dtype)
    o = (p @ vs).permute(0, 2, 1, 3)  # (S, Lmax, H, D)
    return o[valid]  # segments are contiguous and ordered -> rows come back in order


def llm_attention_mask(attention_mask, causal):
    """Boolean (B, L, L) 'query i may attend key j'. Bidirectional (MoCa): key padding only."""
    bsz, length = attention_mask.shape
    allowed = attention_mask.bool()[:, None, :].expand(bsz, length, length)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()[None]
    return allowed


def llm_attention_batched(q, k, v, allowed):
    """q: (B, H, L, D); k, v: (B, KV, L, D); allowed: (B, L, L) bool. HF eager semantics (additive finfo.min)."""
    nh, nkv, d = q.shape[1], k.shape[1], q.shape[-1]
    rep = nh // nkv
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    bias = torch.zeros(allowed.shape, dtype=scores.dtype).masked_fill(~allowed, _neg_big(scores.dtype))
    p = torch.softmax((scores + bias[:, None]).to(torch.float32), dim=-1).to(q.dtype)
    return p @ v


def llm_attention_loop(q, k, v, allowed):
    """Explicit loops over rows, heads and queries; GQA head h uses KV head h // (H / KV)."""
    bsz, nh, length, d = q.shape
    nkv = k.shape[1]
    rep = nh // nkv
    out = torch.zeros_like(q)
    scale = 1.0 / math.sqrt(d)
    for b in range(bsz):
        for h in range(nh):
            kh, vh = k[b, h // rep], v[b, h // rep]
            for i in range(length):
                keys = [j for j in range(length) if bool(allowed[b, i, j])]
                if not keys:
                    # no visible key (only with left padding + causal): HF's additive finfo.min mask makes
                    # every score equal -> uniform over all keys. Never happens with right padding.
                    out[b, h, i] = vh.mean(0)
                    continue
                ks = kh[keys]
                p = softmax_f32(ks @ q[b, h, i] * scale).to(q.dtype)
                out[b, h, i] = p @ vh[keys]
    return out


# --------------------------------------------------------------------------------------------------
# M-RoPE position ids (spec §1.5, HF get_rope_index)


def rope_index(input_ids, attention_mask, image_grid_thw, image_token_id, vision_start_token_id, merge):
    bsz, length = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if image_grid_thw is None or image_grid_thw.numel() == 0:
        pos = attention_mask.long().cumsum(-1) - 1
        pos = pos.masked_fill(attention_mask == 0, 1)
        return pos[None].expand(3, bsz, length).clone()
    position_ids = torch.ones(3, bsz, length, dtype=torch.int64)
    img = 0
    for b in range(bsz):
        keep = attention_mask[b] == 1
        toks = input_ids[b][keep].tolist()
        # number of images = vision_start tokens immediately followed by an image token
        n_img = sum(1 for i, t in enumerate(toks[:-1]) if t == vision_start_token_id and toks[i + 1] == image_token_id)
        cols = [[], [], []]
        st = 0
        nxt = 0  # next free position (max so far + 1)
        for _ in range(n_img):
            ed = toks.index(image_token_id, st)
            t, h, w = image_grid_thw[img].tolist()
            img += 1
            gh, gw = h // merge, w // merge
            for j in range(ed - st):  # text before the image, including its vision_start
                for a in range(3):
                    cols[a].append(nxt + j)
            o = nxt + (ed - st)
            for f in range(t):
                for r in range(gh):
                    for c in range(gw):
                        cols[0].append(o + f * 0)  # still image: second_per_grid_t = 0 -> temporal offset 0
                        cols[1].append(o + r)
                        cols[2].append(o + c)
            nxt = max(max(c) for c in cols) + 1
            st = ed + t * gh * gw
        for j in range(len(toks) - st):  # trailing text (starts with vision_end when there were images)
            for a in range(3):
                cols[a].append(nxt + j)
        position_ids[:, b, keep] = torch.tensor(cols, dtype=torch.int64)
    if img != image_grid_thw.shape[0]:
        raise ValueError(f"rope_index: {image_grid_thw.shape[0]} grids but {img} images found in input_ids")
    return position_ids


def mrope_cos_sin(position_ids, head_dim, theta, mrope_section):
    """position_ids (3, B, L) -> cos, sin (B, L, head_dim) with channels picked per mrope_section."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim))
    freqs = position_ids.to(torch.float32)[..., None] * inv_freq  # (3, B, L, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    sections = list(mrope_section) * 2
    if sum(sections) != head_dim:
        raise ValueError(f"mrope_section {mrope_section} * 2 does not sum to head_dim {head_dim}")
    cs, ss, start = [], [], 0
    for j, n in enumerate(sections):
        cs.append(cos[j % 3, ..., start : start + n])
        ss.append(sin[j % 3, ..., start : start + n])
        start += n
    return torch.cat(cs, dim=-1), torch.cat(ss, dim=-1)


# --------------------------------------------------------------------------------------------------


class Qwen25VLEmbedderRef:
    def __init__(self, config, weights, impl="vectorized"):
        if impl not in ("vectorized", "loop"):
            raise ValueError(impl)
        self.cfg = config
        self.vc = config["vision_config"]
        self.impl = impl
        self.w = {k: v.to(torch.float32) for k, v in weights.items()}
        vc = self.vc
        self.v_hidden = vc["hidden_size"]
        self.v_heads = vc["num_heads"]
        self.v_head_dim = self.v_hidden // self.v_heads
        self.merge = vc["spatial_merge_size"]
        self.patch = vc["patch_size"]
        self.tps = vc.get("temporal_patch_size", 2)
        self.in_ch = vc.get("in_chans", vc.get("in_channels", 3))
        self.window_size = vc["window_size"]
        self.fullatt = set(vc["fullatt_block_indexes"])
        self.v_act = _ACTS[vc.get("hidden_act", "silu")]
        rd = self.v_head_dim // 2  # vision rotary dim (h half + w half)
        self.v_inv_freq = 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd))
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config["num_key_value_heads"]
        self.head_dim = self.hidden // self.heads
        self.eps = config["rms_norm_eps"]
        self.act = _ACTS[config.get("hidden_act", "silu")]
        self.mrope_section = config["rope_scaling"]["mrope_section"]
        self.theta = float(config["rope_theta"])
        self.image_token_id = config["image_token_id"]
        self.vision_start_token_id = config["vision_start_token_id"]

    # ---------------------------------------------------------------- vision
    def vision(self, pixel_values, grid_thw):
        w = self.w
        grid_thw = grid_thw.to(torch.int64)
        x = pixel_values.to(torch.float32)
        n = x.shape[0]
        if n != int((grid_thw[:, 0] * grid_thw[:, 1] * grid_thw[:, 2]).sum()):
            raise ValueError("pixel_values rows do not match image_grid_thw")
        pw = w["visual.patch_embed.proj.weight"]  # (hidden, C, T, P, P)
        if self.impl == "loop":
            x5 = x.view(n, self.in_ch, self.tps, self.patch, self.patch)
            x = F.conv3d(x5, pw, stride=pw.shape[2:]).view(n, self.v_hidden)
        else:
            x = x @ pw.reshape(self.v_hidden, -1).t()
        patch_embeds = x

        pos = vision_rot_pos_ids(grid_thw, self.merge)
        rot = torch.cat([pos[:, 0:1].float() * self.v_inv_freq, pos[:, 1:2].float() * self.v_inv_freq], dim=-1)
        win_idx, cu_win = vision_window_index(grid_thw, self.window_size, self.patch, self.merge)
        cu_full = vision_cu_seqlens(grid_thw)
        unit = self.merge * self.merge
        # permute patches (in groups of `unit`) and their rotary angles into window order
        x = x.view(n // unit, unit, -1)[win_idx].reshape(n, -1)
        rot_w = rot.view(n // unit, unit, -1)[win_idx].reshape(n, -1)
        emb = torch.cat((rot_w, rot_w), dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]  # (N, 1, head_dim)

        attn_fn = segment_attention_loop if self.impl == "loop" else segment_attention_batched
        for i in range(self.vc["depth"]):
            p = f"visual.blocks.{i}."
            cu = cu_full if i in self.fullatt else cu_win
            h = rms_norm(x, w[p + "norm1.weight"], 1e-6)
            qkv = linear(h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"]).view(n, 3, self.v_heads, self.v_head_dim)
            q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            a = attn_fn(q, k, v, cu).reshape(n, self.v_hidden)
            x = x + linear(a, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
            h = rms_norm(x, w[p + "norm2.weight"], 1e-6)
            g = self.v_act(linear(h, w[p + "mlp.gate_proj.weight"], w[p + "mlp.gate_proj.bias"]))
            u = linear(h, w[p + "mlp.up_proj.weight"], w[p + "mlp.up_proj.bias"])
            x = x + linear(g * u, w[p + "mlp.down_proj.weight"], w[p + "mlp.down_proj.bias"])
        blocks_out = x  # window order
        m = rms_norm(x, w["visual.merger.ln_q.weight"], 1e-6).view(-1, unit * self.v_hidden)
        m = F.gelu(linear(m, w["visual.merger.mlp.0.weight"], w["visual.merger.mlp.0.bias"]))
        m = linear(m, w["visual.merger.mlp.2.weight"], w["visual.merger.mlp.2.bias"])
        out = m[torch.argsort(win_idx)]
        return {
            "patch_embeds": patch_embeds,  # (N, v_hidden) original (processor) order
            "rotary_pos_emb": rot,  # (N, v_head_dim/2) angles [h*inv_freq, w*inv_freq], original order
            "window_index": win_idx,
            "cu_window_seqlens": cu_win,
            "cu_seqlens": cu_full,
            "blocks_out": blocks_out,  # (N, v_hidden) window order
            "output": out,  # (N/unit, out_hidden) original merged-token order
        }

    # ---------------------------------------------------------------- LLM
    def rope_index(self, input_ids, attention_mask, image_grid_thw):
        return rope_index(
            input_ids, attention_mask, image_grid_thw, self.image_token_id, self.vision_start_token_id, self.merge
        )

    def forward(
        self,
        input_ids,
        attention_mask=None,
        pixel_values=None,
        image_grid_thw=None,
        attention="bidirectional",
        pooling="mean",
    ):
        if attention not in ("bidirectional", "causal") or pooling not in ("mean", "last"):
            raise ValueError((attention, pooling))
        w = self.w
        input_ids = input_ids.to(torch.int64)
        bsz, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(torch.int64)
        x = w["model.embed_tokens.weight"][input_ids]  # (B, L, H)
        img_mask = input_ids == self.image_token_id
        vis = None
        if pixel_values is not None and pixel_values.numel() > 0:
            vis = self.vision(pixel_values, image_grid_thw)
            feats = vis["output"]
            if int(img_mask.sum()) != feats.shape[0]:
                raise ValueError(f"image tokens {int(img_mask.sum())} != image features {feats.shape[0]}")
            x = x.clone()
            x[img_mask] = feats  # boolean-index assignment = row-major order, like masked_scatter
        elif bool(img_mask.any()):
            raise ValueError("image tokens present but no pixel_values")
        inputs_embeds = x

        grids = image_grid_thw if vis is not None else None
        position_ids = self.rope_index(input_ids, attention_mask, grids)
        cos, sin = mrope_cos_sin(position_ids, self.head_dim, self.theta, self.mrope_section)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, L, hd)
        allowed = llm_attention_mask(attention_mask, attention == "causal")
        attn_fn = llm_attention_loop if self.impl == "loop" else llm_attention_batched

        layer_outputs = []
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            q = linear(h, w[p + "self_attn.q_proj.weight"], w[p + "self_attn.q_proj.bias"])
            k = linear(h, w[p + "self_attn.k_proj.weight"], w[p + "self_attn.k_proj.bias"])
            v = linear(h, w[p + "self_attn.v_proj.weight"], w[p + "self_attn.v_proj.bias"])
            q = q.view(bsz, length, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(bsz, length, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(bsz, length, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            a = attn_fn(q, k, v, allowed).transpose(1, 2).reshape(bsz, length, self.hidden)
            x = x + linear(a, w[p + "self_attn.o_proj.weight"])
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            g = self.act(linear(h, w[p + "mlp.gate_proj.weight"]))
            u = linear(h, w[p + "mlp.up_proj.weight"])
            x = x + linear(g * u, w[p + "mlp.down_proj.weight"])
            layer_outputs.append(x)
        hidden = rms_norm(x, w["model.norm.weight"], self.eps)

        m = attention_mask.to(hidden.dtype)
        if pooling == "mean":
            pooled = (hidden * m[..., None]).sum(1) / torch.clamp(m.sum(1, keepdim=True), min=1e-9)
        else:
            last = attention_mask.sum(1) - 1
            pooled = hidden[torch.arange(bsz), last]
        emb = F.normalize(pooled, p=2, dim=-1)
        return {
            "embeddings": emb,  # (B, H) L2-normalised
            "pooled": pooled,  # (B, H) before normalisation
            "hidden_states": hidden,  # (B, L, H) after the final RMSNorm
            "layer_outputs": torch.stack(layer_outputs),  # (layers, B, L, H) before the final norm
            "inputs_embeds": inputs_embeds,
            "position_ids": position_ids,
            "rope_cos": cos[:, 0],
            "rope_sin": sin[:, 0],
            "vision": vis,
        }


def split_rows(input_ids, attention_mask, pixel_values, image_grid_thw, image_token_id, vision_start_token_id):
    """Per-row inputs with padding removed; images are assigned to rows in textual, row-major order."""
    rows = []
    img, pix = 0, 0
    for b in range(input_ids.shape[0]):
        keep = attention_mask[b] == 1
        ids = input_ids[b][keep]
        toks = input_ids[b].tolist()
        n_img = sum(1 for i, t in enumerate(toks[:-1]) if t == vision_start_token_id and toks[i + 1] == image_token_id)
        grids = image_grid_thw[img : img + n_img] if image_grid_thw is not None else None
        npix = int((grids[:, 0] * grids[:, 1] * grids[:, 2]).sum()) if grids is not None and n_img else 0
        rows.append(
            {
                "input_ids": ids[None],
                "attention_mask": torch.ones(1, ids.shape[0], dtype=torch.int64),
                "pixel_values": pixel_values[pix : pix + npix] if n_img else None,
                "image_grid_thw": grids if n_img else None,
            }
        )
        img += n_img
        pix += npix
    return rows
