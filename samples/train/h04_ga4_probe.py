"""Healthy: gradient accumulation over 4 micro-batches done right, written by the probe:
has_grad/<group> is 4x trainable/<group> at every optimizer step."""
from pathlib import Path

import torch
import torch.nn.functional as F

from alertd.probe import Probe

from .common import Classifier, GaussianMixture, seed_all

SPEC = dict(file="h04_ga4_probe.jsonl", format="jsonl", healthy=True, expect=[], onset_step=None,
            bug="none: zero_grad() after each optimizer step, 4 micro-batches per step")


def run(path: Path) -> None:
    seed_all(104)
    C, GA = 10, 4
    data = GaussianMixture(C, 32, noise=3.0, seed=104)
    model = Classifier(32, C)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    probe = Probe(model, opt, path=path, every=1, grad_accum=GA, num_classes=C)
    for i in range(400 * GA):
        x, y = data.batch(16)
        loss = F.cross_entropy(model(x), y)
        (loss / GA).backward()
        probe.step(loss=loss, labels=y)
        if (i + 1) % GA == 0:
            opt.step()
            opt.zero_grad()
    probe.close()
