"""Every model parameter frozen: `model.requires_grad_(False)` meant for the backbone only.
Nothing crashes: the loop skips backward when the loss has no graph (a guard added for batches
without targets), and optimizer.step() skips parameters without grads."""
from pathlib import Path

import torch
import torch.nn.functional as F

from alertd.probe import Probe

from .common import Classifier, GaussianMixture, seed_all

SPEC = dict(file="b04_all_frozen.jsonl", format="jsonl", healthy=False,
            expect=["NothingTrainable"],
            may_fire=["LossFlatFromStart", "LossNotImproving", "CrossEntropyAtChance",
                      "UpdateRatioNearZero", "GradientVanishing"], onset_step=0,
            bug="model.requires_grad_(False) instead of model.backbone.requires_grad_(False): "
                "trainable/* is 0 for every group, backward is skipped, the loss never moves")


def run(path: Path) -> None:
    seed_all(4)
    C = 10
    data = GaussianMixture(C, 32, noise=3.0, seed=4)
    model = Classifier(32, C)
    model.requires_grad_(False)  # BUG: meant model.backbone.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe = Probe(model, opt, path=path, every=1, grad_accum=1, num_classes=C)
    for step in range(600):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        if loss.requires_grad:  # "skip batches with no targets" guard: hides the freeze
            loss.backward()
        probe.step(loss=loss, labels=y)
        opt.step()
    probe.close()
