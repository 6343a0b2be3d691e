"""Learning rate 1e-10 (a config value in the wrong unit): nothing moves."""
from pathlib import Path

import torch

from .common import Classifier, GaussianMixture, accuracy, ce_step, seed_all
from .writers import PrintLog

SPEC = dict(file="b02_lr_1e-10.log", format="text", healthy=False,
            expect=["LRCollapsed", "LossFlatFromStart"],
            may_fire=["LossNotImproving", "CrossEntropyAtChance"], onset_step=0,
            vars={"num_classes": 10},
            bug="lr: 1e-10 in the config; loss stays where initialisation put it")


def run(path: Path) -> None:
    seed_all(2)
    data = GaussianMixture(10, 32, noise=3.0, seed=2)
    model = Classifier(32, 10)
    lr = 1e-10  # BUG: meant 1e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = PrintLog(path)
    log.text("Namespace(batch_size=64, dim=32, epochs=3, lr=1e-10, num_classes=10, seed=2)")
    log.text("model params: 7178")
    for step in range(900):
        x, y = data.batch(64)
        loss, gn = ce_step(model, opt, x, y)
        if step % 2 == 0:
            log.write(step, loss=loss.item(), grad_norm=gn, lr=opt.param_groups[0]["lr"])
        if step % 300 == 299:
            log.text(f"epoch {step // 300} done | val_acc {accuracy(model, data):.4f}")
    log.close()
