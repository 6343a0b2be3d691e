"""Healthy: a deep tanh MLP with small init on imbalanced classes sits on the 'predict the
prior' plateau (loss ~1.57 = H(prior), not log 10) for ~300 noisy steps, then escapes to ~1.0."""
from pathlib import Path

import torch

from .common import Classifier, GaussianMixture, accuracy, ce_step, seed_all
from .writers import PrintLog

SPEC = dict(file="h02_plateau.log", format="text", healthy=True, expect=[], onset_step=None,
            vars={"num_classes": 10},
            bug="none: a long noisy plateau at the label-prior entropy (steps ~200-550), then "
                "improvement")


def run(path: Path) -> None:
    seed_all(22)
    priors = torch.tensor([0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01])
    data = GaussianMixture(10, 32, noise=3.0, seed=22, priors=priors)
    model = Classifier(32, 10, hidden=64, depth=4, act=torch.nn.Tanh)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.25)  # small init: a saddle the network takes a while to leave
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    log = PrintLog(path)
    log.text("Namespace(arch='mlp4-tanh', batch_size=64, init_scale=0.25, lr=0.005, momentum=0.9)")
    for step in range(1200):
        x, y = data.batch(64)
        loss, gn = ce_step(model, opt, x, y)
        if step % 2 == 0:
            log.write(step, loss=loss.item(), grad_norm=gn, lr=opt.param_groups[0]["lr"])
        if step % 400 == 399:
            log.text(f"epoch {step // 400} done | val_acc {accuracy(model, data):.4f}")
    log.close()
