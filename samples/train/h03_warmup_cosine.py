"""Healthy: linear LR warm-up for 100 iterations, then cosine decay to 1e-5; MMEngine log with
gradient clipping configured (so grad_norm is logged)."""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all
from .writers import FakeClock, MMEngineLog

SPEC = dict(file="h03_warmup_cosine_mmengine.log", format="text", healthy=True, expect=[],
            onset_step=None, vars={"num_classes": 10},
            bug="none: LinearLR warm-up (100 it) + CosineAnnealingLR to eta_min=1e-5")


def lr_at(it: int, total: int, peak: float = 1e-3, warm: int = 100, floor: float = 1e-5) -> float:
    if it < warm:
        return peak * (0.001 + 0.999 * it / warm)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * (it - warm) / (total - warm)))


def run(path: Path) -> None:
    seed_all(103)
    data = GaussianMixture(10, 32, noise=3.0, seed=103)
    model = Classifier(32, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    clock = FakeClock(0.0517)
    log = MMEngineLog(path, clock, "mlp_gmm")
    log.info("Distributed training is not used, all SyncBatchNorm (SyncBN) layers in the model will be "
             "automatically reverted to BatchNormXd layers if they are used.")
    log.info("Checkpoints will be saved to /work_dirs/mlp_gmm.")
    epochs, n_iter = 4, 300
    total = epochs * n_iter
    for epoch in range(1, epochs + 1):
        for it in range(1, n_iter + 1):
            g_it = (epoch - 1) * n_iter + it - 1
            for pg in opt.param_groups:
                pg["lr"] = lr_at(g_it, total)
            x, y = data.batch(64)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # optim_wrapper clip_grad
            opt.step()
            clock.tick()
            if it % 5 == 0:
                log.train(epoch, it, n_iter, opt.param_groups[0]["lr"], total - g_it - 1, 211,
                          grad_norm=gn.item(), loss=loss.item(), loss_cls=loss.item())
        log.info("Exp name: mlp_gmm_20240101_120000")
        log.info(f"Saving checkpoint at {epoch} epochs")
    log.close()
