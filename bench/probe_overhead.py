"""Probe overhead: step time of small models with and without alertd's probe.

Variants, interleaved chunk by chunk so machine drift hits all alike:
  base      plain training step (forward, backward, optimizer step, zero_grad)
  every=10  Probe(every=10) and probe.step(loss=..., labels=...) per step
  every=1   Probe(every=1)
  naive     reference 003's hook: per parameter, `acc += g.pow(2).sum().item()`
The figure is the median over chunks of the mean step time in a chunk; a chunk is 20 steps
(a multiple of 10), so the written steps of every=10 are counted, not hidden by a median.
Run: PYTHONPATH=. python bench/probe_overhead.py [--device cuda] [--threads 1] [--chunks 15]
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

CHUNK = 20


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


def cases(device: str):
    """(name, model, batch maker) for the three small models."""
    mlp = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    yield "mlp", mlp, lambda: torch.randn(64, 128, device=device)
    yield "cnn", TinyCNN(), lambda: torch.randn(16, 3, 32, 32, device=device)
    yield "transformer", TinyTransformer(), lambda: torch.randint(0, 100, (16, 32), device=device)


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
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    probe = None
    if kind.startswith("every="):
        probe = Probe(model, opt, path=f"{tmp}/{kind}.jsonl", every=int(kind[6:]), num_classes=10)
    elif kind == "naive":
        naive_hooks(model)
    return model, opt, probe


def run_chunk(model, opt, probe, batch, steps: int, device: str) -> float:
    """Mean seconds per step over `steps` training steps."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = batch(), torch.randint(0, 10, (batch().shape[0],), device=device)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if probe is not None:
            probe.step(loss=loss, labels=y)
        opt.step()
        opt.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: less noise)")
    ap.add_argument("--chunks", type=int, default=15, help="timed chunks of 20 steps per variant")
    args = ap.parse_args()
    device = args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kinds = ["base", "every=10", "every=1", "naive"]
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"chunks={args.chunks}x{CHUNK} steps")
    print(f"{'model':<12} {'base ms':>8} " + " ".join(f"{k:>9}" for k in kinds[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        for name, proto, batch in cases(device):
            variants = {k: make_variant(k, proto, device, tmp) for k in kinds}
            for k, (m, o, p) in variants.items():  # warm-up, not timed
                run_chunk(m, o, p, batch, CHUNK, device)
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for c in range(args.chunks):
                order = kinds[c % len(kinds):] + kinds[:c % len(kinds)]  # rotate: no fixed position
                for k in order:
                    times[k].append(run_chunk(*variants[k], batch, CHUNK, device))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{name:<12} {med['base'] * 1e3:>8.3f} "
                  + " ".join(f"{med[k] / med['base']:>8.3f}x" for k in kinds[1:]))
            for _, _, p in variants.values():
                if p is not None:
                    p.close()


if __name__ == "__main__":
    main()
