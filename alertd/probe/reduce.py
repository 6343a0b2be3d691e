"""On-device reductions for the probe, and the single host sync per written record."""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def buckets(tensors: list[Tensor]) -> list[list[int]]:
    """Indices of `tensors` grouped by (device, dtype), the unit of one `_foreach` launch."""
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for k, t in enumerate(tensors):
        by_key[(t.device, t.dtype)].append(k)
    return list(by_key.values())


def norms(tensors: list[Tensor], groups: list[list[int]] | None = None) -> list[Tensor]:
    """Per-tensor L2 norms as float32 0-d tensors on each tensor's device, like clip_grad_norm_:
    one `_foreach_norm` per (device, dtype) bucket (`groups`, cached by the caller), nothing
    leaves the device."""
    if groups is None:
        groups = buckets(tensors)
    if len(groups) == 1:
        return list(torch._foreach_norm(tensors, 2, dtype=torch.float32))
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for ks in groups:
        for k, n in zip(ks, torch._foreach_norm([tensors[k] for k in ks], 2, dtype=torch.float32)):
            out[k] = n
    return out


def read(scalars: list[Tensor], vectors: list[Tensor] = ()) -> list[float]:
    """The 0-d `scalars`, then the elements of the 1-d `vectors`, as host floats, in that order.

    One stack (and cat) per device and ONE copy to the host per device: the host sync of a
    written record. Mixed dtypes are promoted by the stack (float32 for norms, losses and
    label counts below 2**24); nothing is cast to float64, which mps lacks.
    """
    items = [*scalars, *vectors]
    if not items:
        return []
    devices = {t.device for t in items}
    if len(devices) == 1:
        return _flat(scalars, vectors).tolist()  # THE host sync of a written record
    # Model parallel: one transfer per device, then the values back in the caller's order.
    ns = len(scalars)
    by_device: dict[torch.device, list[int]] = defaultdict(list)
    for i, t in enumerate(items):
        by_device[t.device].append(i)
    values: list[list[float]] = [[] for _ in items]
    for idx in by_device.values():
        sc = [i for i in idx if i < ns]
        vec = [i for i in idx if i >= ns]
        host = _flat([items[i] for i in sc], [items[i] for i in vec]).tolist()  # a host sync per device
        pos = 0
        for i in sc:
            values[i], pos = [host[pos]], pos + 1
        for i in vec:
            n = items[i].numel()
            values[i], pos = host[pos:pos + n], pos + n
    return [v for vs in values for v in vs]


def _flat(scalars: list[Tensor], vectors: list[Tensor]) -> Tensor:
    parts = ([torch.stack(scalars)] if scalars else []) + [v.reshape(-1) for v in vectors]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
