"""Healthy: a plain loop with a real tqdm bar (unicode blocks) and set_postfix(loss=..., lr=...)."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all
from .writers import FakeClock, open_tqdm

SPEC = dict(file="h07_tqdm.log", format="text", healthy=True, expect=[], onset_step=None,
            vars={"num_classes": 10},
            bug="none: Adam 1e-3 with StepLR(500, 0.5); tqdm prints an update every ~0.1 s")


def run(path: Path) -> None:
    seed_all(107)
    data = GaussianMixture(10, 32, noise=3.0, seed=107)
    model = Classifier(32, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=500, gamma=0.5)
    clock = FakeClock(0.041)
    steps = 1500
    bar, f = open_tqdm(path, steps, clock, ascii=False)
    for step in range(steps):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        clock.tick()
        bar.set_postfix(loss=loss.item(), lr=opt.param_groups[0]["lr"], refresh=False)
        bar.update(1)
    bar.close()
    f.close()
