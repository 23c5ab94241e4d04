"""PyTorch peer for the `cpt-step` bench: one MoCa stage-1 training step (joint MLM + MAE, spec §2.4–§2.6) of the
independent reference (tools/reference/cpt_reference.py on tools/reference/qwen25vl_reference.py, vectorised
path) on the same weights, heads, batch and masks as ours.

init config: { modelDir, batchFile, headsFile?, threads, lr, seed? }
  modelDir   a Qwen2.5-VL checkpoint directory (config.json + model.safetensors[.index.json])
  batchFile  safetensors in the layout of test/fixtures/cpt-tiny/batch.safetensors: input_ids, attention_mask,
             pixel_values, image_grid_thw (both absent for a text-only batch), mlm_mask, mae_token_mask, noise
  headsFile  optional safetensors with mae_decoder.* / mae_proj.*; else MoCa's init (copy of layer L//2,
             mae_proj.weight ~ N(0, 0.02) from torch.Generator().manual_seed(seed), bias 0)
  maskTokenId  optional; else the batch file's metadata `mask_token_id`; else 270 (the tiny fixture's <|mask|>)
  lr         AdamW learning rate (torch.optim.AdamW, betas (0.9, 0.999), eps 1e-8, weight decay 0)
One step = forward (MLM + MAE on the fixed masks), loss.backward(), optimizer.step(), zero_grad (set to none).
Values per step: loss, mlm_loss, mae_loss (before the update), tokens (real tokens = attention_mask.sum()).

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
"""

import json
import os
import sys
import time
import traceback

import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))
import cpt_reference as cpt  # noqa: E402
import qwen25vl_reference as ref  # noqa: E402
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)



class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        t0 = time.perf_counter()
        cfg = ref.load_config(c["modelDir"])
        weights = ref.load_weights(c["modelDir"])
        if c.get("headsFile"):
            heads, _ = ref.read_safetensors(c["headsFile"])
        else:
            heads = cpt.init_heads(cfg, weights, generator=torch.Generator().manual_seed(int(c.get("seed", 0))))
        batch, meta = ref.read_safetensors(c["batchFile"])
        mask_id = c.get("maskTokenId", meta.get("mask_token_id"))
        self.model = cpt.CptRef(cfg, weights, heads, impl="vectorized",
                                mask_token_id=None if mask_id is None else int(mask_id))
        del weights
        self.args = cpt.batch_args(batch)
        self.tokens = float(batch["attention_mask"].sum())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=float(c["lr"]), betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.0)
        load_ms = (time.perf_counter() - t0) * 1e3
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "load_ms": load_ms,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "mask_token_id": self.model.mask_token_id,
            "data_checksum": float(batch["attention_mask"].sum()) + float(batch["mlm_mask"].sum())
            + (float(batch["mae_token_mask"].sum()) if "mae_token_mask" in batch else 0.0),
        }

    def step(self, _case):
        t0 = time.perf_counter()
        out = self.model.forward(*self.args)
        t1 = time.perf_counter()
        out["loss"].backward()
        values = {
            "loss": float(out["loss"]),
            "mlm_loss": float(out["mlm_loss"]),
            "mae_loss": float(out["mae_loss"]),
            "tokens": self.tokens,
        }
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        values.update({"forward_ms": (t1 - t0) * 1e3, "backward_ms": (t2 - t1) * 1e3, "optimizer_ms": (t3 - t2) * 1e3})
        return values


if __name__ == "__main__":
    serve(Worker())
