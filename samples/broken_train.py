"""A small broken training for the `alertd watch` demo: the LR grows until the loss diverges.

    alertd watch --rules deploy/watch_stop.yaml -- python samples/broken_train.py

A 2-layer MLP on a Gaussian mixture (torch, CPU, one thread, seeded). The "scheduler" multiplies
the LR by --lr-growth every step, as a mis-set exponential warm-up does, so the loss falls, then
climbs and becomes inf/NaN. The script does not notice and trains on: only a watcher stops it.
It prints `step N | loss X | lr Y | grad_norm Z` lines, like many plain training loops.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000, help="optimizer steps (default: until stopped)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--lr-growth", type=float, default=1.05, help="LR factor per step (1.0: healthy)")
    ap.add_argument("--sleep", type=float, default=0.005, help="seconds per step, so it runs like a real job")
    ap.add_argument("--ignore-sigint", action="store_true", help="a job that ignores Ctrl-C (for the demo)")
    args = ap.parse_args()
    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    classes, dim = 10, 32
    centers = torch.randn(classes, dim) * 1.5
    model = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, classes))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    print(f"training: {sum(p.numel() for p in model.parameters())} parameters, {classes} classes", flush=True)
    step = 0
    try:
        for step in range(1, args.steps + 1):
            y = torch.randint(0, classes, (64,))
            x = centers[y] + torch.randn(64, dim)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            opt.step()
            for group in opt.param_groups:
                group["lr"] = min(group["lr"] * args.lr_growth, 1e3)  # torch refuses LRs beyond float range
            # .item(): the one host sync per step, for the log line.
            print(f"step {step} | loss {loss.item():.4f} | lr {opt.param_groups[0]['lr']:.3e} "
                  f"| grad_norm {grad_norm.item():.4g}", flush=True)
            time.sleep(args.sleep)
    except KeyboardInterrupt:
        print(f"interrupted at step {step}: saving nothing, exiting", file=sys.stderr, flush=True)
        return 130
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
