"""On-device reductions for the probe, and the single host sync per written record."""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def group_sq_norms(tensors: list[Tensor], groups: list[int],
                   out: list[tuple[str, Tensor]], prefix: str) -> Tensor | None:
    """Append (f"{prefix}{g}", sum of squared L2 norms of group g's tensors) per device/dtype bucket.

    Like clip_grad_norm_: one `_foreach_norm` per (device, dtype) bucket, nothing leaves the
    device. Returns the count of tensors with a non-finite norm (a device tensor) or None.
    """
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for k, t in enumerate(tensors):
        buckets[(t.device, t.dtype)].append(k)
    nonfinite: Tensor | None = None
    for ks in buckets.values():
        ks.sort(key=lambda k: groups[k])  # contiguous slice per group: views, no index tensor
        norms = torch.stack(torch._foreach_norm([tensors[k] for k in ks], 2, dtype=torch.float32))
        bad = (~torch.isfinite(norms)).sum()
        nonfinite = bad if nonfinite is None else nonfinite + bad.to(nonfinite.device)
        sq = norms.square()
        start = 0
        while start < len(ks):
            g = groups[ks[start]]
            end = start
            while end < len(ks) and groups[ks[end]] == g:
                end += 1
            out.append((f"{prefix}{g}", sq[start:end].sum()))
            start = end
    return nonfinite


def read(named: list[tuple[str, Tensor]]) -> dict[str, float]:
    """Copy device scalars to the host in one transfer per device; values with one name are summed."""
    by_device: dict[torch.device, list[int]] = defaultdict(list)
    for i, (_, t) in enumerate(named):
        by_device[t.device].append(i)
    values: dict[str, float] = {}
    for device, idx in by_device.items():
        dtype = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        stacked = torch.stack([named[i][1].detach().reshape(()).to(dtype) for i in idx])
        # THE host sync of a written record (one per device the values live on).
        host = stacked.tolist()
        for i, v in zip(idx, host):
            name = named[i][0]
            values[name] = values.get(name, 0.0) + v
    return values
