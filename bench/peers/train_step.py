"""PyTorch peer for the `train-step` bench: the same tiny transformer LM as bench/models/tiny-transformer.ts.

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
Submodules are created in the same order as the TypeScript model, from the same seed, so that (on the same
libtorch) both start from the same weights and data.
"""

import json
import math
import os
import resource
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)


class SelfAttention(nn.Module):
    def __init__(self, d_model, n_heads, causal):
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.n_heads

        def heads(y):
            return y.view(b, t, self.n_heads, hd).transpose(1, 2)

        q = heads(self.q_proj(x))
        k = heads(self.k_proj(x))
        v = heads(self.v_proj(x))
        # softmax(q k^T / sqrt(hd)) v, composed from matmul + softmax (as ours).
        scores = q.matmul(k.transpose(-2, -1)).mul(1.0 / math.sqrt(hd))
        if self.causal:
            keep = torch.ones(t, t, dtype=torch.bool).tril()
            scores = scores.masked_fill(keep.logical_not(), float("-inf"))
        y = scores.softmax(-1).matmul(v)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln1 = nn.LayerNorm(c["dModel"])
        self.attn = SelfAttention(c["dModel"], c["nHeads"], c["causal"])
        self.ln2 = nn.LayerNorm(c["dModel"])
        self.mlp = Mlp(c["dModel"], c["dFf"])

    def forward(self, x):
        h = x + self.attn(self.ln1(x))
        return h + self.mlp(self.ln2(h))


class TinyTransformerLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_emb = nn.Embedding(c["vocabSize"], c["dModel"])
        self.pos_emb = nn.Embedding(c["seqLen"], c["dModel"])
        self.layers = nn.ModuleList([Block(c) for _ in range(c["nLayers"])])
        self.ln_f = nn.LayerNorm(c["dModel"])
        self.lm_head = nn.Linear(c["dModel"], c["vocabSize"], bias=False)
        self.register_buffer("position_ids", torch.arange(c["seqLen"]), persistent=False)

    def forward(self, tokens):
        t = tokens.size(1)
        x = self.tok_emb(tokens) + self.pos_emb(self.position_ids[:t])
        for block in self.layers:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def loss(self, tokens, targets):
        logits = self.forward(tokens)
        return F.cross_entropy(logits.reshape(-1, self.c["vocabSize"]), targets.reshape(-1))



class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        m = c["model"]
        torch.manual_seed(c["seed"])
        self.tokens = torch.randint(0, m["vocabSize"], (c["batch"], m["seqLen"]))
        self.targets = torch.randint(0, m["vocabSize"], (c["batch"], m["seqLen"]))
        torch.manual_seed(c["seed"] + 1)
        self.model = TinyTransformerLM(m)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=c["lr"], weight_decay=c["weightDecay"])
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data_checksum": int(self.tokens.sum().item() + self.targets.sum().item()),
        }

    def step(self, _case):
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        loss = self.model.loss(self.tokens, self.targets)
        t1 = time.perf_counter()
        loss.backward()
        value = loss.item()
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)  # as ours (PyTorch >= 2.0's default)
        t3 = time.perf_counter()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
        return {
            "minor_faults": faults,
            "loss": value,
            "forward_ms": (t1 - t0) * 1e3,
            "backward_ms": (t2 - t1) * 1e3,
            "optimizer_ms": (t3 - t2) * 1e3,
        }


if __name__ == "__main__":
    serve(Worker())
