"""PyTorch peer for the `decode-bound` bench: the same 3B-shaped Qwen2.5-VL decoder layers as
bench/workers/decode-bound.ts (same parameter shapes drawn in the same order from the same seed), written as
transformers' eager Qwen2 layers are (RMSNorm in float32, rotary, repeat_interleave'd K/V, softmax in float32,
SwiGLU MLP), over one long text and one short query, in

  float32   as is;
  bfloat16  the module cast to bfloat16 (weights and activations: what `model.to(torch.bfloat16)` gives);
  int8      torch.ao dynamic quantisation of every nn.Linear (int8 weights, per-tensor dynamic activations) with
            the quantised engine this torch build offers (onednn / fbgemm; qnnpack last).

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
"""

import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)

HIDDEN, FFN, HEADS, KV_HEADS, THETA, EPS = 2048, 11008, 16, 2, 1000000.0, 1e-6
HEAD_DIM = HIDDEN // HEADS


def rms_norm(x, weight):
    dt = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
    return weight * h.to(dt)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        kv = KV_HEADS * HEAD_DIM
        self.q_proj = nn.Linear(HIDDEN, HIDDEN)
        self.k_proj = nn.Linear(HIDDEN, kv)
        self.v_proj = nn.Linear(HIDDEN, kv)
        self.o_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.gate_proj = nn.Linear(HIDDEN, FFN, bias=False)
        self.up_proj = nn.Linear(HIDDEN, FFN, bias=False)
        self.down_proj = nn.Linear(FFN, HIDDEN, bias=False)
        self.input_layernorm = nn.Parameter(torch.ones(HIDDEN))
        self.post_attention_layernorm = nn.Parameter(torch.ones(HIDDEN))

    def ordered(self):
        """The parameters in the order bench/workers/decode-bound.ts draws them."""
        return [self.q_proj.weight, self.q_proj.bias, self.k_proj.weight, self.k_proj.bias, self.v_proj.weight,
                self.v_proj.bias, self.o_proj.weight, self.gate_proj.weight, self.up_proj.weight,
                self.down_proj.weight]

    def forward(self, x, cos, sin):
        b, n, _ = x.shape
        h = rms_norm(x, self.input_layernorm)
        q = self.q_proj(h).view(b, n, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k_proj(h).view(b, n, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v_proj(h).view(b, n, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(HEAD_DIM)
        p = torch.softmax(scores.to(torch.float32), dim=-1).to(q.dtype)
        a = (p @ v).transpose(1, 2).reshape(b, n, HIDDEN)
        x = x + self.o_proj(a)
        h = rms_norm(x, self.post_attention_layernorm)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Decoder(nn.Module):
    def __init__(self, layers, seed):
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(layers)])
        self.norm = nn.Parameter(torch.ones(HIDDEN))
        torch.manual_seed(seed)
        with torch.no_grad():
            for layer in self.layers:
                for p in layer.ordered():
                    p.copy_(torch.randn(p.shape) * 0.02)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x, cos, sin):
        for layer in self.layers:
            x = layer(x, cos, sin)
        return rms_norm(x, self.norm)


def rope(length, dtype):
    inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.int64).float() / HEAD_DIM))
    freqs = torch.arange(length).float()[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype)[None, None], emb.sin().to(dtype)[None, None]


def median_seconds(fn, reps=5):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def quantized_engine():
    engines = torch.backends.quantized.supported_engines
    for e in ("fbgemm", "x86", "onednn", "qnnpack"):
        if e in engines:
            return e
    return None


class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        n = c["bandwidthMiB"] * 2**20 // 4
        a = torch.ones(n)
        b = torch.empty(n)
        b.copy_(a)
        read = median_seconds(lambda: a.sum().item())
        copy = median_seconds(lambda: b.copy_(a))
        del a, b
        self.models, self.inputs, self.ropes = {}, {}, {}
        engine = None
        for dtype in c["dtypes"]:
            m = Decoder(c["layers"], c["seed"])
            if dtype == "bfloat16":
                m = m.to(torch.bfloat16)
            elif dtype == "int8":
                engine = quantized_engine()
                torch.backends.quantized.engine = engine
                m = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
            self.models[dtype] = m
        for case, length in (("long", c["longTokens"]), ("short", c["shortTokens"])):
            torch.manual_seed(c["seed"] + length)
            self.inputs[case] = torch.randn(1, length, HIDDEN)
            self.ropes[case] = {dt: rope(length, torch.bfloat16 if dt == "bfloat16" else torch.float32)
                                for dt in c["dtypes"]}
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "read_gbps": n * 4 / read / 1e9,
            "copy_gbps": 2 * n * 4 / copy / 1e9,
            "int8_engine": engine,
        }

    def step(self, case):
        dtype, length = case.split("-")
        x = self.inputs[length]
        cos, sin = self.ropes[length][dtype]
        with torch.inference_mode():
            out = self.models[dtype](x.to(torch.bfloat16) if dtype == "bfloat16" else x, cos, sin)
        return {"tokens": float(x.shape[1]), "checksum": float(out.float().abs().mean())}


if __name__ == "__main__":
    serve(Worker())
