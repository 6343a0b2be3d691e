"""Device-side pieces of a record (losses, labels) and the preflight record."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

Value = Tensor | float


def scalar(t: Tensor) -> Tensor:
    """A float32 0-d view of a loss (mean if it is not a scalar)."""
    if t.dim():
        t = t.mean()
    return t if t.dtype == torch.float32 else t.float()


def nonfinite(ts: list[Tensor]) -> Tensor:
    """How many of the 0-d losses are NaN/inf, as a device tensor (old losses folded away)."""
    return (~torch.isfinite(torch.stack([scalar(t) for t in ts]))).sum()


HOST_LABELS = 1024  # up to this many labels per record, stats are made on the host (~8 fewer ops)


class LabelStats:
    """labels/min, max, out_of_range, unique from a few device ops (no torch.unique: it syncs on CUDA)."""

    def __init__(self) -> None:
        # Boundary tensors are cached: building one on a GPU copies from the host.
        self._bounds: dict[tuple[torch.device, int | None], Tensor] = {}

    def queue(self, labels: list[Tensor], num_classes: int | None,
              own: bool = False) -> tuple[list[Tensor], int]:
        """Device vectors for `decode`, and the number of labels (0: nothing queued). With `own`,
        vectors that may be the caller's tensors are copies (their reading may come steps later,
        after a loop that fills one label buffer in place has overwritten it)."""
        flat = [(y.argmax(-1) if y.is_floating_point() and y.dim() > 1 else y).reshape(-1) for y in labels]
        y = flat[0] if len(flat) == 1 else torch.cat([f.to(flat[0].device) for f in flat])
        n = y.numel()
        if n == 0:
            return [], 0
        if n <= HOST_LABELS:
            # Few labels: sent as they are in the record's one transfer, no device op.
            return [y.clone() if own and len(flat) == 1 else y], n
        s = y.long().sort().values
        key = (s.device, num_classes)
        bounds = self._bounds.get(key)
        if bounds is None:
            edges = [0] if num_classes is None else [0, num_classes]
            bounds = self._bounds[key] = torch.tensor(edges, dtype=torch.long, device=s.device)
        ends = s[::n - 1] if n > 1 else s.expand(2)        # [min, max] as a view of the sorted labels
        below = torch.searchsorted(s, bounds)              # labels < 0 and labels < num_classes
        changes = (s[1:] != s[:-1]).sum().reshape(1)       # unique - 1
        return [ends, below, changes], n

    @staticmethod
    def decode(vals: list[float], n: int, num_classes: int | None) -> dict[str, int]:
        """The record's label fields from the host values of `queue`'s vectors."""
        if n <= HOST_LABELS:  # the labels themselves (floats where a transfer stacked them)
            lo, hi = int(min(vals)), int(max(vals))  # min, max and set run in C: no loop here
            top = num_classes if num_classes is not None else hi + 1
            bad = 0 if lo >= 0 and hi < top else sum(1 for v in vals if v < 0 or v >= top)
            return {"labels/min": lo, "labels/max": hi, "labels/out_of_range": bad,
                    "labels/unique": len(set(vals))}
        lo, hi, neg = int(vals[0]), int(vals[1]), int(vals[2])
        above = n - int(vals[3]) if num_classes is not None else 0
        k = 4 if num_classes is not None else 3
        return {"labels/min": lo, "labels/max": hi, "labels/out_of_range": neg + above,
                "labels/unique": int(vals[k]) + 1}


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


def group_metrics(names: list[str], pend: dict[str, Any], sq: list[float]) -> dict[str, Any]:
    """grad_norm, then grad_norm, has_grad, trainable, update_ratio, weight_norm per group,
    from sums of squares per group: grads in sq[:G], updates in sq[G:2G], weights in sq[2G:]
    (update_ratio and weight_norm only when pend["ratio"]: the step measured them)."""
    G = len(names)
    rec: dict[str, Any] = {"grad_norm": math.sqrt(sum(sq[:G]))}
    for g, name in enumerate(names):
        w, d = math.sqrt(sq[2 * G + g]), math.sqrt(sq[G + g])
        rec[f"grad_norm/{name}"] = math.sqrt(sq[g])
        rec[f"has_grad/{name}"] = pend["has"][g]
        rec[f"trainable/{name}"] = pend["trainable"][g]
        if pend["ratio"]:
            rec[f"update_ratio/{name}"] = d / w if w > 0 else (0.0 if d == 0 else math.inf)
            rec[f"weight_norm/{name}"] = w
    return rec
