"""Probe overhead: step time of small models with and without alertd's probe.

Variants, interleaved round by round (the order rotates) so machine drift hits all alike:
  base      plain training step (forward, backward, AdamW step, zero_grad)
  control   the same plain step again: its ratio to base shows the measurement noise
  every=10  Probe(every=10), probe.step(loss=..., labels=...) per step (update ratio on each record)
  every=1   Probe(every=1): grad norms, has_grad, lr, labels, non-finite counts every step; the
            update ratio and weight norms every 10th (default ratio_every = max(every, 10))
  naive     reference 003's hook: per parameter, `acc += g.pow(2).sum().item()` (grad norm only)
Times are the process's CPU time on the CPU (other processes on a shared machine do not count;
cache and memory-bandwidth contention still do), wall time with --device cuda.
Each round times one chunk of 10 steps per variant (a multiple of 10: every=10's written step
is in every chunk, not hidden by a median); a ratio is a chunk's time over base's chunk in the
same round; the figure is the median ratio over rounds. Targets (issue): every=10 <= 1.01x,
every=1 <= 1.05x, both below naive.
Run: PYTHONPATH=. python bench/probe_overhead.py [--rounds 15] [--threads 1] [--device cuda]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from torch import nn

from alertd.probe import Probe

CHUNK = 10
KINDS = ["base", "control", "every=10", "every=1", "naive"]
TARGETS = {"every=10": 1.01, "every=1": 1.05}


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64))
        self.head = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Transformer(nn.Module):
    def __init__(self, vocab: int = 1000, d: int = 256, layers: int = 4, seq: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(seq, d))
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x) + self.pos).mean(1))


def cases(device: str):
    """(name, description, model, batch maker) for the three small models."""
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                        nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    yield "mlp", "784-1024x3-10, batch 256", mlp, lambda: torch.randn(256, 784, device=device)
    yield "cnn", "3 conv blocks, 32x32, batch 64", CNN(), lambda: torch.randn(64, 3, 32, 32, device=device)
    yield ("transformer", "d=256, 4 layers, seq 128, batch 2", Transformer(),
           lambda: torch.randint(0, 1000, (2, 128), device=device))


def naive_hooks(model: nn.Module) -> None:
    """Reference 003's per-parameter hook: a host sync (.item()) per parameter per backward."""
    acc = {"sq": 0.0, "cnt": 0}

    def hook(g: torch.Tensor) -> None:
        acc["sq"] += float(g.detach().float().pow(2).sum().item())
        acc["cnt"] += 1
    for p in model.parameters():
        p.register_hook(hook)


def make_variant(kind: str, proto: nn.Module, device: str, tmp: str):
    model = copy.deepcopy(proto).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    probe = None
    if kind.startswith("every="):
        probe = Probe(model, opt, path=f"{tmp}/{kind}.jsonl", every=int(kind[6:]), num_classes=10)
    elif kind == "naive":
        naive_hooks(model)
    return model, opt, probe


def run_chunk(model, opt, probe, batch, device: str) -> float:
    """Seconds (CPU time on the CPU, wall time on CUDA) for CHUNK training steps."""
    xs = [batch() for _ in range(CHUNK)]  # inputs made outside the timed loop
    ys = [torch.randint(0, 10, (x.shape[0],), device=device) for x in xs]
    clock = time.perf_counter if device == "cuda" else time.process_time
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = clock()
    for x, y in zip(xs, ys):
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if probe is not None:
            probe.step(loss=loss, labels=y)
        opt.step()
        opt.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    return clock() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: less noise)")
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds of 10 steps per variant")
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args()
    device = args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"rounds={args.rounds}x{CHUNK} steps; median ratio to base in the same round")
    print(f"{'model':<12} {'params':>7} {'base ms':>8} " + " ".join(f"{k:>9}" for k in KINDS[1:]) + "  targets")
    with tempfile.TemporaryDirectory() as tmp:
        for name, desc, proto, batch in cases(device):
            if args.only and name not in args.only.split(","):
                continue
            variants = {k: make_variant(k, proto, device, tmp) for k in KINDS}
            for k in KINDS:  # warm-up, not timed
                run_chunk(*variants[k], batch, device)
            ratios: dict[str, list[float]] = {k: [] for k in KINDS[1:]}
            base: list[float] = []
            for r in range(args.rounds):
                order = KINDS[r % len(KINDS):] + KINDS[:r % len(KINDS)]  # rotate: no fixed position
                t = {k: run_chunk(*variants[k], batch, device) for k in order}
                base.append(t["base"] / CHUNK)
                for k in KINDS[1:]:
                    ratios[k].append(t[k] / t["base"])
            med = {k: statistics.median(v) for k, v in ratios.items()}
            ok = [f"{k} {'met' if med[k] <= lim and med[k] < med['naive'] else 'MISSED'}"
                  for k, lim in TARGETS.items()]
            n = sum(p.numel() for p in proto.parameters())
            print(f"{name:<12} {n / 1e6:>6.2f}M {statistics.median(base) * 1e3:>8.2f} "
                  + " ".join(f"{med[k]:>8.3f}x" for k in KINDS[1:]) + "  " + ", ".join(ok))
            print(f"{'':<12} ({desc}; {len(list(proto.parameters()))} parameter tensors)")
            for _, _, p in variants.values():
                if p is not None:
                    p.close()


if __name__ == "__main__":
    main()
