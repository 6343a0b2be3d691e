"""Stand-in for alertd.probe.Probe (same constructor, step() and close()), used when the real
probe cannot be imported. It writes the same metric names: grad_norm/<group>, has_grad/<group>,
trainable/<group>, update_ratio/<group>, lr, labels/*, nonfinite/*. Groups are the model's
top-level children. It syncs freely: it only has to be right on tiny CPU runs."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ProbeLite:
    """probe = ProbeLite(model, opt, path=..., every=1, grad_accum=GA, num_classes=C);
    probe.step(loss=loss, labels=y) after each micro-batch's backward; probe.close()."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, path: str | Path,
                 every: int = 1, grad_accum: int = 1, num_classes: int | None = None) -> None:
        self.f = open(path, "w")
        self.opt, self.every, self.num_classes = optimizer, every, num_classes
        self.groups = {n: list(m.parameters()) for n, m in model.named_children()
                       if any(True for _ in m.parameters())}
        self.cnt: dict[int, int] = {}  # micro-batches accumulated into p.grad since it was last None
        for ps in self.groups.values():
            for p in ps:
                if p.requires_grad:
                    p.register_hook(self._hook(p))
        self.opt_steps, self.written = 0, 0
        self.losses: list[float] = []
        self.labels: list[torch.Tensor] = []
        self.extra: dict[str, float] = {}
        self.pending: dict[str, float] | None = None
        optimizer.register_step_pre_hook(lambda *_: self._pre())
        optimizer.register_step_post_hook(lambda *_: self._post())
        meta: dict[str, Any] = {"grad_accum": grad_accum}
        if num_classes is not None:
            meta["num_classes"] = num_classes
        self._write({"meta": meta})
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
        self._write({"preflight": {n: {"params": sum(p.numel() for p in ps),
                                       "trainable": sum(p.numel() for p in ps if p.requires_grad),
                                       "in_optimizer": sum(p.numel() for p in ps if id(p) in in_opt)}
                                   for n, ps in self.groups.items()}})

    def _hook(self, p: torch.Tensor):
        def hook(g: torch.Tensor) -> None:
            # Runs before accumulation: p.grad is None right after zero_grad(set_to_none=True).
            self.cnt[id(p)] = 1 if p.grad is None else self.cnt.get(id(p), 0) + 1
        return hook

    def _pre(self) -> None:
        rec: dict[str, float] = {}
        self.before = {}
        for n, ps in self.groups.items():
            gs = [p.grad for p in ps if p.grad is not None]
            rec[f"grad_norm/{n}"] = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in gs]))) if gs else 0.0
            rec[f"has_grad/{n}"] = float(sum(self.cnt.get(id(p), 0) for p in ps if p.grad is not None))
            rec[f"trainable/{n}"] = float(sum(1 for p in ps if p.requires_grad))
            rec[f"nonfinite/grad/{n}"] = float(sum(int(not torch.isfinite(g).all()) for g in gs))
            self.before[n] = [p.detach().clone() for p in ps]
        self.pending = rec

    def _post(self) -> None:
        assert self.pending is not None
        for n, ps in self.groups.items():
            d = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(ps, self.before[n])))
            w = math.sqrt(sum(float(b.pow(2).sum()) for b in self.before[n]))
            self.pending[f"update_ratio/{n}"] = d / (w + 1e-12)
        self.pending["lr"] = float(self.opt.param_groups[0]["lr"])
        self.opt_steps += 1

    def step(self, loss: torch.Tensor | float, labels: torch.Tensor | None = None, **metrics: float) -> None:
        """Record one micro-batch; write a record after every `every`-th optimizer step."""
        self.losses.append(float(loss))
        if labels is not None:
            self.labels.append(labels.detach())
        self.extra.update({k: float(v) for k, v in metrics.items()})
        if self.pending is None or self.opt_steps == self.written:
            return
        self.written = self.opt_steps
        rec: dict[str, Any] = {"step": self.opt_steps - 1}
        if (self.opt_steps - 1) % self.every == 0:
            rec["loss"] = sum(self.losses) / len(self.losses)
            rec["nonfinite/loss"] = float(sum(not math.isfinite(x) for x in self.losses))
            rec.update(self.extra)
            rec.update(self.pending)
            if self.labels:
                rec.update(self._label_stats())
            self._write(rec)
        self.losses, self.labels, self.extra, self.pending = [], [], {}, None

    def _label_stats(self) -> dict[str, float]:
        y = torch.cat(self.labels)
        out = {"labels/unique": float(min(int(t.unique().numel()) for t in self.labels)),
               "labels/min": float(y.min()), "labels/max": float(y.max())}
        if self.num_classes is not None:
            out["labels/out_of_range"] = float(((y < 0) | (y >= self.num_classes)).sum())
        return out

    def _write(self, rec: dict[str, Any]) -> None:
        self.f.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self.f.close()


def get_probe():
    """The real alertd Probe when it imports, else this stand-in."""
    try:
        from alertd.probe import Probe  # type: ignore[attr-defined]
        return Probe
    except ImportError:
        return ProbeLite
