#!/usr/bin/env python3
"""Writes test/fixtures/optim.json: reference trajectories from torch.optim (Debian's torch 1.13).

Each case: initial float64 parameters, a fixed gradient per step (so the reference does not depend on a
model), the optimizer options, and the parameter values after every step.
Run: /usr/bin/python3 tools/gen_optim_fixture.py
"""
import json
import os

import torch

torch.manual_seed(0)
STEPS = 5


def trajectory(make_opt, shapes):
    params = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    init = [p.detach().clone() for p in params]
    grads = [[torch.randn(s, dtype=torch.float64) for s in shapes] for _ in range(STEPS)]
    opt = make_opt(params)
    after = []
    for step in range(STEPS):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        opt.step()
        after.append([p.detach().clone().flatten().tolist() for p in params])
    return {
        "shapes": [list(s) for s in shapes],
        "init": [p.flatten().tolist() for p in init],
        "grads": [[g.flatten().tolist() for g in step] for step in grads],
        "after": after,
    }


cases = {}
shapes = [(3, 2), (4,)]
cases["adamw_default"] = {"options": {"lr": 1e-3}, **trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-3), shapes)}
cases["adamw_wd_betas"] = {
    "options": {"lr": 0.05, "betas": [0.8, 0.95], "eps": 1e-6, "weightDecay": 0.1},
    **trajectory(lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1), shapes),
}
cases["adamw_amsgrad"] = {
    "options": {"lr": 0.01, "weightDecay": 0.01, "amsgrad": True},
    **trajectory(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01, amsgrad=True), shapes),
}
cases["sgd_momentum_nesterov_wd"] = {
    "options": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weightDecay": 0.01},
    **trajectory(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), shapes),
}
cases["sgd_dampening"] = {
    "options": {"lr": 0.1, "momentum": 0.5, "dampening": 0.3},
    **trajectory(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.3), shapes),
}

# clip_grad_norm_: total norm returned and the clipped gradients.
clip = []
for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, float("inf"))]:
    ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    gs = [torch.randn(s, dtype=torch.float64) * 3 for s in shapes]
    for p, g in zip(ps, gs):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    clip.append({
        "maxNorm": max_norm,
        "normType": "inf" if norm_type == float("inf") else norm_type,
        "grads": [g.flatten().tolist() for g in gs],
        "total": float(total),
        "clipped": [p.grad.flatten().tolist() for p in ps],
    })

out = {"generator": "tools/gen_optim_fixture.py", "torch": torch.__version__, "cases": cases, "clip": clip}
path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "optim.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path))
