"""On-device reductions for the probe, and the single transfer to the host per write of records.

Everything here returns device tensors (0-d or 1-d) for `read`, which moves them to the host in
one transfer; the `decode` methods turn the host values back into per-tensor floats.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import Tensor

DOT_MIN = 1 << 16  # CPU float32 tensors from this size: torch.dot (BLAS) instead of _foreach_norm
CHUNK = 1 << 16   # elements per piece of the fused update reduction on the CPU (256 KB, stays in L2)


def buckets(tensors: list[Tensor]) -> list[list[int]]:
    """Indices of `tensors` grouped by (device, dtype), the unit of one `_foreach` launch."""
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for k, t in enumerate(tensors):
        by_key[(t.device, t.dtype)].append(k)
    return list(by_key.values())


def _dot_ok(t: Tensor) -> bool:
    return (t.device.type == "cpu" and t.dtype == torch.float32 and t.numel() >= DOT_MIN
            and t.is_contiguous())


class SumSq:
    """Sums of squares of a fixed list of tensors (parameters or their grads), planned once.

    On the CPU, `_foreach_norm` is a loop of per-tensor norms; for float32 tensors of DOT_MIN
    elements or more `torch.dot(x, x)` reads the data as fast and is twice as fast once the data
    is in cache (and accumulates more precisely); the others, and every tensor on an
    accelerator, go through one `_foreach_norm` per (device, dtype).
    """

    def __init__(self, tensors: list[Tensor]) -> None:
        self.n = len(tensors)
        self.dot = [k for k, t in enumerate(tensors) if _dot_ok(t)]
        dot = set(self.dot)
        rest = [k for k in range(self.n) if k not in dot]
        self.foreach = [[rest[i] for i in b] for b in buckets([tensors[k] for k in rest])]
        self._order = [*self.dot, *(k for b in self.foreach for k in b)]

    def items(self, tensors: list[Tensor]) -> list[Tensor]:
        """0-d device tensors: squares' sums for the dot part, norms for the rest (see decode)."""
        out = []
        for k in self.dot:
            x = tensors[k].reshape(-1)  # a view (a grad has its parameter's layout)
            out.append(torch.dot(x, x))
        for b in self.foreach:
            out.extend(torch._foreach_norm([tensors[k] for k in b], 2, dtype=torch.float32))
        return out

    def decode(self, vals: Iterator[float]) -> list[float]:
        """Per-tensor sums of squares, in the tensors' order, from the host values of `items`."""
        out = [0.0] * self.n
        nd = len(self.dot)
        for i, k in enumerate(self._order):
            v = next(vals)
            out[k] = v if i < nd else v * v
        return out


