"""400-way classification that learns, then from step 300 reads a shard whose label column was
written in a different order (labels no longer match inputs): CE climbs back to log(400) = 5.99."""
from pathlib import Path

import torch

from .common import Classifier, GaussianMixture, ce_step, seed_all
from .writers import PrintLog

SPEC = dict(file="b12_ce_chance_400.log", format="text", healthy=False,
            expect=["CrossEntropyAtChance", "LossSpike"], may_fire=["LossNotImproving", "LossOscillationGrowing"],
            onset_step=300, symptom_step=370,
            vars={"num_classes": 400},
            bug="shard 2 (from step 300) has its label column shuffled relative to the features: "
                "CE returns to 5.99 = log(400) and stays")


def run(path: Path) -> None:
    g = seed_all(12)
    data = GaussianMixture(400, 32, noise=1.3, seed=12)
    model = Classifier(32, 400, hidden=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = PrintLog(path)
    log.text("[data] shard 1: /data/reid/train-00001.parquet (19200 rows)")
    for step in range(1000):
        if step == 300:
            log.text("[data] shard 2: /data/reid/train-00002.parquet (48000 rows)")
        x, y = data.batch(64)
        if step >= 300:  # BUG: shard 2's labels were joined in another row order
            y = y[torch.randperm(64, generator=g)]
        loss, gn = ce_step(model, opt, x, y)
        if step % 2 == 0:
            log.write(step, loss_ce=loss.item(), total_grad_norm=gn, lr=opt.param_groups[0]["lr"])
    log.close()
