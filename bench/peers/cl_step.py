"""PyTorch peer for the `cl-step` bench: one MoCa stage-2 training step (contrastive InfoNCE with in-batch
positives + hard negatives, spec §3.4, §1.7) of the independent reference (tools/reference/cl_reference.py on
tools/reference/qwen25vl_reference.py, vectorised path) on the same weights and batch as ours; plain or GradCache.

init config: { modelDir, batchFile, threads, lr, temperature?, gradCache?, chunkSize?, symmetric?, sharedNegatives? }
  modelDir     a Qwen2.5-VL checkpoint directory (config.json + model.safetensors[.index.json])
  batchFile    safetensors in the layout of test/fixtures/cl-tiny/batch.safetensors: three groups, names prefixed
               with the group — `q.` queries (B rows), `p.` positives (B rows, row i = positive of query i),
               `n.` hard negatives (B·K rows, row i·K + k = negative k of query i; absent: K = 0) — each with
               input_ids, attention_mask (int64, right padding) and, when the group has images, pixel_values
               (float32, images concatenated in row order) + image_grid_thw (int64, (t, h, w) per image)
  temperature  τ (default 0.03, MoCa's cl_train.sh)
  gradCache    false (default): each group embedded with graph in one forward, loss.backward();
               true: GradCache (embed in chunks of chunkSize rows without graph, loss on detached embeddings,
               backward to d loss / d embedding, then per chunk re-embed with graph and backward(embedding, grad))
  chunkSize    GradCache chunk size in rows, per group (default 2)
  symmetric / sharedNegatives   loss variants (default false = MoCa's loss)
  lr           AdamW learning rate (torch.optim.AdamW, betas (0.9, 0.999), eps 1e-8, weight decay 0)
One step = forward (plain or GradCache) + backward, optimizer.step(), zero_grad (set to none).
Values per step: loss (before the update), rows = sequences embedded per step (B queries + B positives + B·K
negatives; GradCache's re-embedding is not counted twice), queries = B, and forward_ms / backward_ms /
optimizer_ms (plain: forward = the three group forwards + loss, backward = loss.backward(); GradCache: forward
= the no-graph embedding + loss + its backward, backward = the chunked re-embedding with graph + backward).

Speaks the harness protocol: one JSON command per line on stdin, one JSON reply per line on stdout.
"""

import os
import sys
import time

import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))
import cl_reference as cl  # noqa: E402
import qwen25vl_reference as ref  # noqa: E402
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)


class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        t0 = time.perf_counter()
        cfg = ref.load_config(c["modelDir"])
        weights = ref.load_weights(c["modelDir"])
        tensors, _ = ref.read_safetensors(c["batchFile"])
        self.batch = cl.batch_from_tensors(tensors)
        self.model = cl.ClRef(cfg, weights, impl="vectorized", temperature=float(c.get("temperature", cl.TEMPERATURE)),
                              symmetric=bool(c.get("symmetric", False)),
                              shared_negatives=bool(c.get("sharedNegatives", False)))
        del weights
        self.grad_cache = bool(c.get("gradCache", False))
        self.chunk_size = int(c.get("chunkSize", 2))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=float(c["lr"]), betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.0)
        self.queries = self.batch["q"]["input_ids"].shape[0]
        self.k = cl.num_negatives(self.batch)
        self.rows = self.queries * (2 + self.k)
        load_ms = (time.perf_counter() - t0) * 1e3
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "load_ms": load_ms,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "queries": self.queries,
            "negatives_per_query": self.k,
            "grad_cache": self.grad_cache,
            "chunk_size": self.chunk_size,
            "data_checksum": sum(float(t.sum()) for n, t in tensors.items() if n.endswith(".attention_mask")),
        }

    def step(self, _case):
        t0 = time.perf_counter()
        if self.grad_cache:
            marks = []
            out = self.model.grad_cache(self.batch, self.chunk_size, marks)
            loss, t1 = float(out["loss"]), marks[0]
        else:
            out = self.model.forward(self.batch)
            t1 = time.perf_counter()
            out["loss"].backward()
            loss = float(out["loss"])
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"loss": loss, "rows": float(self.rows), "queries": float(self.queries),
                "forward_ms": (t1 - t0) * 1e3, "backward_ms": (t2 - t1) * 1e3, "optimizer_ms": (t3 - t2) * 1e3}


if __name__ == "__main__":
    serve(Worker())
