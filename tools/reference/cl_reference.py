#!/usr/bin/env python3
"""Independent PyTorch reference of MoCa's stage-2 loss: InfoNCE over in-batch positives + hard negatives, and
GradCache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

Written from /work/shared/docs/moca-spec.md §3.4 and §1.7 (MoCa `MMEBModel.forward` / `encode_input`) and the
GradCache algorithm; builds on tools/reference/qwen25vl_reference.py (the bidirectional embedding model: mean
pooling + L2 normalisation); does not import transformers. Runs with Debian's torch 1.13.
Run `/usr/bin/python3 tools/reference/cl_reference.py` for its self-checks (uses test/fixtures/qwen25vl-tiny).

Semantics (τ = 0.03, MoCa's `--temperature 0.03`)
  * Inputs q (B, D), p (B, D), n (B, K, D) (K = 2 in MoCa; K = 0 / n = None: in-batch only), L2-normalised
    (`normalize=True` normalises raw inputs with F.normalize here; the model path passes already normalised
    embeddings with `normalize=False`: MoCa normalises inside `encode_input`).
  * default (MoCa): logits_i = [q_i·p_j for j < B] ++ [q_i·n_{i,k} for k < K], divided by τ; target i;
    loss = mean_i CE(logits_i, i). Only query i's OWN hard negatives.
  * shared_negatives: logits_i = [q_i·p_j for j < B] ++ [q_i·n_m for m < B·K], m = j·K + k (all negatives of
    the batch, flattened row-major); target i.
  * symmetric: loss = ½ (L_q→t + L_t→q), L_t→q = mean_i CE([p_i·q_j for j < B] / τ, i) (no negatives in the
    target→query direction). Combines with shared_negatives (which affects only L_q→t).
  * No false-negative masking, no q–q / d–d terms, fixed τ.
  * Batch file layout (groups): `q.*` queries (B rows), `p.*` positives (B rows), `n.*` hard negatives (B·K rows,
    row i·K + k = negative k of query i), each group with input_ids, attention_mask (right padding),
    pixel_values + image_grid_thw (absent when the group has no image). `n.*` absent = K = 0.

Public API
  TEMPERATURE, NEGATIVE_RATIO, GROUPS
  contrastive_logits(q, p, n=None, temperature, shared_negatives=False) -> (B, B + K) or (B, B + B·K)
  contrastive_loss(q, p, n=None, temperature, symmetric=False, shared_negatives=False, normalize=True) -> dict
  contrastive_loss_manual(q, p, n, temperature, symmetric, shared_negatives) -> (loss, dq, dp, dn) numpy float64,
      explicit loops and a hand-written backward through the L2 normalisation (independent of autograd)
  group_from_tensors(tensors, prefix) / batch_from_tensors(tensors) / batch_to_tensors(batch)
  count_images_per_row(group, image_token_id, vision_start_token_id) / slice_group(group, a, b, ...)
  ClRef(config, weights, impl, temperature, symmetric, shared_negatives)
    .params                          dict name -> float32 leaf tensor (requires_grad)
    .encode(group) -> (rows, D)      L2-normalised mean-pooled embeddings (with graph unless under no_grad)
    .forward(batch) -> dict          plain: all groups embedded with graph, loss (call ["loss"].backward())
    .grad_cache(batch, chunk_size, marks=None) -> dict   GradCache: accumulates the parameter gradients itself
    .grad_norms(names) -> (list, total)      .zero_grad()   .parameters()
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen25vl_reference as ref  # noqa: E402

TEMPERATURE = 0.03
NEGATIVE_RATIO = 2
GROUPS = ("q", "p", "n")
GROUP_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw")


# ---------------------------------------------------------------------------------------------- loss


def _check_shapes(q, p, n):
    if q.dim() != 2 or p.shape != q.shape:
        raise ValueError(f"q {tuple(q.shape)} and p {tuple(p.shape)} must both be (B, D)")
    if n is not None and (n.dim() != 3 or n.shape[0] != q.shape[0] or n.shape[2] != q.shape[1]):
        raise ValueError(f"n {tuple(n.shape)} must be (B, K, D) with B, D of q {tuple(q.shape)}")


def contrastive_logits(q, p, n=None, temperature=TEMPERATURE, shared_negatives=False):
    """Query→target logits of already-normalised embeddings: [q·pᵀ | hard-negative scores] / τ."""
    _check_shapes(q, p, n)
    cols = [q @ p.t()]  # (B, B): column j = positive of query j
    if n is not None and n.shape[1] > 0:
        if shared_negatives:
            cols.append(q @ n.reshape(-1, n.shape[-1]).t())  # (B, B·K), column j·K + k = n[j, k]
        else:
            cols.append(torch.einsum("bd,bkd->bk", q, n))  # (B, K): query b's own negatives
    return torch.cat(cols, dim=1) / temperature


def contrastive_loss(q, p, n=None, temperature=TEMPERATURE, symmetric=False, shared_negatives=False, normalize=True):
    """-> {"loss", "loss_q2t", "logits" (q→t), and with symmetric: "loss_t2q", "logits_t2q" (B, B)}."""
    _check_shapes(q, p, n)
    if normalize:
        q, p = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
        n = None if n is None else F.normalize(n, dim=-1)
    bsz = q.shape[0]
    target = torch.arange(bsz)
    logits = contrastive_logits(q, p, n, temperature, shared_negatives)
    loss_q2t = F.cross_entropy(logits, target, reduction="mean")
    out = {"loss_q2t": loss_q2t, "logits": logits}
    if symmetric:
        logits_t2q = (p @ q.t()) / temperature  # row i: target i against all queries
        loss_t2q = F.cross_entropy(logits_t2q, target, reduction="mean")
        out.update({"loss_t2q": loss_t2q, "logits_t2q": logits_t2q, "loss": 0.5 * (loss_q2t + loss_t2q)})
    else:
        out["loss"] = loss_q2t
    return out


def contrastive_loss_manual(q, p, n=None, temperature=TEMPERATURE, symmetric=False, shared_negatives=False):
    """Independent float64 implementation with explicit loops and a hand-derived backward, raw (unnormalised)
    inputs -> (loss, dL/dq, dL/dp, dL/dn or None) as numpy arrays. Used to check contrastive_loss + autograd."""
    q, p = np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64)
    n = None if n is None else np.asarray(n, dtype=np.float64)
    bsz, dim = q.shape
    k_neg = 0 if n is None else n.shape[1]

    def unit(x):
        return x / np.linalg.norm(x)

    uq = [unit(q[i]) for i in range(bsz)]
    up = [unit(p[i]) for i in range(bsz)]
    un = [[unit(n[i, k]) for k in range(k_neg)] for i in range(bsz)]
    gq = [np.zeros(dim) for _ in range(bsz)]  # gradients w.r.t. the unit vectors
    gp = [np.zeros(dim) for _ in range(bsz)]
    gn = [[np.zeros(dim) for _ in range(k_neg)] for _ in range(bsz)]

    def ce_rows(anchors, cands_per_row, weight):
        """Σ_i weight · CE over row i of (anchor_i · cand) / τ with target cand 0 ... returns loss; accumulates
        gradients. cands_per_row[i] = list of (vector, grad slot) with the target FIRST."""
        total = 0.0
        for i, (a, ga) in enumerate(anchors):
            cands = cands_per_row[i]
            z = np.array([float(np.dot(a, c)) / temperature for c, _ in cands])
            mx = z.max()
            lse = mx + math.log(sum(math.exp(v - mx) for v in z))
            total += weight * (lse - z[0])
            sm = np.exp(z - lse)
            for j, (c, gc) in enumerate(cands):
                d = weight * (sm[j] - (1.0 if j == 0 else 0.0)) / temperature  # dL/dz_j / τ
                ga += d * c
                gc += d * a
        return total

    # query -> target: candidates = own positive (target) + other positives + negatives
    w = (0.5 if symmetric else 1.0) / bsz
    rows = []
    for i in range(bsz):
        cands = [(up[i], gp[i])] + [(up[j], gp[j]) for j in range(bsz) if j != i]
        if shared_negatives:
            cands += [(un[j][k], gn[j][k]) for j in range(bsz) for k in range(k_neg)]
        else:
            cands += [(un[i][k], gn[i][k]) for k in range(k_neg)]
        rows.append(cands)
    loss = ce_rows([(uq[i], gq[i]) for i in range(bsz)], rows, w)
    if symmetric:
        rows = [[(uq[i], gq[i])] + [(uq[j], gq[j]) for j in range(bsz) if j != i] for i in range(bsz)]
        loss += ce_rows([(up[i], gp[i]) for i in range(bsz)], rows, w)

    def back(x, u, g):  # d(x/|x|)ᵀ g = (g − u (u·g)) / |x|
        return (g - u * np.dot(u, g)) / np.linalg.norm(x)

    dq = np.stack([back(q[i], uq[i], gq[i]) for i in range(bsz)])
    dp = np.stack([back(p[i], up[i], gp[i]) for i in range(bsz)])
    dn = None
    if n is not None:
        dn = np.zeros_like(n)
        for i in range(bsz):
            for k in range(k_neg):
                dn[i, k] = back(n[i, k], un[i][k], gn[i][k])
    return loss, dq, dp, dn


# ---------------------------------------------------------------------------------------------- batches


def group_from_tensors(tensors, prefix):
    """The `prefix.`-named tensors of a batch file as a group dict (None where absent); None if no input_ids."""
    if prefix + ".input_ids" not in tensors:
        return None
    return {k: tensors.get(f"{prefix}.{k}") for k in GROUP_KEYS}


def batch_from_tensors(tensors):
    batch = {g: group_from_tensors(tensors, g) for g in GROUPS}
    if batch["q"] is None or batch["p"] is None:
        raise ValueError("batch needs q.* and p.* tensors")
    bq, bp = batch["q"]["input_ids"].shape[0], batch["p"]["input_ids"].shape[0]
    if bq != bp:
        raise ValueError(f"{bq} queries but {bp} positives")
    if batch["n"] is not None and batch["n"]["input_ids"].shape[0] % bq != 0:
        raise ValueError(f"{batch['n']['input_ids'].shape[0]} negatives is not a multiple of {bq} queries")
    return batch


def batch_to_tensors(batch):
    out = {}
    for g in GROUPS:
        if batch.get(g) is None:
            continue
        for k in GROUP_KEYS:
            v = batch[g].get(k)
            if v is not None:
                out[f"{g}.{k}"] = v
    return out


def num_negatives(batch):
    if batch.get("n") is None:
        return 0
    return batch["n"]["input_ids"].shape[0] // batch["q"]["input_ids"].shape[0]


def count_images_per_row(group, image_token_id, vision_start_token_id):
    """Images per row = real `<|vision_start|>` tokens immediately followed by `<|image_pad|>`."""
    ids, am = group["input_ids"], group["attention_mask"].bool()
    starts = (ids[:, :-1] == vision_start_token_id) & (ids[:, 1:] == image_token_id) & am[:, :-1] & am[:, 1:]
    return starts.sum(1).tolist()


def slice_group(group, a, b, image_token_id, vision_start_token_id):
    """Rows [a, b) of a group with their images (grids in batch order, pixel rows per image = t·h·w). The padded
    length is kept (GradCache splits the collated tensors along the batch dimension)."""
    per_row = count_images_per_row(group, image_token_id, vision_start_token_id)
    grids = group.get("image_grid_thw")
    n_img = sum(per_row)
    if (0 if grids is None else grids.shape[0]) != n_img:
        raise ValueError(f"{n_img} images in input_ids but {0 if grids is None else grids.shape[0]} grids")
    out = {"input_ids": group["input_ids"][a:b], "attention_mask": group["attention_mask"][a:b],
           "pixel_values": None, "image_grid_thw": None}
    i0, i1 = sum(per_row[:a]), sum(per_row[:b])
    if i1 > i0:
        pix = (grids[:, 0] * grids[:, 1] * grids[:, 2]).tolist()
        out["image_grid_thw"] = grids[i0:i1]
        out["pixel_values"] = group["pixel_values"][sum(pix[:i0]) : sum(pix[:i1])]
    return out


# ---------------------------------------------------------------------------------------------- model


class ClRef:
    def __init__(self, config, weights, impl="vectorized", temperature=TEMPERATURE, symmetric=False,
                 shared_negatives=False):
        self.cfg = config
        self.embedder = ref.Qwen25VLEmbedderRef(config, weights, impl=impl)
        self.params = {}
        for name in list(self.embedder.w):  # every weight a float32 leaf the embedder reads directly
            leaf = self.embedder.w[name].detach().to(torch.float32).clone().requires_grad_(True)
            self.embedder.w[name] = leaf
            self.params[name] = leaf
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)
        self.shared_negatives = bool(shared_negatives)
        self.image_token_id = config["image_token_id"]
        self.vision_start_token_id = config["vision_start_token_id"]

    def parameters(self):
        return list(self.params.values())

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def encode(self, group):
        """(rows, hidden) L2-normalised mean-pooled embeddings (bidirectional attention), MoCa `encode_input`."""
        pv = group.get("pixel_values")
        grid = group.get("image_grid_thw") if pv is not None and pv.numel() > 0 else None
        return self.embedder.forward(group["input_ids"], group["attention_mask"], pv if grid is not None else None,
                                     grid, attention="bidirectional", pooling="mean")["embeddings"]

    def loss(self, q, p, n):
        return contrastive_loss(q, p, n, self.temperature, self.symmetric, self.shared_negatives, normalize=False)

    def _split_n(self, n_flat, bsz):
        if n_flat is None:
            return None
        return n_flat.view(bsz, n_flat.shape[0] // bsz, n_flat.shape[1])  # row i·K + k -> [i, k]

    def forward(self, batch):
        """Plain step: every group embedded with graph in one call; returns the loss dict + embeddings."""
        q, p = self.encode(batch["q"]), self.encode(batch["p"])
        n = None if batch.get("n") is None else self._split_n(self.encode(batch["n"]), q.shape[0])
        out = self.loss(q, p, n)
        out.update({"q": q, "p": p, "n": n})
        return out

    def chunks(self, group, chunk_size):
        rows = group["input_ids"].shape[0]
        return [(a, min(a + chunk_size, rows),
                 slice_group(group, a, min(a + chunk_size, rows), self.image_token_id, self.vision_start_token_id))
                for a in range(0, rows, chunk_size)]

    def grad_cache(self, batch, chunk_size, marks=None):
        """GradCache: (1) embed every group chunk by chunk without a graph; (2) loss on detached copies that
        require grad, backward -> d loss / d embedding; (3) per chunk, re-embed with graph and backward the
        embedding with its cached gradient (accumulates into .grad of the parameters). Returns the loss dict,
        the cached embeddings and their gradients ("emb_grad": {group: (rows, D)}). `marks`, if a list, gets
        time.perf_counter() appended after step (2) (for benchmark phase timings)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        groups = [g for g in GROUPS if batch.get(g) is not None]
        split = {g: self.chunks(batch[g], chunk_size) for g in groups}
        with torch.no_grad():
            reps = {g: torch.cat([self.encode(c) for _, _, c in split[g]]) for g in groups}
        leaves = {g: reps[g].detach().clone().requires_grad_(True) for g in groups}
        bsz = leaves["q"].shape[0]
        out = self.loss(leaves["q"], leaves["p"], self._split_n(leaves.get("n"), bsz))
        out["loss"].backward()
        grads = {g: leaves[g].grad.detach().clone() for g in groups}
        if marks is not None:
            marks.append(time.perf_counter())
        for g in groups:
            for a, b, c in split[g]:
                e = self.encode(c)
                e.backward(grads[g][a:b])
        out = {k: v.detach() for k, v in out.items()}
        out.update({"q": reps["q"], "p": reps["p"], "n": self._split_n(reps.get("n"), bsz), "emb_grad": grads})
        return out

    def grad_norms(self, names):
        """L2 norms (float64 accumulation) of the named parameters' gradients (0 where None) and the total norm
        over ALL parameters."""
        def norm(g):
            return 0.0 if g is None else float(g.detach().to(torch.float64).pow(2).sum().sqrt())

        per = [norm(self.params[n].grad) for n in names]
        total = math.sqrt(sum(norm(p.grad) ** 2 for p in self.params.values()))
        return per, total


