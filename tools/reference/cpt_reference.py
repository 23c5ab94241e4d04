#!/usr/bin/env python3
"""Independent PyTorch reference of MoCa's stage-1 (continual pre-training) loss: joint MLM + MAE.

Written from /work/shared/docs/moca-spec.md §2.4–§2.6 and §6 (items 6–8) and the semantics of MoCa's
`Qwen2_5ForMLMMAE` / `MMEBModelForMLMMAE` on transformers 4.50. Builds on tools/reference/qwen25vl_reference.py
(the bidirectional embedding model); does not import transformers. Runs with Debian's torch 1.13.
Run `/usr/bin/python3 tools/reference/cpt_reference.py` for its self-checks (uses test/fixtures/qwen25vl-tiny).

Semantics
  * Masks are INPUTS (drawn by the caller, e.g. `draw_masks`):
      mlm_mask (B, L) bool        positions whose token is replaced by the mask token id (100 %, no 80/10/10);
                                  labels = original id there, -100 elsewhere
      mae_token_mask (T,) bool    one flag per merged image token of the batch (T = pixel rows / 4), in
                                  image-token order = row-major order of `<|image_pad|>` in input_ids =
                                  pixel-row order / 4
      noise (1176,) float         ONE vector that overwrites every pixel row of every masked merged token
  * Forward: input ids with mlm positions := mask id; pixel rows of masked merged tokens := noise; the
    bidirectional embedding model up to the final-norm hidden states h (B, L, H).
  * MLM: logits = h @ lm_head^T at the SAME position (no shift; lm_head = embed_tokens when tied);
    L_MLM = mean cross-entropy over the mlm positions (full vocabulary); 0 when there is none.
  * MAE: d = mae_decoder(h) (one Qwen2.5-VL decoder layer: same dims, GQA, SwiGLU, bidirectional key-padding
    mask, the LLM's M-RoPE cos/sin; no norm after it); pred = mae_proj(d at the `<|image_pad|>` positions of
    masked merged tokens, in image-token order) -> (n, 4 * 1176), rearranged `b (d p) -> (b p) d`, p = 4
    (element d*4 + p) -> (4n, 1176); target = ORIGINAL pixel rows of the masked merged tokens (4 per token,
    row order); L_MAE = mean((pred - target)^2) over all elements; 0 when nothing is masked (MoCa: NaN).
  * L = L_MLM + mae_loss_weight * L_MAE, mae_loss_weight = 0.1.

Public API
  MAE_PATCH_DIM, MAE_UNIT, IGNORE_INDEX, DECODER_TENSORS
  init_heads(config, weights, generator=None, seed=None) -> dict   (MoCa init: copy of layer L//2, N(0, 0.02), 0)
  draw_masks(input_ids, attention_mask, image_token_id, generator, mlm_prob=0.4, mae_prob=0.5,
             first_special_id=...) -> (mlm_mask, mae_token_mask, noise)
  apply_mlm(input_ids, mlm_mask, mask_token_id) -> (masked ids, labels)
  pixel_row_mask(mae_token_mask) / apply_mae(pixel_values, mae_token_mask, noise) / mae_pred_mask(...)
  decoder_layer(w, prefix, x, cos, sin, allowed, cfg, impl) -> x'
  CptRef(config, weights, heads, impl="vectorized", mask_token_id=None, mae_loss_weight=0.1)
    .params                      dict name -> leaf tensor (requires_grad): model weights + heads
    .forward(input_ids, attention_mask, pixel_values, image_grid_thw, mlm_mask, mae_token_mask, noise) -> dict
    .grad_norms(names) -> (list of floats, total)   after .backward of a loss
    .zero_grad()
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen25vl_reference as ref  # noqa: E402

IGNORE_INDEX = -100
MAE_UNIT = 4  # pixel rows (patches) per merged token: spatial_merge_size ** 2
MAE_PATCH_DIM = 1176  # 3 channels * 2 frames * 14 * 14
MAE_LOSS_WEIGHT = 0.1
# Tiny fixture (test/fixtures/qwen25vl-tiny): special ids are 256..269, the `<|mask|>` token added by cpt_train.py
# gets the next id, 270 (the embedding matrix has 300 rows; Qwen2.5: 151665 inside 151936/152064 rows).
TINY_MASK_TOKEN_ID = 270
TINY_FIRST_SPECIAL_ID = 256

# A Qwen2_5_VLDecoderLayer's tensors (transformers names, relative to the layer prefix).
DECODER_TENSORS = [
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
]


# ---------------------------------------------------------------------------------------------- heads


def init_heads(config, weights, generator=None, seed=None):
    """MoCa's initialisation (`MMEBModelForMLMMAE.init_weights`): mae_decoder = copy of LLM layer
    num_hidden_layers // 2; mae_proj.weight ~ N(0, initializer_range = 0.02) (HF `_init_weights`:
    weight.normal_(0, std)), mae_proj.bias = 0. float32."""
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    src = config["num_hidden_layers"] // 2
    heads = {}
    for n in DECODER_TENSORS:
        heads["mae_decoder." + n] = weights[f"model.layers.{src}.{n}"].to(torch.float32).clone()
    std = float(config.get("initializer_range", 0.02))
    out = MAE_UNIT * MAE_PATCH_DIM
    w = torch.empty(out, config["hidden_size"], dtype=torch.float32)
    w.normal_(0.0, std, generator=generator)
    heads["mae_proj.weight"] = w
    heads["mae_proj.bias"] = torch.zeros(out, dtype=torch.float32)
    return heads


# ---------------------------------------------------------------------------------------------- masks


def count_merged_tokens(input_ids, image_token_id):
    return int((input_ids == image_token_id).sum())


def draw_masks(
    input_ids,
    attention_mask,
    image_token_id,
    generator,
    mlm_prob=0.4,
    mae_prob=0.5,
    first_special_id=TINY_FIRST_SPECIAL_ID,
):
    """The collator's masking, as used for the fixtures (order of draws: mlm, mae, noise).

    MLM (`mask_tokens`): every real (attention_mask == 1), non-special token (id < first_special_id; special =
    pad, <|im_*|>, vision start/end, <|image_pad|>, mask ...) is selected i.i.d. with p = mlm_prob
    (torch.bernoulli on a (B, L) probability matrix, special/pad positions forced to 0).
    MAE (`mask_patches`): every merged image token i.i.d. with p = mae_prob (torch.bernoulli over T values).
    noise: one standard-normal vector of 1176 values (randn)."""
    cand = attention_mask.bool() & (input_ids < first_special_id)
    prob = torch.full(input_ids.shape, float(mlm_prob)).masked_fill(~cand, 0.0)
    mlm_mask = torch.bernoulli(prob, generator=generator).bool()
    n_tok = count_merged_tokens(input_ids, image_token_id)
    mae_token_mask = torch.bernoulli(torch.full((n_tok,), float(mae_prob)), generator=generator).bool()
    noise = torch.randn(MAE_PATCH_DIM, generator=generator, dtype=torch.float32)
    return mlm_mask, mae_token_mask, noise


def apply_mlm(input_ids, mlm_mask, mask_token_id):
    """-> (input ids with the selected positions replaced by mask_token_id, labels with -100 elsewhere)."""
    ids = torch.where(mlm_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    labels = torch.where(mlm_mask, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return ids, labels


def pixel_row_mask(mae_token_mask):
    """Per-merged-token mask repeated over its MAE_UNIT consecutive pixel rows (`random_mask`)."""
    return mae_token_mask.repeat_interleave(MAE_UNIT)


def apply_mae(pixel_values, mae_token_mask, noise):
    """Pixel rows of masked merged tokens := noise (one shared vector); others unchanged."""
    rows = pixel_row_mask(mae_token_mask)
    if rows.shape[0] != pixel_values.shape[0]:
        raise ValueError(f"mae_token_mask covers {rows.shape[0]} pixel rows, pixel_values has {pixel_values.shape[0]}")
    return torch.where(rows[:, None], noise.to(pixel_values.dtype)[None, :].expand_as(pixel_values), pixel_values)


def mae_pred_mask(input_ids, mae_token_mask, image_token_id):
    """(B, L) bool: the `<|image_pad|>` positions whose merged token is masked (row-major = image-token order)."""
    img = input_ids == image_token_id
    if int(img.sum()) != mae_token_mask.shape[0]:
        raise ValueError(f"{int(img.sum())} image tokens but mae_token_mask has {mae_token_mask.shape[0]} entries")
    out = torch.zeros_like(img)
    out[img] = mae_token_mask
    return out


def rearrange_mae(y):
    """einops `b (d p) -> (b p) d` with p = MAE_UNIT: (n, d*p) -> (n*p, d), element [i*p + q, j] = y[i, j*p + q]."""
    n = y.shape[0]
    return y.reshape(n, -1, MAE_UNIT).transpose(1, 2).reshape(n * MAE_UNIT, -1)


# ---------------------------------------------------------------------------------------------- decoder layer


def decoder_layer(w, prefix, x, cos, sin, allowed, cfg, impl="vectorized"):
    """One Qwen2_5_VLDecoderLayer (eager): x + o(attn(rms(x))) then + down(silu(gate(.)) * up(.)).

    w: name -> tensor; x (B, L, H); cos/sin (B, 1, L, head_dim) (the LLM's M-RoPE); allowed (B, L, L) bool."""
    bsz, length, hidden = x.shape
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = hidden // heads
    eps = cfg["rms_norm_eps"]
    act = ref._ACTS[cfg.get("hidden_act", "silu")]
    h = ref.rms_norm(x, w[prefix + "input_layernorm.weight"], eps)
    q = F.linear(h, w[prefix + "self_attn.q_proj.weight"], w[prefix + "self_attn.q_proj.bias"])
    k = F.linear(h, w[prefix + "self_attn.k_proj.weight"], w[prefix + "self_attn.k_proj.bias"])
    v = F.linear(h, w[prefix + "self_attn.v_proj.weight"], w[prefix + "self_attn.v_proj.bias"])
    q = q.view(bsz, length, heads, hd).transpose(1, 2)
    k = k.view(bsz, length, kv_heads, hd).transpose(1, 2)
    v = v.view(bsz, length, kv_heads, hd).transpose(1, 2)
    q, k = ref.apply_rope(q, cos, sin), ref.apply_rope(k, cos, sin)
    attn = ref.llm_attention_loop if impl == "loop" else ref.llm_attention_batched
    a = attn(q, k, v, allowed).transpose(1, 2).reshape(bsz, length, hidden)
    x = x + F.linear(a, w[prefix + "self_attn.o_proj.weight"])
    h = ref.rms_norm(x, w[prefix + "post_attention_layernorm.weight"], eps)
    g = act(F.linear(h, w[prefix + "mlp.gate_proj.weight"]))
    u = F.linear(h, w[prefix + "mlp.up_proj.weight"])
    return x + F.linear(g * u, w[prefix + "mlp.down_proj.weight"])


# ---------------------------------------------------------------------------------------------- model


class CptRef:
    def __init__(self, config, weights, heads=None, impl="vectorized", mask_token_id=None, mae_loss_weight=None,
                 heads_seed=0):
        self.cfg = config
        self.impl = impl
        self.embedder = ref.Qwen25VLEmbedderRef(config, weights, impl=impl)
        if heads is None:
            heads = init_heads(config, weights, seed=heads_seed)
        missing = [f"mae_decoder.{n}" for n in DECODER_TENSORS if f"mae_decoder.{n}" not in heads]
        missing += [n for n in ("mae_proj.weight", "mae_proj.bias") if n not in heads]
        if missing:
            raise ValueError(f"heads lack {missing}")
        self.params = {}
        # every weight becomes a float32 leaf; the embedder reads the same objects (tied head = one leaf)
        for name in list(self.embedder.w):
            leaf = self.embedder.w[name].detach().to(torch.float32).clone().requires_grad_(True)
            self.embedder.w[name] = leaf
            self.params[name] = leaf
        for name, t in heads.items():
            if name in self.params:
                raise ValueError(f"head tensor {name} collides with a model weight")
            self.params[name] = t.detach().to(torch.float32).clone().requires_grad_(True)
        self.mask_token_id = TINY_MASK_TOKEN_ID if mask_token_id is None else int(mask_token_id)
        if not 0 <= self.mask_token_id < config["vocab_size"]:
            raise ValueError(f"mask token id {self.mask_token_id} outside the {config['vocab_size']}-row embedding")
        self.mae_loss_weight = MAE_LOSS_WEIGHT if mae_loss_weight is None else float(mae_loss_weight)
        self.image_token_id = config["image_token_id"]

    def lm_head_weight(self):
        if self.cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in self.params:
            return self.params["model.embed_tokens.weight"]
        return self.params["lm_head.weight"]

    def parameters(self):
        return list(self.params.values())

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def forward(self, input_ids, attention_mask, pixel_values, image_grid_thw, mlm_mask, mae_token_mask, noise):
        input_ids = input_ids.to(torch.int64)
        attention_mask = attention_mask.to(torch.int64)
        mlm_mask = mlm_mask.bool()
        img = input_ids == self.image_token_id
        if mlm_mask.shape != input_ids.shape:
            raise ValueError(f"mlm_mask {tuple(mlm_mask.shape)} != input_ids {tuple(input_ids.shape)}")
        if bool((mlm_mask & (img | (attention_mask == 0))).any()):
            raise ValueError("mlm_mask selects image tokens or padding")
        has_images = pixel_values is not None and pixel_values.numel() > 0
        ids_in, labels = apply_mlm(input_ids, mlm_mask, self.mask_token_id)
        if has_images:
            mae_token_mask = mae_token_mask.bool()
            pix_in = apply_mae(pixel_values.to(torch.float32), mae_token_mask, noise.to(torch.float32))
            pred_mask = mae_pred_mask(input_ids, mae_token_mask, self.image_token_id)
        else:
            if mae_token_mask is not None and mae_token_mask.numel() > 0:
                raise ValueError("mae_token_mask given but no pixel_values")
            pix_in, image_grid_thw = None, None
            pred_mask = torch.zeros_like(img)

        out = self.embedder.forward(ids_in, attention_mask, pix_in, image_grid_thw,
                                    attention="bidirectional", pooling="mean")
        h = out["hidden_states"]  # (B, L, H) after the final RMSNorm
        zero = h.sum() * 0.0  # a 0 that keeps the graph (defined value of an empty term)

        # ---- MLM (same position, full vocab)
        sel = labels != IGNORE_INDEX
        n_mlm = int(sel.sum())
        if n_mlm > 0:
            logits = F.linear(h[sel], self.lm_head_weight())  # (n_mlm, V), row-major order of the mask
            mlm_loss = F.cross_entropy(logits, labels[sel], reduction="mean")
        else:
            logits = h.new_zeros(0, self.cfg["vocab_size"])
            mlm_loss = zero

        # ---- MAE
        n_mae = int(pred_mask.sum())
        allowed = ref.llm_attention_mask(attention_mask, causal=False)
        cos, sin = out["rope_cos"][:, None], out["rope_sin"][:, None]
        if n_mae > 0:
            dec = decoder_layer(self.params, "mae_decoder.", h, cos, sin, allowed, self.cfg, self.impl)
            y = F.linear(dec[pred_mask], self.params["mae_proj.weight"], self.params["mae_proj.bias"])
            pred = rearrange_mae(y)  # (4 n, 1176)
            target = pixel_values.to(torch.float32)[pixel_row_mask(mae_token_mask)]
            mae_loss = (pred - target).pow(2).mean()
        else:
            dec = None
            pred = h.new_zeros(0, MAE_PATCH_DIM)
            target = h.new_zeros(0, MAE_PATCH_DIM)
            mae_loss = zero

        loss = mlm_loss + self.mae_loss_weight * mae_loss
        return {
            "loss": loss,
            "mlm_loss": mlm_loss,
            "mae_loss": mae_loss,
            "mlm_logits": logits,
            "mlm_labels": labels,
            "mae_pred": pred,
            "mae_target": target,
            "mae_pred_mask": pred_mask,
            "mae_decoder_out": dec,
            "input_ids_masked": ids_in,
            "pixel_values_corrupted": pix_in,
            "hidden_states": h,
            "n_mlm": n_mlm,
            "n_mae_tokens": n_mae,
            "embedder_out": out,
        }

    def grad_norms(self, names):
        """L2 norms (float64 accumulation) of the named parameters' gradients (0 where None), and the total
        norm over ALL parameters (model + heads; a tied weight counted once)."""
        def norm(g):
            return 0.0 if g is None else float(g.detach().to(torch.float64).pow(2).sum().sqrt())

        per = [norm(self.params[n].grad) for n in names]
        total = math.sqrt(sum(norm(p.grad) ** 2 for p in self.params.values()))
        return per, total


def load_batch(path):
    t, meta = ref.read_safetensors(path)
    return t, meta


def batch_args(t):
    return (
        t["input_ids"],
        t["attention_mask"],
        t.get("pixel_values"),
        t.get("image_grid_thw"),
        t["mlm_mask"],
        t.get("mae_token_mask"),
        t.get("noise"),
    )


# ---------------------------------------------------------------------------------------------- self-checks


def _selfcheck():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    here = os.path.dirname(os.path.abspath(__file__))
    fix = os.path.join(here, "..", "..", "test", "fixtures", "qwen25vl-tiny")
    cfg = ref.load_config(fix)
    weights = ref.load_weights(fix)
    inp, _ = ref.read_safetensors(os.path.join(fix, "inputs.safetensors"))
    ids, am, pv, grid = inp["input_ids"], inp["attention_mask"], inp["pixel_values"], inp["image_grid_thw"]
    img_id = cfg["image_token_id"]
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}{(': ' + detail) if detail else ''}")

    gen = torch.Generator().manual_seed(7)
    mlm, mae, noise = draw_masks(ids, am, img_id, gen)
    heads = init_heads(cfg, weights, seed=11)
    check("init_heads: mae_decoder == LLM layer 1 (3 // 2), bias 0, weight std ~0.02",
          all(torch.equal(heads[f"mae_decoder.{n}"], weights[f"model.layers.1.{n}"]) for n in DECODER_TENSORS)
          and float(heads["mae_proj.bias"].abs().max()) == 0.0
          and abs(float(heads["mae_proj.weight"].std()) - 0.02) < 1e-3)

    # decoder_layer == the embedder's own layer i (run on layer i-1's output)
    m0 = ref.Qwen25VLEmbedderRef(cfg, weights)
    with torch.no_grad():
        o = m0.forward(ids, am, pv, grid)
        allowed = ref.llm_attention_mask(am, causal=False)
        cs, sn = o["rope_cos"][:, None], o["rope_sin"][:, None]
        d = decoder_layer(m0.w, "model.layers.1.", o["layer_outputs"][0], cs, sn, allowed, cfg)
        real = am.bool()
        diff = float((d - o["layer_outputs"][1])[real].abs().max())
    check("decoder_layer(model.layers.1) reproduces the embedder's layer 1", diff == 0.0, f"{diff:.2e}")

    # rearrangement b (d p) -> (b p) d
    y = torch.arange(2 * 8, dtype=torch.float32).view(2, 8)
    r = rearrange_mae(y)  # d = 2, p = 4
    exp = torch.tensor([[y[i, j * 4 + q].item() for j in range(2)] for i in range(2) for q in range(4)])
    check("rearrange_mae == einops b (d p) -> (b p) d, p=4", torch.equal(r, exp))

    # masks
    check("drawn mlm mask only on real text tokens", not bool((mlm & ((ids >= 256) | (am == 0))).any()))
    pm = mae_pred_mask(ids, mae, img_id)
    check("mae_pred_mask has one entry per masked merged token", int(pm.sum()) == int(mae.sum()))
    cor = apply_mae(pv, mae, noise)
    rows = pixel_row_mask(mae)
    check("apply_mae: masked rows == noise, others untouched",
          torch.equal(cor[rows], noise.expand(int(rows.sum()), -1)) and torch.equal(cor[~rows], pv[~rows]))

    # vectorised vs loop (independent attention kernels), loss + gradients
    vec = CptRef(cfg, weights, heads, impl="vectorized")
    loop = CptRef(cfg, weights, heads, impl="loop")
    ov = vec.forward(ids, am, pv, grid, mlm, mae, noise)
    ol = loop.forward(ids, am, pv, grid, mlm, mae, noise)
    ov["loss"].backward()
    ol["loss"].backward()
    names = ["model.embed_tokens.weight", "visual.patch_embed.proj.weight", "mae_decoder.mlp.down_proj.weight",
             "mae_proj.weight"]
    gv, tv = vec.grad_norms(names)
    gl, tl = loop.grad_norms(names)
    dl = max(abs(float(ov[k]) - float(ol[k])) for k in ("loss", "mlm_loss", "mae_loss"))
    dg = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(gv + [tv], gl + [tl]))
    check("loop attention == vectorised: losses", dl < 1e-5, f"{dl:.2e} (loss {float(ov['loss']):.6f})")
    check("loop attention == vectorised: grad norms (relative)", dg < 1e-4, f"{dg:.2e}")

    # manual losses from the returned pieces
    lab = ov["mlm_labels"][ov["mlm_labels"] != IGNORE_INDEX]
    lp = torch.log_softmax(ov["mlm_logits"].detach().double(), -1)
    man_mlm = float(-lp[torch.arange(lab.shape[0]), lab].mean())
    check("MLM = mean NLL at masked positions (float64 recomputation)",
          abs(man_mlm - float(ov["mlm_loss"])) < 1e-5, f"{man_mlm:.6f} vs {float(ov['mlm_loss']):.6f}")
    h = ov["hidden_states"].detach()
    logits_all = h @ vec.params["model.embed_tokens.weight"].detach().t()
    check("MLM logits are taken at the same position (no shift), tied head",
          float((logits_all[mlm] - ov["mlm_logits"].detach()).abs().max()) < 1e-5)
    # MAE bias gradient in closed form: dL/db[j*4+q] = w * 2/(N) * sum_i (pred - target)[i*4+q, j]
    pred, tgt = ov["mae_pred"].detach().double(), ov["mae_target"].double()
    n_el = pred.numel()
    res = (pred - tgt).view(-1, MAE_UNIT, MAE_PATCH_DIM).sum(0)  # (4, 1176): [q, j]
    gb = (vec.mae_loss_weight * 2.0 / n_el * res).t().reshape(-1)  # index j*4 + q
    db = float((gb - vec.params["mae_proj.bias"].grad.double()).abs().max())
    check("mae_proj.bias gradient == closed form (also fixes the d*4+p layout)", db < 1e-8, f"{db:.2e}")

    # central finite differences along random directions (float32; loose)
    def loss_at():
        with torch.no_grad():
            return float(vec.forward(ids, am, pv, grid, mlm, mae, noise)["loss"])

    # along the normalised gradient itself (directional derivative = |g|), step chosen so the loss moves by
    # ~1e-2 (float32 round-off ~1e-6); the loss is quadratic in mae_proj.*, so large steps are exact there
    for name in ("model.embed_tokens.weight", "visual.patch_embed.proj.weight", "visual.blocks.0.attn.qkv.weight",
                 "model.layers.0.self_attn.q_proj.weight", "mae_decoder.mlp.down_proj.weight", "mae_proj.weight",
                 "mae_proj.bias"):
        p = vec.params[name]
        g = p.grad.detach().clone()
        analytic = float(g.norm())
        v = g / analytic
        eps = 1e-2 / analytic
        with torch.no_grad():
            p.add_(eps * v)
            lp_ = loss_at()
            p.sub_(2 * eps * v)
            lm_ = loss_at()
            p.add_(eps * v)
        fd = (lp_ - lm_) / (2 * eps)
        check(f"finite difference along the gradient of {name}", abs(fd - analytic) <= 2e-2 * analytic,
              f"fd {fd:.6g} |grad| {analytic:.6g} (step {eps:.3g})")

    # degenerate masks: 0, never NaN
    o1 = vec.forward(ids, am, pv, grid, torch.zeros_like(mlm), mae, noise)
    o2 = vec.forward(ids, am, pv, grid, mlm, torch.zeros_like(mae), noise)
    check("no MLM position -> mlm_loss 0 (not NaN), loss == 0.1 * mae_loss",
          float(o1["mlm_loss"]) == 0.0 and math.isfinite(float(o1["mae_loss"]))
          and abs(float(o1["loss"]) - 0.1 * float(o1["mae_loss"])) < 1e-7)
    check("no MAE token -> mae_loss 0 (not NaN), loss == mlm_loss",
          float(o2["mae_loss"]) == 0.0 and float(o2["loss"]) == float(o2["mlm_loss"]))
    o2["loss"].backward()  # must not fail
    o3 = vec.forward(ids[2:], am[2:], None, None, mlm[2:], None, None)
    check("text-only batch: MAE term 0, finite loss", float(o3["mae_loss"]) == 0.0 and math.isfinite(float(o3["loss"])))
    print(f"{sum(results)}/{len(results)} checks passed")
    return all(results)


if __name__ == "__main__":
    sys.exit(0 if _selfcheck() else 1)
