"""The harness protocol spoken by every PyTorch peer (see bench/harness.ts): one JSON command per line on stdin,
one JSON reply per line on stdout.

  {"cmd": "init", "config": {...}}            -> {"ok": true, ...worker.init(config)}
  {"cmd": "warmup"|"run", "steps": k, "case"} -> {"ok": true, "times_ms": [...], "values": {name: [...]}}
  {"cmd": "rss"}                              -> {"ok": true, "peak_rss_mib": .., "rss_mib": ..}
  {"cmd": "exit"}                             -> {"ok": true} and return
Errors reply {"ok": false, "error": traceback} and the peer keeps serving.
"""

import json
import sys
import time
import traceback


def vm_kib(key):
    """A /proc/self/status field in kB (VmHWM: peak RSS, VmRSS: current RSS), or None."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def serve(worker):
    """Answers commands until `exit` or end of input; `worker` has init(config) and step(case) -> dict|None."""
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