# ---------------------------------------------------------------------------------------------- self-checks

VARIANTS = {  # name -> (symmetric, shared_negatives, use negatives)
    "default": (False, False, True),
    "symmetric": (True, False, True),
    "shared": (False, True, True),
    "no_negatives": (False, False, False),
    "symmetric_shared": (True, True, True),
}


def _selfcheck():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}{(': ' + detail) if detail else ''}")

    g = torch.Generator().manual_seed(3)
    B, D, K = 5, 8, 2
    q = torch.randn(B, D, generator=g, dtype=torch.float64) * 2
    p = 0.3 * q + torch.randn(B, D, generator=g, dtype=torch.float64)  # moderately hard: loss O(1) at τ 0.03
    n = 0.25 * q[:, None, :] + torch.randn(B, K, D, generator=g, dtype=torch.float64)

    # 1. autograd == hand-written loop backward, every variant
    for name, (sym, shared, use_n) in VARIANTS.items():
        x = [t.clone().requires_grad_(True) for t in (q, p, n)]
        o = contrastive_loss(x[0], x[1], x[2] if use_n else None, symmetric=sym, shared_negatives=shared)
        o["loss"].backward()
        ml, mq, mp, mn = contrastive_loss_manual(q.numpy(), p.numpy(), n.numpy() if use_n else None,
                                                 symmetric=sym, shared_negatives=shared)
        dl = abs(float(o["loss"]) - ml)
        dg = max(float(np.abs(x[0].grad.numpy() - mq).max()), float(np.abs(x[1].grad.numpy() - mp).max()),
                 float(np.abs(x[2].grad.numpy() - mn).max()) if use_n else 0.0)
        ok = dl < 1e-12 and dg < 1e-12 and (use_n or x[2].grad is None)
        check(f"{name}: autograd == loop implementation (float64)", ok,
              f"loss {ml:.6f}, |dloss| {dl:.1e}, |dgrad| {dg:.1e}")

    # 2. structure
    un = F.normalize(n, dim=-1)
    uq, up = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
    lg = contrastive_logits(uq, up, un)
    ls = contrastive_logits(uq, up, un, shared_negatives=True)
    check("default logits (B, B+K); shared (B, B+B·K) with column B + j·K + k = q·n[j,k]",
          lg.shape == (B, B + K) and ls.shape == (B, B + B * K)
          and torch.allclose(ls[:, B:].view(B, B, K)[torch.arange(B), torch.arange(B)], lg[:, B:])
          and torch.allclose(ls[1, B + 3 * K + 1], (uq[1] @ un[3, 1]) / TEMPERATURE))
    o0 = contrastive_loss(q, p, None)
    o1 = contrastive_loss(q, p, n[:, :0])
    check("K = 0 (n None) == empty negatives == in-batch only", torch.allclose(o0["loss"], o1["loss"])
          and o0["logits"].shape == (B, B))
    os_ = contrastive_loss(q, p, n, symmetric=True)
    check("symmetric = ½(L_q→t + CE(P·Qᵀ/τ))", torch.allclose(
        os_["loss"], 0.5 * (contrastive_loss(q, p, n)["loss"] + contrastive_loss(p, q, None)["loss"])))
    sc = contrastive_loss(q * 3.7, p * 0.2, n * 11.0)["loss"]
    check("invariant to the scale of raw inputs (L2 normalisation)",
          torch.allclose(sc, contrastive_loss(q, p, n)["loss"]))

    # 3. finite differences (float64) along random directions for the default and shared variants
    for name in ("default", "symmetric", "shared"):
        sym, shared, _ = VARIANTS[name]
        x = [t.clone().requires_grad_(True) for t in (q, p, n)]
        contrastive_loss(*x, symmetric=sym, shared_negatives=shared)["loss"].backward()
        dirs = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in (q, p, n)]
        ana = sum(float((xx.grad * d).sum()) for xx, d in zip(x, dirs))
        h = 1e-6
        with torch.no_grad():
            lp = float(contrastive_loss(*[t + h * d for t, d in zip((q, p, n), dirs)], symmetric=sym,
                                        shared_negatives=shared)["loss"])
            lm = float(contrastive_loss(*[t - h * d for t, d in zip((q, p, n), dirs)], symmetric=sym,
                                        shared_negatives=shared)["loss"])
        fd = (lp - lm) / (2 * h)
        check(f"{name}: finite difference along a random direction", abs(fd - ana) < 1e-6 * max(1.0, abs(ana)),
              f"fd {fd:.9f} analytic {ana:.9f}")

    # 4. tiny model: GradCache == plain gradients, chunk sizes 1, 2, 4; slice_group keeps images with rows
    here = os.path.dirname(os.path.abspath(__file__))
    fix = os.path.join(here, "..", "..", "test", "fixtures", "qwen25vl-tiny")
    cfg = ref.load_config(fix)
    weights = ref.load_weights(fix)
    inp, _ = ref.read_safetensors(os.path.join(fix, "inputs.safetensors"))
    grp = {k: inp[k] for k in GROUP_KEYS}  # rows: 2 images / 1 image / text only
    model = ClRef(cfg, weights)
    with torch.no_grad():
        full = model.encode(grp)
        parts = torch.cat([model.encode(slice_group(grp, a, a + 1, 268, 265)) for a in range(3)])
    d = float((full - parts).abs().max())
    check("encode(slice_group rows) == encode(group) rows", d < 1e-5, f"{d:.1e}")
    # a batch from the tiny inputs: q = rows, p = rows rotated, n = (rows of grp twice) -> K = 2
    sl = [slice_group(grp, a, a + 1, 268, 265) for a in range(3)]

    def cat_groups(rows):
        length = max(r["input_ids"].shape[1] for r in rows)
        ids = torch.cat([F.pad(r["input_ids"], (0, length - r["input_ids"].shape[1]), value=256) for r in rows])
        am = torch.cat([F.pad(r["attention_mask"], (0, length - r["attention_mask"].shape[1])) for r in rows])
        pv = [r["pixel_values"] for r in rows if r["pixel_values"] is not None]
        gr = [r["image_grid_thw"] for r in rows if r["image_grid_thw"] is not None]
        return {"input_ids": ids, "attention_mask": am, "pixel_values": torch.cat(pv) if pv else None,
                "image_grid_thw": torch.cat(gr) if gr else None}

    batch = {"q": cat_groups([sl[2], sl[1]]), "p": cat_groups([sl[1], sl[0]]),
             "n": cat_groups([sl[0], sl[2], sl[2], sl[1]])}
    names = ["model.embed_tokens.weight", "visual.blocks.0.attn.qkv.weight", "model.norm.weight"]
    model.zero_grad()
    o = model.forward(batch)
    o["loss"].backward()
    plain, plain_t = model.grad_norms(names)
    gref = {k: v.grad.clone() for k, v in model.params.items()}
    for cs in (1, 2, 4):
        model.zero_grad()
        oc = model.grad_cache(batch, cs)
        gc, gc_t = model.grad_norms(names)
        rel = max(float((model.params[k].grad - gref[k]).norm() / max(float(gref[k].norm()), 1e-12)) for k in gref)
        dl = abs(float(oc["loss"]) - float(o["loss"]))
        check(f"GradCache chunk {cs} == plain: loss and every parameter gradient", dl < 1e-5 and rel < 1e-4,
              f"loss {float(o['loss']):.6f}, |dloss| {dl:.1e}, max relative grad diff {rel:.1e} "
              f"(total {plain_t:.6f} vs {gc_t:.6f})")
    print(f"{sum(results)}/{len(results)} checks passed")
    return all(results)


if __name__ == "__main__":
    sys.exit(0 if _selfcheck() else 1)
