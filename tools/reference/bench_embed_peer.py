#!/usr/bin/env python3
"""Persistent PyTorch peer for embedding benchmarks (reference model, vectorised path).

Protocol: one JSON command per stdin line, exactly one JSON reply line per command on stdout.
  {"cmd":"load","dir":"<model dir>","threads":2}
      -> {"ok":true,"load_ms":..,"threads":2,"params":N}
  {"cmd":"embed","inputs":"<inputs.safetensors>","steps":k[,"warmup":0][,"attention":"bidirectional"|"causal"]
   [,"pooling":"mean"|"last"]}
      -> {"ok":true,"step_ms":[..k..],"batch":B,"seq_len":L,"dim":H,"checksum":sum(embeddings)}
     inputs.safetensors holds input_ids (B,L), attention_mask (B,L), optional pixel_values (N,1176) and
     image_grid_thw (n,3) (the layout of test/fixtures/qwen25vl-tiny/inputs.safetensors). Each step is one
     full forward (vision tower + LLM + pooling + L2 normalisation) timed with time.perf_counter.
  {"cmd":"rss"} -> {"ok":true,"vmhwm_mib":..,"vmrss_mib":..}
  {"cmd":"quit"} -> {"ok":true} and exit (EOF also exits)
Errors: {"ok":false,"error":"..."}; the peer keeps running.
Run: /usr/bin/python3 tools/reference/bench_embed_peer.py
"""
import json
import os
import sys
import time
import traceback

import torch

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen25vl_reference as ref  # noqa: E402

state = {"model": None}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def proc_status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    return None


def cmd_load(c):
    threads = int(c.get("threads", 2))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = ref.load_config(c["dir"])
    weights = ref.load_weights(c["dir"])
    state["model"] = ref.Qwen25VLEmbedderRef(cfg, weights, impl="vectorized")
    del weights
    ms = (time.perf_counter() - t0) * 1000.0
    params = sum(t.numel() for t in state["model"].w.values())
    return {"ok": True, "load_ms": ms, "threads": torch.get_num_threads(), "params": params}


def cmd_embed(c):
    model = state["model"]
    if model is None:
        raise RuntimeError("no model loaded (send a load command first)")
    tensors, _ = ref.read_safetensors(c["inputs"])
    ids = tensors["input_ids"].to(torch.int64)
    mask = tensors.get("attention_mask")
    pix = tensors.get("pixel_values")
    grid = tensors.get("image_grid_thw")
    steps = int(c.get("steps", 1))
    attention = c.get("attention", "bidirectional")
    pooling = c.get("pooling", "mean" if attention == "bidirectional" else "last")
    times = []
    emb = None
    with torch.inference_mode():
        for _ in range(int(c.get("warmup", 0))):
            model.forward(ids, mask, pix, grid, attention=attention, pooling=pooling)
        for _ in range(steps):
            t0 = time.perf_counter()
            emb = model.forward(ids, mask, pix, grid, attention=attention, pooling=pooling)["embeddings"]
            times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "ok": True,
        "step_ms": times,
        "batch": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "dim": int(emb.shape[-1]) if emb is not None else None,
        "checksum": float(emb.sum()) if emb is not None else None,
    }


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            c = json.loads(line)
            cmd = c.get("cmd")
            if cmd == "load":
                reply(cmd_load(c))
            elif cmd == "embed":
                reply(cmd_embed(c))
            elif cmd == "rss":
                reply({"ok": True, "vmhwm_mib": proc_status_mib("VmHWM"), "vmrss_mib": proc_status_mib("VmRSS")})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                reply({"ok": False, "error": f"unknown cmd {cmd!r}"})
        except Exception as e:  # keep serving
            reply({"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})


if __name__ == "__main__":
    main()
