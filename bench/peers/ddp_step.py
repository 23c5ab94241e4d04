"""PyTorch peer for the `ddp` bench: the train-step transformer (train_step.py) under
torch.nn.parallel.DistributedDataParallel with the Gloo backend when WORLD_SIZE > 1 (DDP's defaults: 25 MB
buckets, all-reduce overlapped with backward, gradients averaged), a plain training step otherwise.

Speaks the harness protocol (protocol.py). Every rank trains on its own batch (seed + rank).
"""

import os
import time

import torch
import torch.distributed as dist
from protocol import serve  # noqa: E402  (bench/peers is on sys.path when run as a script)
from train_step import TinyTransformerLM  # noqa: E402


class LossModule(torch.nn.Module):
    """DDP hooks into forward(): the loss is computed inside it."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, tokens, targets):
        return self.lm.loss(tokens, targets)


class Worker:
    def init(self, c):
        torch.set_num_threads(c["threads"])
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        if world > 1:
            dist.init_process_group("gloo", rank=rank, world_size=world)
        m = c["model"]
        torch.manual_seed(c["seed"] + rank)
        self.tokens = torch.randint(0, m["vocabSize"], (c["batch"], m["seqLen"]))
        self.targets = torch.randint(0, m["vocabSize"], (c["batch"], m["seqLen"]))
        torch.manual_seed(c["seed"] + 1000)
        lm = TinyTransformerLM(m)
        lm.train()
        module = LossModule(lm)
        self.model = torch.nn.parallel.DistributedDataParallel(module) if world > 1 else module
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=c["lr"])
        return {
            "threads": torch.get_num_threads(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "torch_version": torch.__version__,
            "parameters": sum(p.numel() for p in lm.parameters()),
            "rank": rank,
            "world": world,
        }

    def step(self, _case):
        t0 = time.perf_counter()
        loss = self.model(self.tokens, self.targets)
        t1 = time.perf_counter()
        loss.backward()  # DDP: bucket all-reduces start during backward and are waited for at its end
        value = loss.item()
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"loss": value, "forward_ms": (t1 - t0) * 1e3, "backward_ms": (t2 - t1) * 1e3, "optimizer_ms": (t3 - t2) * 1e3}


if __name__ == "__main__":
    serve(Worker())
