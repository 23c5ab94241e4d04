"""PyTorch peer for the `embed` and `embed-precision` benches: the independent reference model
(tools/reference/qwen25vl_reference.py, vectorised path, float32) on the same weights and the same prepared
batches; one step = one forward under inference_mode.

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
import qwen25vl_reference as ref  # noqa: E402
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)



class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        t0 = time.perf_counter()
        cfg = ref.load_config(c["modelDir"])
        weights = ref.load_weights(c["modelDir"])
        self.model = ref.Qwen25VLEmbedderRef(cfg, weights, impl="vectorized")
        load_ms = (time.perf_counter() - t0) * 1e3
        self.batches = {}
        checksums = {}
        for case_id, path in c["inputs"].items():
            t, _ = ref.read_safetensors(path)
            self.batches[case_id] = t
            checksums[case_id] = float(t["attention_mask"].sum())
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "load_ms": load_ms,
            "checksums": checksums,
        }

    def step(self, case_id):
        # `<batch>-<dtype>` cases (embed-precision) compare ours in bf16 / int8 with this float32 reference.
        t = self.batches[case_id.split("-")[0]]
        with torch.inference_mode():
            out = self.model.forward(
                t["input_ids"], t["attention_mask"], t.get("pixel_values"), t.get("image_grid_thw")
            )["embeddings"]
        return {"rows": float(t["input_ids"].shape[0]), "checksum": float(out.sum())}


if __name__ == "__main__":
    serve(Worker())
