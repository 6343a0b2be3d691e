"""StepLR with gamma=10 (meant 0.1): from step 100 the LR grows tenfold every 100 steps."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all

from .writers import HFLog

SPEC = dict(file="b05_exploding_lr_hf.log", format="text", healthy=False,
            expect=["GradientExploding", "NonFiniteMetric"],
            may_fire=["LossNotImproving", "LossOscillationGrowing", "LossSpike", "LossStuckWhateverLR"],
            onset_step=100, symptom_step=349,
            vars={"num_classes": 10},
            bug="StepLR(step_size=100, gamma=10): LR 1e-3 -> 1e-2 -> 1e-1 -> 1 -> 10; loss and "
                "grad_norm blow up, then grad_norm is nan (HF's nan filter hides the NaN loss)")


def run(path: Path) -> None:
    seed_all(5)
    data = GaussianMixture(10, 32, noise=3.0, seed=5)
    model = Classifier(32, 10, act=torch.nn.GELU)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # HF default optimizer
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100, gamma=10)  # BUG: gamma=0.1
    log = HFLog(path)
    log.text("***** Running training *****")
    log.text("  Num examples = 51,200")
    log.text("  Num Epochs = 1")
    log.text("  Total optimization steps = 800")
    total = 0.0
    steps = 800
    for step in range(1, steps + 1):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # max_grad_norm=1.0 (default)
        opt.step()
        sched.step()
        tr = loss.item()
        if not torch.isfinite(loss):
            # logging_nan_inf_filter=True substitutes the mean of the current logging window,
            # which is empty with logging_steps=1: the logged loss reads 0.0, the NaN is hidden
            tr = 0.0
        total += tr
        # logging_steps=1: record k of the log is global_step k
        log.log({"loss": round(tr, 4), "grad_norm": gn.item(),
                 "learning_rate": sched.get_last_lr()[0], "epoch": round(step / steps, 4)})
    log.log({"train_runtime": 41.2217, "train_samples_per_second": 776.27,
             "train_steps_per_second": 12.13, "train_loss": total / steps, "epoch": 1.0})
    log.close()
