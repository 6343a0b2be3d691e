"""Healthy: a Lightning-style run logged by CSVLogger (LearningRateMonitor rows, train rows and
per-epoch validation rows, all sparse); Adam at a constant LR."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, accuracy, seed_all
from .writers import LightningCSV

SPEC = dict(file="h08_lightning_metrics.csv", format="csv", healthy=True, expect=[],
            onset_step=None, vars={"num_classes": 10},
            bug="none: Adam 1e-3, log_every_n_steps=2, validation every 100 steps")


def run(path: Path) -> None:
    seed_all(108)
    data = GaussianMixture(10, 32, noise=3.0, seed=108)
    model = Classifier(32, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = LightningCSV(path)
    steps_per_epoch, epochs, every = 100, 10, 2
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            if (step + 1) % every == 0:
                log.log_metrics({"lr-Adam": opt.param_groups[0]["lr"]}, step)
            x, y = data.batch(64)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % every == 0:
                log.log_metrics({"train_loss": loss.item(), "epoch": epoch}, step)
        with torch.no_grad():
            xv, yv = data.batch(512)
            val = F.cross_entropy(model(xv), yv).item()
        log.log_metrics({"val_loss": val, "val_acc": accuracy(model, data), "epoch": epoch},
                        (epoch + 1) * steps_per_epoch - 1)
    log.close()
