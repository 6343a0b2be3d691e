"""A memory-bank auxiliary loss that is configured but never switched on (reference 004):
`use_memory_bank` starts False and no code ever sets it, so loss_aux is logged as 0.0."""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .common import Classifier, GaussianMixture, seed_all
from .writers import FakeClock, MMEngineLog

SPEC = dict(file="b07_aux_never_on_mmengine.log", format="text", healthy=False,
            expect=["AuxLossNeverOn"], may_fire=[], onset_step=0,
            vars={"num_classes": 10},
            bug="memory_bank_warmup_steps=50 is configured but use_memory_bank is never set True: "
                "loss_aux is exactly 0.0 for the whole run")


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = Classifier(32, 10)
        self.use_memory_bank = False
        self.memory_bank_warmup_steps = 50
        self.register_buffer("bank", torch.zeros(128, 64))
        self.training_steps = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.net.backbone(x)
        loss_cls = F.cross_entropy(self.net.head(feat), y)
        self.training_steps += 1
        # BUG: the warm-up check that should set self.use_memory_bank = True is missing
        loss_aux = torch.zeros(())
        if self.use_memory_bank:
            f = F.normalize(feat, dim=1)
            loss_aux = torch.logsumexp(f @ F.normalize(self.bank, dim=1).T, dim=1).mean()
        self.bank = torch.cat([feat.detach(), self.bank])[:128]
        return {"loss_cls": loss_cls, "loss_aux": 0.1 * loss_aux}


def run(path: Path) -> None:
    seed_all(7)
    data = GaussianMixture(10, 32, noise=3.0, seed=7)
    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    clock = FakeClock(0.1234)
    log = MMEngineLog(path, clock, "fgclip_region")
    log.info("Config:\nmodel = dict(type='FGCLIP', use_memory_bank=True, memory_bank_warmup_steps=50)")
    log.info("Checkpoints will be saved to /data/work_dirs/fgclip_region.")
    epochs, n_iter = 4, 250
    for epoch in range(1, epochs + 1):
        for it in range(1, n_iter + 1):
            x, y = data.batch(64)
            losses = model(x, y)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            clock.tick()
            if it % 10 == 0:  # default LoggerHook interval
                left = (epochs - epoch) * n_iter + n_iter - it
                log.train(epoch, it, n_iter, opt.param_groups[0]["lr"], left, 1234,
                          loss=loss.item(), loss_cls=losses["loss_cls"].item(),
                          loss_aux=losses["loss_aux"].item())
        log.info(f"Exp name: fgclip_region_20240101_120000")
        log.info(f"Saving checkpoint at {epoch} epochs")
    log.close()
