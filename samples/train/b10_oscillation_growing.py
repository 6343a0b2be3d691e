"""CyclicLR in exp_range mode with gamma=1.0025 (meant 0.9975): each LR cycle peaks higher, and
the loss swings wider every cycle. Logged through Lightning's CSVLogger."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, accuracy, seed_all
from .writers import LightningCSV

SPEC = dict(file="b10_oscillation_growing_metrics.csv", format="csv", healthy=False,
            expect=["LossOscillationGrowing"], may_fire=["LossNotImproving", "GradientExploding", "LossSpike"],
            onset_step=0, symptom_step=940, vars={"num_classes": 10},
            bug="CyclicLR(mode='exp_range', gamma=1.0025): the peak LR grows 1.28x per 100-step "
                "cycle instead of shrinking; loss amplitude grows cycle after cycle")


def run(path: Path) -> None:
    seed_all(10)
    data = GaussianMixture(10, 32, noise=2.0, seed=10)
    model = Classifier(32, 10, act=torch.nn.Tanh)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.05, max_lr=1.0, step_size_up=50,
                                              mode="exp_range", gamma=1.0025)  # BUG: meant 0.9975
    log = LightningCSV(path)
    steps_per_epoch, epochs, every = 100, 12, 2
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            if (step + 1) % every == 0:  # LearningRateMonitor(logging_interval="step", log_momentum=True)
                log.log_metrics({"lr-SGD": opt.param_groups[0]["lr"],
                                 "lr-SGD-momentum": opt.param_groups[0]["momentum"]}, step)
            x, y = data.batch(256)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % every == 0:  # self.log("train_loss", loss), log_every_n_steps=2
                log.log_metrics({"train_loss": loss.item(), "epoch": epoch}, step)
        with torch.no_grad():
            xv, yv = data.batch(512)
            val = F.cross_entropy(model(xv), yv).item()
        log.log_metrics({"val_loss": val, "val_acc": accuracy(model, data), "epoch": epoch},
                        (epoch + 1) * steps_per_epoch - 1)
    log.close()
