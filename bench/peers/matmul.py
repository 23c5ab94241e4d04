"""PyTorch peer for the `matmul` bench: fp32 C = A @ B; one step is `reps` products of the case's size.

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
"""

import json
import os
import sys
import time
import traceback

import torch


def vm_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


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


def serve(worker):
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            kind = cmd["cmd"]
            if kind == "init":
                reply = {"ok": True, **worker.init(cmd["config"])}
            elif kind in ("warmup", "run"):
                times, values = [], {}
                for _ in range(cmd["steps"]):
                    t0 = time.perf_counter()
                    v = worker.step(cmd.get("case"))
                    times.append((time.perf_counter() - t0) * 1e3)
                    for k, x in (v or {}).items():
                        values.setdefault(k, []).append(x)
                reply = {"ok": True, "times_ms": times, "values": values}
            elif kind == "rss":
                hwm, rss = vm_kib("VmHWM"), vm_kib("VmRSS")
                reply = {
                    "ok": True,
                    "peak_rss_mib": None if hwm is None else hwm / 1024,
                    "rss_mib": None if rss is None else rss / 1024,
                }
            elif kind == "exit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            else:
                reply = {"ok": False, "error": "unknown command %r" % (kind,)}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    serve(Worker())
