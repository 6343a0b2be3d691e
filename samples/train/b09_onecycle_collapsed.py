"""OneCycleLR sized for the 2-epoch smoke test (total_steps from cfg.smoke_epochs) in a 10-epoch
run: the LR anneals to max_lr/25/1e4 = 1.2e-8 by step 300 and sits there (reference 000)."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all
from .writers import FakeClock, open_tqdm

SPEC = dict(file="b09_onecycle_collapsed_tqdm.log", format="text", healthy=False,
            expect=["LRCollapsed"], may_fire=["LossNotImproving", "UpdateRatioNearZero"],
            onset_step=290, symptom_step=300, vars={"num_classes": 10},
            bug="OneCycleLR(total_steps=2*150) in a 10*150-step run: lr hits 1.2e-08 at step 300 of "
                "1500 and stays there; the loss freezes wherever it was")


def run(path: Path) -> None:
    seed_all(9)
    data = GaussianMixture(10, 32, noise=4.0, seed=9)
    model = Classifier(32, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    steps_per_epoch, epochs, smoke_epochs = 150, 10, 2
    total = steps_per_epoch * smoke_epochs  # BUG: meant steps_per_epoch * epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total)
    clock = FakeClock(0.083)
    bar, f = open_tqdm(path, steps_per_epoch * epochs, clock)
    for step in range(steps_per_epoch * epochs):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched.last_epoch < total - 1:  # OneCycleLR raises past total_steps; guard added instead of a fix
            sched.step()
        clock.tick()
        bar.set_postfix({"train/loss": loss.item(), "train/lr": opt.param_groups[0]["lr"]}, refresh=False)
        bar.update(1)
    bar.close()
    f.close()