class UpdateSumSq:
    """Per tensor, sums of squares of (after - before) and of after: the update ratio's parts.

    On the CPU, float32 tensors of CHUNK elements or more are reduced in pieces of CHUNK
    elements: the difference goes to a scratch buffer that stays in cache and two dots read
    it and `after`, so the parameters and their copy are each read once and nothing is written
    to memory. The pieces' views (and the dots' outputs, one vector) are made once and kept
    while the parameters and the copy keep their storage: three calls per piece. The rest
    (smaller tensors, whose per-op cost outweighs their data, and accelerators, where the
    foreach kernels are fused) subtract in place into `before`, then take `_foreach_norm`s of
    the difference and of `after`.
    """

    def __init__(self, after: list[Tensor]) -> None:
        self.n = len(after)
        self.chunked = [k for k, t in enumerate(after) if _dot_ok(t) and t.numel() >= CHUNK]
        chunked = set(self.chunked)
        rest = [k for k in range(self.n) if k not in chunked]
        self.foreach = [[rest[i] for i in b] for b in buckets([after[k] for k in rest])]
        self._pieces = [-(-after[k].numel() // CHUNK) for k in self.chunked]
        self._key: tuple[int, ...] = ()
        self._views: list[tuple[Tensor, ...]] = []
        self._out: Tensor | None = None

    def _chunk_views(self, after: list[Tensor], before: list[Tensor]) -> list[tuple[Tensor, ...]]:
        key = tuple(t[k].data_ptr() for k in self.chunked for t in (after, before))
        if key != self._key:  # first use, or a parameter or the copy was given new storage
            # On the parameters' device (the CPU), whatever torch's default device is.
            dev = after[self.chunked[0]].device
            scratch = torch.empty(CHUNK, dtype=torch.float32, device=dev)
            self._out = out = torch.empty(2 * sum(self._pieces), dtype=torch.float32, device=dev)
            views, j = [], 0
            for k in self.chunked:
                a, b = after[k].detach().view(-1), before[k].view(-1)
                for i in range(0, a.numel(), CHUNK):
                    ai = a[i:i + CHUNK]
                    views.append((b[i:i + CHUNK], ai, scratch[:ai.numel()], out[j], out[j + 1]))
                    j += 2
            self._views, self._key = views, key
        return self._views

    def items(self, after: list[Tensor], before: list[Tensor]) -> list[Tensor]:
        """Device tensors for `read`; `before` may be overwritten (with before - after)."""
        out: list[Tensor] = []
        if self.chunked:
            for b, a, d, dd, aa in self._chunk_views(after, before):
                torch.sub(b, a, out=d)
                torch.dot(d, d, out=dd)
                torch.dot(a, a, out=aa)
            out.append(self._out)  # (update, weight) sums of squares per piece, interleaved
        for ks in self.foreach:
            bs, as_ = [before[k] for k in ks], [after[k] for k in ks]
            torch._foreach_sub_(bs, as_)  # before - after
            out.extend(torch._foreach_norm(bs, 2, dtype=torch.float32))
            out.extend(torch._foreach_norm(as_, 2, dtype=torch.float32))
        return out

    def decode(self, vals: Iterator[float]) -> tuple[list[float], list[float]]:
        """(sums of squares of the update, of the weights) per tensor, in the tensors' order."""
        d, w = [0.0] * self.n, [0.0] * self.n
        for k, pieces in zip(self.chunked, self._pieces):
            for _ in range(pieces):
                d[k] += next(vals)
                w[k] += next(vals)
        for ks in self.foreach:
            norms = [next(vals) for _ in range(2 * len(ks))]
            for i, k in enumerate(ks):
                d[k], w[k] = norms[i] ** 2, norms[len(ks) + i] ** 2
        return d, w


def read(scalars: list[Tensor], vectors: list[Tensor] = ()) -> list[float]:
    """The elements of `scalars` (0-d, or 1-d where a reduction gives a vector), then of the
    1-d `vectors`, as host floats, in that order.

    One stack (and cat) per device and ONE copy to the host per device: the host sync of
    records read at once (copy_to_host queues the same copy without a sync). Mixed dtypes are
    promoted by the stack (float32 for norms, losses and label counts below 2**24); nothing is
    cast to float64, which mps lacks. On the CPU the values are read tensor by tensor (integer
    tensors give ints).
    """
    items = [*scalars, *vectors]
    if not items:
        return []
    devices = {t.device for t in items}
    if len(devices) == 1:
        if items[0].device.type == "cpu":  # nothing to transfer: read each tensor in place,
            out: list[float] = []          # without a stack and a cat (~16 calls fewer)
            for t in items:
                if t.dim():
                    out.extend(t.tolist())
                else:
                    out.append(t.tolist())
            return out
        return _flat(scalars, vectors).tolist()  # THE host sync
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
        for i in sc + vec:
            n = items[i].numel()
            values[i], pos = host[pos:pos + n], pos + n
    return [v for vs in values for v in vs]


def copy_to_host(items: list[Tensor]) -> tuple[Tensor, torch.cuda.Event] | None:
    """For items all on one CUDA device: their values (in `read`'s order) queued for a copy to
    pinned host memory, and an event that is done once the copy is; no host sync. None for
    anything else (the CPU, other accelerators, several devices): `read` them."""
    dev = items[0].device if items else None
    if dev is None or dev.type != "cuda" or any(t.device != dev for t in items):
        return None
    host = _flat(items, []).to("cpu", non_blocking=True)  # pinned memory: the copy is async
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(dev))  # the stream the copy was queued on
    return host, done


def _flat(scalars: list[Tensor], vectors: list[Tensor]) -> Tensor:
    # Runs of 0-d tensors are stacked, anything else flattened, then one cat.
    parts: list[Tensor] = []
    run: list[Tensor] = []
    for t in [*scalars, *vectors]:
        if t.dim() == 0:
            run.append(t)
            continue
        if run:
            parts.append(torch.stack(run))
            run = []
        parts.append(t.reshape(-1))
    if run:
        parts.append(torch.stack(run))
    return parts[0] if len(parts) == 1 else torch.cat(parts)
