"""Classification head left out of the optimizer (and zero-initialised, as timm's jax init does)."""
from pathlib import Path

import torch
import torch.nn.functional as F

from alertd.probe import Probe

from .common import Classifier, GaussianMixture, seed_all

SPEC = dict(file="b01_head_not_in_optimizer.jsonl", format="jsonl", healthy=False,
            expect=["CrossEntropyAtChance", "UnoptimizedParams"],
            may_fire=["LossFlatFromStart", "LossNotImproving", "GradientVanishing", "UpdateRatioNearZero",
                      "GradAccumCoverage"], onset_step=0,
            bug="optimizer built from model.backbone.parameters() only; the zero-init head never moves, "
                "so CE sits at log(10), the backbone gets no gradient, and the head's grad (never "
                "zeroed: opt.zero_grad() only knows the backbone) grows step after step")


def run(path: Path) -> None:
    seed_all(1)
    C = 10
    data = GaussianMixture(C, 32, noise=3.0, seed=1)
    model = Classifier(32, C)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    opt = torch.optim.AdamW(model.backbone.parameters(), lr=1e-3)  # BUG: head missing
    probe = Probe(model, opt, path=path, every=1, grad_accum=1, num_classes=C)
    for step in range(600):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        probe.step(loss=loss, labels=y)
        opt.step()
    probe.close()
