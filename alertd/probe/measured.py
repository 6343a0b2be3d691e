"""A measured step between the device and the file: the tensors its record reads, and the
decoding of their host values into the record (and the preflight record at the first step)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from alertd.probe import fields

Value = fields.Value


@dataclass(slots=True)
class Measured:
    """What a measured step leaves for its record. Its tensors are its own or never written to
    again (norms, clones), so the record may be read steps later; user tensors (losses, extra
    metrics) are held as the probe always held them between written steps."""
    step: int
    pend: dict[str, Any]       # from the step's pre-hook: has, trainable, unopt, lrs, ratio, plans
    uplan: Any                 # UpdateSumSq of the optimized parameters (ratio steps), or None
    uitems: list[Tensor]       # its device tensors
    wplan: Any                 # SumSq of the other parameters' weights (ratio steps), or None
    witems: list[Tensor]
    widx: list[int]            # those other parameters
    held: list[Value]          # micro-batch losses read: since the last record, or this step's
    n_step: int                # how many of `held` (the last ones) are this step's
    extras: dict[str, list[Value]]
    lr_t: list[tuple[int, Tensor]]  # param groups whose lr is a tensor
    nf: list[Tensor]           # device counts of non-finite losses folded away
    nf_host: int               # and those counted on the host
    labels: list[Tensor]       # label stats (fields.LabelStats.queue)
    n_labels: int
    write: bool                # a record of this step is written (else the preflight only)
    preflight: bool            # the preflight record is written first

    def tensors(self) -> list[Tensor]:
        """The device tensors `decode` reads, in its order."""
        return [*self.pend["gitems"], *self.uitems, *self.witems,
                *(t for t in self.held if isinstance(t, Tensor)),
                *(t for v in self.extras.values() for t in v if isinstance(t, Tensor)),
                *(t for _, t in self.lr_t), *self.nf, *self.labels]


def decode(m: Measured, vals: Any, names: list[str], gidx: list[int],
           num_classes: int | None) -> list[dict[str, Any]]:
    """The records of `m` (preflight first) from the host values of its tensors, an iterator
    consumed in the order of `Measured.tensors`."""
    pend, G = m.pend, len(names)
    sq = [0.0] * (3 * G)  # sums of squares per group, on the host in float64
    gsq = pend["gplan"].decode(vals) if pend["gplan"] else []
    for k, v in zip(pend["gk"], gsq):
        sq[gidx[k]] += v
    if m.uplan:
        dsq, wsq = m.uplan.decode(vals)
        for k, d, w in zip(pend["snap_idx"], dsq, wsq):
            sq[G + gidx[k]] += d
            sq[2 * G + gidx[k]] += w
    if m.wplan:
        for k, w in zip(m.widx, m.wplan.decode(vals)):
            sq[2 * G + gidx[k]] += w
    held_v = [next(vals) if isinstance(t, Tensor) else t for t in m.held]
    step_losses = held_v[len(held_v) - m.n_step:]
    loss = sum(step_losses) / len(step_losses) if step_losses else None
    extras = {k: [next(vals) if isinstance(t, Tensor) else t for t in v] for k, v in m.extras.items()}
    lrs = list(pend["lrs"])
    for i, _ in m.lr_t:
        lrs[i] = next(vals)
    nf_loss = sum(int(next(vals)) for _ in m.nf)
    labels = fields.LabelStats.decode(list(vals), m.n_labels, num_classes) if m.n_labels else {}
    out = []
    if m.preflight:
        out.append(fields.preflight(m.step, names, pend, loss, num_classes))
    if m.write:
        rec: dict[str, Any] = {"step": m.step}
        if loss is not None:
            rec["loss"] = loss
        for k, v in extras.items():
            rec[k] = sum(v) / len(v)
        rec.update(fields.group_metrics(names, pend, sq))
        rec["lr"] = lrs[0] if lrs else float("nan")
        for i, lr in enumerate(lrs):
            rec[f"lr/{i}"] = lr
        rec.update(labels)
        if m.held:
            rec["nonfinite/loss"] = nf_loss + m.nf_host + sum(1 for v in held_v if not math.isfinite(v))
        rec["nonfinite/grad"] = sum(1 for v in gsq if not math.isfinite(v))
        out.append(rec)
    return out
