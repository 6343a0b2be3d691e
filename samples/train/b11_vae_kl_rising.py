"""A VAE whose KL weight decays instead of warming up: beta = 0.99**step (meant 1 - 0.99**step).
With the prior's pull gone, kl_raw climbs for hundreds of steps and z_init/var leaves [0.3, 1.5]."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import VAE, kl_per_sample, seed_all, vae_data
from .writers import JsonlLog

SPEC = dict(file="b11_vae_kl_rising.jsonl", format="jsonl", healthy=False,
            expect=["KLRising", "LatentVarianceOff"], may_fire=["LatentMeanOff", "LossNotImproving"],
            onset_step=0, symptom_step=20,
            bug="beta = 0.99 ** step (inverted warm-up): the KL term vanishes, kl_raw rises for "
                "hundreds of steps and the latent variance grows past 1.5")


def beta_at(step: int) -> float:
    return 0.99 ** step  # BUG: meant 1 - 0.99 ** step


def run(path: Path) -> None:
    g = seed_all(11)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = JsonlLog(path)
    for step in range(1200):
        x = vae_data(128, g)
        xr, mu, logvar, z = model(x)
        recon = F.mse_loss(xr, x, reduction="none").sum(1).mean()
        kl = kl_per_sample(mu, logvar)
        beta = beta_at(step)
        loss = recon + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 2 == 0:
            log.write({"step": step, "loss": loss.item(), "loss_recon": recon.item(),
                       "loss_kl": (beta * kl).item(), "kl_raw": kl.item(), "beta": beta,
                       "z_init/mean": z.mean().item(), "z_init/var": z.var(0).mean().item(),
                       "lr": opt.param_groups[0]["lr"]})
    log.close()
