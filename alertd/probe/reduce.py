"""On-device reductions for the probe, and the single host sync per written record."""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def norms(tensors: list[Tensor]) -> list[Tensor]:
    """Per-tensor L2 norms as float32 on each tensor's device, like clip_grad_norm_:
    one `_foreach_norm` per (device, dtype) bucket, nothing leaves the device."""
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for k, t in enumerate(tensors):
        buckets[(t.device, t.dtype)].append(k)
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for ks in buckets.values():
        for k, n in zip(ks, torch._foreach_norm([tensors[k] for k in ks], 2, dtype=torch.float32)):
            out[k] = n
    return out


class SlotSums:
    """Sums of squares of scalars into numbered slots: one stack and one index_add per device."""

    def __init__(self) -> None:
        # Index tensors are cached: building one on a GPU copies from the host (a sync).
        self._index: dict[tuple[torch.device, tuple[int, ...]], Tensor] = {}

    def __call__(self, values: list[Tensor], slots: list[int], n: int) -> list[Tensor]:
        """One float32 vector of length n per device; slot s holds the sum of v**2 over slots[k] == s."""
        by_device: dict[torch.device, list[int]] = defaultdict(list)
        for k, v in enumerate(values):
            by_device[v.device].append(k)
        out = []
        for device, ks in by_device.items():
            key = (device, tuple(slots[k] for k in ks))
            index = self._index.get(key)
            if index is None:
                index = self._index[key] = torch.tensor(key[1], device=device)
            sq = torch.stack([values[k] for k in ks]).square()
            out.append(torch.zeros(n, device=device).index_add_(0, index, sq))
        return out


def read(named: list[tuple[list[str], Tensor]]) -> dict[str, float]:
    """Copy tensors (flattened, one name per element) to the host in one transfer per device.

    Elements that share a name are summed (partial sums from several devices).
    """
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, (_, t) in enumerate(named):
        by_key[(t.device, t.dtype)].append(i)
    by_device: dict[torch.device, list[tuple[list[int], Tensor]]] = defaultdict(list)
    for (device, _), idx in by_key.items():
        # One cat per dtype, then one cast: a few launches however many values there are.
        dtype = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        flat = torch.cat([named[i][1].reshape(-1) for i in idx]).to(dtype)
        by_device[device].append((idx, flat))
    values: dict[str, float] = {}
    for parts in by_device.values():
        flat = torch.cat([f for _, f in parts]) if len(parts) > 1 else parts[0][1]
        # THE host sync of a written record (one per device the values live on).
        host = flat.tolist()
        names = [name for idx, _ in parts for i in idx for name in named[i][0]]
        for name, v in zip(names, host):
            values[name] = values.get(name, 0.0) + v
    return values
