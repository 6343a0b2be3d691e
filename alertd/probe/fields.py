"""Device-side pieces of a record (losses, labels) and the preflight record."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

Value = Tensor | float
Named = list[tuple[list[str], Tensor]]


def scalar(t: Tensor) -> Tensor:
    """A float32 0-d view of a loss (mean if it is not a scalar)."""
    return (t if t.dim() == 0 else t.mean()).float()


def nonfinite(ts: list[Tensor]) -> Tensor:
    """How many of the losses are NaN/inf, as a device tensor."""
    return (~torch.isfinite(torch.stack([scalar(t) for t in ts]))).sum()


def queue_nonfinite(ts: list[Tensor], name: str, named: Named) -> None:
    """Queue the count of non-finite scalars under `name`, one partial count per device."""
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in ts:
        by_device.setdefault(t.device, []).append(t)
    named.extend(([name], nonfinite(part)) for part in by_device.values())


def queue_sum(values: list[Value], name: str, named: Named) -> float:
    """Queue the sum of the tensor values under `name`; return the sum of the float values."""
    ts = [v for v in values if isinstance(v, Tensor)]
    if ts:
        named.append(([name], torch.stack([scalar(t) for t in ts]).sum()))
    return sum(v for v in values if not isinstance(v, Tensor))


def queue_labels(labels: list[Tensor], num_classes: int | None, named: Named) -> None:
    """Queue labels/min, max, out_of_range and unique-1 (no torch.unique: it syncs on CUDA)."""
    flat = [(y.argmax(-1) if y.is_floating_point() and y.dim() > 1 else y).reshape(-1) for y in labels]
    y = (flat[0] if len(flat) == 1 else torch.cat([f.to(flat[0].device) for f in flat])).long()
    if y.numel() == 0:
        return
    s = y.sort().values
    bad = (s < 0) if num_classes is None else (s < 0) | (s >= num_classes)
    named.append((["labels/min", "labels/max"], s[[0, -1]]))
    named.append((["labels/out_of_range"], bad.sum()))
    named.append((["labels/unique"], (s[1:] != s[:-1]).sum()))  # +1 on the host


def preflight(step: int, names: list[str], pend: dict[str, Any], loss: float | None,
              num_classes: int | None) -> dict[str, Any]:
    """The one-off record of set-up mistakes seen at the first measured step."""
    has, trainable, unopt = pend["has"], pend["trainable"], pend["unopt"]
    no_grad = [n for g, n in enumerate(names) if trainable[g] > 0 and has[g] == 0]
    rec: dict[str, Any] = {"step": step, "event": "preflight",
                           "preflight/unoptimized_params": sum(unopt),
                           "preflight/trainable_params": sum(trainable),
                           "preflight/optimized_params": sum(trainable) - sum(unopt),
                           "preflight/no_grad_groups": len(no_grad)}
    for g, name in enumerate(names):
        if unopt[g]:
            rec[f"preflight/unoptimized/{name}"] = unopt[g]
    for name in no_grad:
        rec[f"preflight/no_grad/{name}"] = 1
    if loss is not None:
        rec["preflight/initial_loss"] = loss
    if num_classes and num_classes > 1:
        chance = math.log(num_classes)
        rec["preflight/chance_loss"] = chance
        if loss is not None:
            rec["preflight/loss_vs_chance"] = loss / chance
    return rec


def group_metrics(names: list[str], pend: dict[str, Any], host: dict[str, float]) -> dict[str, Any]:
    """grad_norm, then grad_norm, has_grad, trainable, update_ratio, weight_norm per group."""
    G = len(names)
    sq = [host.get(f"sq/{s}", 0.0) for s in range(3 * G)]  # grads, deltas, weights
    rec: dict[str, Any] = {"grad_norm": math.sqrt(sum(sq[:G]))}
    for g, name in enumerate(names):
        w, d = math.sqrt(sq[2 * G + g]), math.sqrt(sq[G + g])
        rec[f"grad_norm/{name}"] = math.sqrt(sq[g])
        rec[f"has_grad/{name}"] = pend["has"][g]
        rec[f"trainable/{name}"] = pend["trainable"][g]
        rec[f"update_ratio/{name}"] = d / w if w > 0 else (0.0 if d == 0 else math.inf)
        rec[f"weight_norm/{name}"] = w
    return rec
