"""A 'class-balanced' batch sampler, switched on from epoch 2, that yields one class per batch."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, accuracy, seed_all
from .writers import JsonlLog

SPEC = dict(file="b03_one_class_batches.jsonl", format="jsonl", healthy=False,
            expect=["SingleClassBatches"], may_fire=["LossOscillationGrowing"], onset_step=200,
            bug="BalancedBatchSampler sorts indices by class and chunks them: every batch from "
                "epoch 2 on holds a single class (labels/unique == 1)")


def balanced_batches(y: torch.Tensor, bs: int, g: torch.Generator) -> list[torch.Tensor]:
    order = torch.argsort(y, stable=True)  # BUG: meant to interleave classes, only groups them
    chunks = list(order.split(bs))
    return [chunks[i] for i in torch.randperm(len(chunks), generator=g).tolist()]


def run(path: Path) -> None:
    g = seed_all(3)
    data = GaussianMixture(10, 32, noise=3.0, seed=3)
    # a finite dataset: 10 classes x 320 samples, 100 batches of 32 per epoch
    y_all = torch.arange(10).repeat_interleave(320)
    x_all, _ = data.batch(3200, classes=y_all)
    model = Classifier(32, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = JsonlLog(path, meta={"num_classes": 10, "grad_accum": 1, "batch_size": 32})
    step = 0
    for epoch in range(6):
        if epoch >= 2:  # cfg.balanced_sampler_from_epoch = 2
            batches = balanced_batches(y_all, 32, g)
        else:
            batches = list(torch.randperm(3200, generator=g).split(32))
        for idx in batches:
            x, y = x_all[idx], y_all[idx]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.write({"step": step, "epoch": epoch, "train/loss": loss.item(),
                       "train/lr": opt.param_groups[0]["lr"],
                       "labels/unique": int(y.unique().numel()),
                       "labels/min": int(y.min()), "labels/max": int(y.max())})
            step += 1
        log.write({"step": step - 1, "epoch": epoch, "val/acc": accuracy(model, data)})
    log.close()
