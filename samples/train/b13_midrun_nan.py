"""Per-batch feature standardisation without an epsilon: from step 400 a shard has a constant
(zero-filled) sensor column, std is 0, 0/0 gives NaN inputs, and the loss is NaN from there on."""
from pathlib import Path

import torch

from .common import Classifier, GaussianMixture, ce_step, seed_all
from .writers import JsonlLog

SPEC = dict(file="b13_midrun_nan.jsonl", format="jsonl", healthy=False,
            expect=["NonFiniteMetric"], may_fire=[], onset_step=400,
            bug="x = (x - x.mean(0)) / x.std(0) with no eps; shard 3 (step 400 on) has a zero-filled "
                "column, so every loss and grad norm is NaN from step 400")


def run(path: Path) -> None:
    seed_all(13)
    data = GaussianMixture(10, 32, noise=3.0, seed=13)
    model = Classifier(32, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = JsonlLog(path, meta={"num_classes": 10})
    for step in range(800):
        x, y = data.batch(64)
        if step >= 400:
            x[:, 7] = 0.0  # shard 3: sensor 7 missing, filled with zeros
        x = (x - x.mean(0)) / x.std(0)  # BUG: no eps
        loss, gn = ce_step(model, opt, x, y)
        log.write({"step": step, "train": {"loss": loss.item(), "grad_norm": gn},
                   "lr": opt.param_groups[0]["lr"]})
    log.close()
