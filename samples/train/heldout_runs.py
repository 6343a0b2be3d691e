"""The held-out trainings: one parameterised loop per model kind, the bug (or none) in its code.

`train(cfg, path)` runs one tiny torch training described by `cfg` (family, seed, C, lr, bs,
hidden, steps, onset, every, fmt, ...) and writes its log at `path` through a `Sink`. It returns
the bug's onset step (0-based optimizer step; None for healthy runs), which for some families is
only known once the schedule has run (the step the annealed LR reached its floor).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import VAE, Classifier, GaussianMixture, grad_norm, kl_per_sample, seed_all, vae_data
from .heldout_fmt import Sink


def _opt(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "SGD":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[kind](params, lr=lr)


def _lr_factor(cfg: dict, step: int) -> float:
    """The schedule of the run as a multiplier of the base LR (bugs included)."""
    fam, onset, steps = cfg["family"], cfg["onset"], cfg["steps"]
    if fam == "lr_tiny":
        return 1e-7 if step >= onset else 1.0                      # 1e-3 -> 1e-10
    if fam == "exploding_lr":
        return 10.0 ** ((step - onset) // cfg["k"] + 1) if step >= onset else 1.0  # gamma=10, meant 0.1
    if fam == "oscillation_growing" and step >= onset:
        t = step - onset
        tri = 1 - abs((t % 100) / 50 - 1)                          # triangle, period 100
        return 1 + 4 * tri * cfg["growth"] ** t                    # exp_range gamma > 1 (meant < 1)
    if fam == "h_cosine0":
        w = cfg["warm"]
        if step < w:
            return (step + 1) / w
        return 0.5 * (1 + math.cos(math.pi * (step - w) / (steps - w)))  # cosine to exactly 0
    if fam == "h_stepdecay":
        return 0.1 ** sum(step >= m for m in (int(0.4 * steps), int(0.7 * steps)))
    if fam == "h_chance_start":
        return min(1.0, ((step + 1) / cfg["warm"]) ** 3)           # slow warm-up from ~0
    return 1.0


def classify(cfg: dict, path: Path) -> int | None:
    """A Gaussian-mixture classifier; every classification family lives in this loop."""
    fam, C, onset, steps = cfg["family"], cfg["C"], cfg["onset"], cfg["steps"]
    g = seed_all(cfg["seed"])
    extra = max(2, round(C * 0.065)) if fam == "labels_oor" else 0  # ids past C (reference 001)
    noise = 3.0 if C <= 10 else 1.3
    if fam == "h_plateau":
        priors = torch.tensor([0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01])
        data = GaussianMixture(10, 32, noise=3.0, seed=cfg["seed"], priors=priors)
    else:
        data = GaussianMixture(C + extra, 32, noise=noise, seed=cfg["seed"])
    act = torch.nn.Tanh if fam in ("h_plateau", "oscillation_growing") else torch.nn.ReLU
    model = Classifier(32, C + extra, hidden=cfg["hidden"], depth=4 if fam == "h_plateau" else 2, act=act)
    if fam == "h_plateau":
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.25)  # small init: a saddle the network takes a while to leave
    if cfg.get("zero_head"):
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    if fam == "h_finetune":  # pretrain (not logged), then fine-tune on shifted data at LR 1e-5
        pre = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(300):
            x, y = data.batch(64)
            pre.zero_grad()
            F.cross_entropy(model(x), y).backward()
            pre.step()
        data.centers = data.centers + 1.5 * torch.randn(data.centers.shape, generator=g)  # the new domain
    params = model.backbone.parameters() if fam == "head_missing" else model.parameters()
    opt = _opt(cfg["opt"], params, cfg["lr"])
    base_lr = cfg["lr"]
    total = onset if fam == "lr_annealed_early" else None
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=base_lr, total_steps=total)
             if total else None)  # BUG: sized for the smoke test, not the run
    ga = cfg.get("ga", 1)
    sink = Sink(path, cfg["fmt"], cfg["every"], cfg["seed"], C, cfg.get("meta", False), steps,
                model, opt, grad_accum=ga, opt_name=cfg["opt"])
    floor_step = None
    if fam == "all_frozen" and onset == 0:
        model.requires_grad_(False)  # BUG: meant model.backbone.requires_grad_(False)
    for step in range(steps):
        if fam == "all_frozen" and step == onset and onset > 0:
            model.requires_grad_(False)  # BUG: the "freeze backbone at epoch 2" hook froze all
        if sched is None:
            for pg in opt.param_groups:
                pg["lr"] = base_lr * _lr_factor(cfg, step)
        stats: dict[str, float] = {}
        losses = []
        for m in range(ga):
            if m == 0 or fam == "ga8_zero_grad":  # BUG (ga8): zero_grad on every micro-step
                opt.zero_grad()
            if fam == "one_class" and step >= onset:  # BUG: the sampler groups by class
                cls = int(torch.randint(0, C, (1,), generator=g))
                x, y = data.batch(cfg["bs"], classes=torch.full((cfg["bs"],), cls))
            elif fam == "labels_oor" and step >= onset:
                x, y = data.batch(cfg["bs"])  # BUG: new shard, ids C..C+extra unmapped
            elif fam != "h_plateau":  # uniform classes in [0, C)
                x, y = data.batch(cfg["bs"], classes=torch.randint(0, C, (cfg["bs"],), generator=g))
            else:
                x, y = data.batch(cfg["bs"])
            if fam == "ce_chance_data" and step >= onset:  # BUG: labels joined in another order
                y = y[torch.randperm(len(y), generator=g)]
            if fam == "midrun_nan":
                if step >= onset:
                    x[:, 7] = 0.0  # a shard with a constant column
                x = (x - x.mean(0)) / x.std(0)  # BUG: no eps
            out = model(x)
            loss = F.cross_entropy(out, y)
            aux = torch.zeros(())  # BUG (aux_never_on): the flag that enables it is never set
            if fam == "h_aux_on" and step >= cfg["aux_on"]:
                aux = 0.01 * out.pow(2).mean()  # a logit-norm penalty, switched on by its schedule
            total_loss = loss + aux
            if total_loss.requires_grad:  # the "no targets" guard that hides a freeze
                (total_loss / ga).backward()
            losses.append(total_loss.item())
            extras = {"loss_aux": aux} if fam in ("aux_never_on", "h_aux_on") else {}
            sink.micro(total_loss, y, **extras)
            stats["label_unique"] = float(y.unique().numel())
            stats["label_max"] = float(y.max())
            stats["loss_aux"] = float(aux)
        if cfg.get("clip"):
            gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"]))
        else:
            gn = grad_norm(model.parameters())
        opt.step()
        if sched is not None and sched.last_epoch < total - 1:  # guard instead of a fix
            sched.step()
        lr = opt.param_groups[0]["lr"]
        if fam == "lr_annealed_early" and floor_step is None and sched.last_epoch >= total - 1:
            floor_step = step  # the schedule is spent: the LR sits at its floor from here
        rec = {"loss": sum(losses) / ga, "lr": lr}
        if cfg["fmt"] not in ("tqdm", "csv"):
            rec["grad_norm"] = gn
        if fam in ("aux_never_on", "h_aux_on"):
            rec = {"loss": rec["loss"], "loss_cls": rec["loss"] - stats["loss_aux"],
                   "loss_aux": stats["loss_aux"], **{k: v for k, v in rec.items() if k != "loss"}}
        if cfg["fmt"] in ("jsonl", "print") and cfg.get("label_stats"):
            rec["label_unique"], rec["label_max"] = stats["label_unique"], stats["label_max"]
        sink.log(step, rec)
    sink.close()
    if fam == "lr_annealed_early":
        return floor_step
    return None if cfg["healthy"] else onset


def vae(cfg: dict, path: Path) -> int | None:
    """The tiny VAE: beta decaying (or zeroed mid-run) instead of warming up, or done right."""
    fam, onset, steps = cfg["family"], cfg["onset"], cfg["steps"]
    g = seed_all(cfg["seed"])
    model = VAE(hidden=cfg["hidden"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sink = Sink(path, cfg["fmt"], cfg["every"], cfg["seed"], None, False, steps, model, opt)
    warm = cfg.get("warm", 50)
    for step in range(steps):
        if fam == "h_vae":
            beta = min(1.0, step / warm)
        elif onset == 0:
            beta = 0.99 ** step  # BUG: meant 1 - 0.99 ** step
        else:
            beta = min(1.0, step / warm) if step < onset else 0.0  # BUG: the resumed schedule zeroes beta
        x = vae_data(cfg["bs"], g)
        xr, mu, logvar, z = model(x)
        recon = F.mse_loss(xr, x, reduction="none").sum(1).mean()
        kl = kl_per_sample(mu, logvar)
        loss = recon + beta * kl
        opt.zero_grad()
        loss.backward()
        zvar, zmean = z.var(0).mean(), z.mean()
        sink.micro(loss, None, loss_recon=recon, kl_raw=kl, z_var=zvar, z_mean=zmean)
        opt.step()
        sink.log(step, {"loss": loss.item(), "loss_recon": recon.item(), "loss_kl": (beta * kl).item(),
                        "kl_raw": kl.item(), "z_var": zvar.item(), "z_mean": zmean.item(),
                        "lr": opt.param_groups[0]["lr"]})
    sink.close()
    return None if cfg["healthy"] else onset


def train(cfg: dict, path: Path) -> int | None:
    """Run one held-out training; returns the bug's onset step (None when healthy)."""
    if cfg["family"] in ("vae_kl_rising", "h_vae"):
        return vae(cfg, path)
    return classify(cfg, path)
