"""Healthy: 100 classes, zero-initialised head and a 100-step LR warm-up, so the loss starts at
exactly log(100) = 4.605, sits there briefly, then falls."""
from pathlib import Path

import torch

from .common import Classifier, GaussianMixture, ce_step, seed_all
from .writers import JsonlLog

SPEC = dict(file="h01_ce_from_chance.jsonl", format="jsonl", healthy=True, expect=[],
            onset_step=None, bug="none: CE starts at log(100) during LR warm-up, then falls")


def run(path: Path) -> None:
    seed_all(101)
    C = 100
    data = GaussianMixture(C, 32, noise=1.3, seed=101)
    model = Classifier(32, C, hidden=128)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    log = JsonlLog(path, meta={"num_classes": C, "grad_accum": 1})
    for step in range(800):
        x, y = data.batch(64)
        loss, gn = ce_step(model, opt, x, y)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        log.write({"step": step, "loss": loss.item(), "grad_norm": gn, "lr": lr})
    log.close()
