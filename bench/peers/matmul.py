"""PyTorch peer for the `matmul` bench: fp32 C = A @ B; one step is `reps` products of the case's size.

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
"""

import json
import os
import sys
import time
import traceback

import torch
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)



class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        self.inputs = {}
        checksums = {}
        for case in c["cases"]:
            torch.manual_seed(c["seed"])
            a = torch.randn(case["m"], case["k"])
            b = torch.randn(case["k"], case["n"])
            self.inputs[case["id"]] = (case["reps"], a, b)
            checksums[case["id"]] = a.sum().item() + b.sum().item()
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "checksums": checksums,
        }

    def step(self, case_id):
        reps, a, b = self.inputs[case_id]
        for _ in range(reps):
            torch.matmul(a, b)
        return None


if __name__ == "__main__":
    serve(Worker())
