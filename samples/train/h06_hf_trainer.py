"""Healthy: an HF-Trainer-style run (AdamW, linear warm-up then linear decay to 0, clipping at 1.0),
logged every 5 steps as transformers 5.x prints it (numbers pre-formatted as strings)."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all
from .writers import HFLog

SPEC = dict(file="h06_hf_trainer.log", format="text", healthy=True, expect=[], onset_step=None,
            vars={"num_classes": 10},
            bug="none: get_linear_schedule_with_warmup(50, 1000); the last records' LR falls to 0 "
                "as planned at the end of the run")


def run(path: Path) -> None:
    seed_all(106)
    data = GaussianMixture(10, 32, noise=3.0, seed=106)
    model = Classifier(32, 10, act=torch.nn.GELU)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    steps, warm, every = 1000, 50, 5
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))
    log = HFLog(path, v5=True)
    log.text("***** Running training *****")
    log.text("  Num examples = 64,000 | Num Epochs = 1 | Total optimization steps = 1,000")
    acc, total = 0.0, 0.0
    for step in range(1, steps + 1):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        acc += loss.item()
        total += loss.item()
        if step % every == 0:
            log.log({"loss": acc / every, "grad_norm": gn.item(),
                     "learning_rate": sched.get_last_lr()[0], "epoch": step / steps})
            acc = 0.0
    log.log({"train_runtime": 38.5, "train_samples_per_second": 1662.3,
             "train_steps_per_second": 25.97, "train_loss": total / steps, "epoch": 1.0})
    log.close()
