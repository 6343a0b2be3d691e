"""Every model parameter frozen: `model.requires_grad_(False)` meant for the backbone only.
Only a learnable logit scale outside the model trains, so nothing crashes."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Classifier, GaussianMixture, seed_all
from .probe_lite import get_probe

SPEC = dict(file="b04_all_frozen.jsonl", format="jsonl", healthy=False,
            expect=["NothingTrainable"],
            may_fire=["LossNotImproving", "CrossEntropyAtChance", "UpdateRatioNearZero",
                      "GradientVanishing"], onset_step=0,
            bug="model.requires_grad_(False) instead of model.backbone.requires_grad_(False): "
                "trainable/* is 0 for every group; only an external logit_scale learns")


def run(path: Path) -> None:
    seed_all(4)
    C = 10
    data = GaussianMixture(C, 32, noise=3.0, seed=4)
    model = Classifier(32, C)
    model.requires_grad_(False)  # BUG: meant model.backbone.requires_grad_(False)
    logit_scale = torch.nn.Parameter(torch.zeros(()))
    params = [p for p in model.parameters() if p.requires_grad] + [logit_scale]
    opt = torch.optim.Adam(params, lr=1e-3)
    probe = get_probe()(model, opt, path=path, every=1, grad_accum=1, num_classes=C)
    for step in range(600):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x) * logit_scale.exp(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        probe.step(loss=loss, labels=y, logit_scale=logit_scale.item())
    probe.close()
