"""Healthy: the same tiny VAE with a short KL warm-up (beta = min(1, step/50)): kl_raw settles,
z_init/mean stays near 0 and z_init/var near 1."""
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import VAE, kl_per_sample, seed_all, vae_data
from .writers import JsonlLog

SPEC = dict(file="h05_vae.jsonl", format="jsonl", healthy=True, expect=[], onset_step=None,
            bug="none: beta warm-up over 50 steps, then beta = 1")


def run(path: Path) -> None:
    g = seed_all(105)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = JsonlLog(path)
    for step in range(1200):
        x = vae_data(128, g)
        xr, mu, logvar, z = model(x)
        recon = F.mse_loss(xr, x, reduction="none").sum(1).mean()
        kl = kl_per_sample(mu, logvar)
        beta = min(1.0, step / 50)
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
