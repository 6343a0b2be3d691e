"""Gradient accumulation over 8 micro-batches with optimizer.zero_grad() on every micro-step:
each update sees one micro-batch. The loss still falls, only has_grad/trainable shows it."""
from pathlib import Path

import torch
import torch.nn.functional as F

from alertd.probe import Probe

from .common import Classifier, GaussianMixture, seed_all

SPEC = dict(file="b06_zero_grad_ga8.jsonl", format="jsonl", healthy=False,
            expect=["GradAccumCoverage"], may_fire=[], onset_step=0,
            bug="zero_grad() at the top of every micro-step under grad_accum=8: has_grad/<group> "
                "equals trainable/<group> (ratio 1) instead of 8x")


def run(path: Path) -> None:
    seed_all(6)
    C, GA = 10, 8
    data = GaussianMixture(C, 32, noise=3.0, seed=6)
    model = Classifier(32, C)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    probe = Probe(model, opt, path=path, every=1, grad_accum=GA, num_classes=C)
    for i in range(400 * GA):
        x, y = data.batch(16)
        opt.zero_grad()  # BUG: belongs after opt.step(), inside the if below
        loss = F.cross_entropy(model(x), y)
        (loss / GA).backward()
        probe.step(loss=loss, labels=y)
        if (i + 1) % GA == 0:
            opt.step()
    probe.close()
