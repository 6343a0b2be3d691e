"""Probe: per-optimizer-step training metrics, written as JSONL for alertd's rules."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from alertd.probe import fields
from alertd.probe import groups as grouping
from alertd.probe.arrivals import Arrivals
from alertd.probe.reduce import SlotSums, norms, read
from alertd.probe.writer import DEFAULT_PATH, JsonlWriter, rank_path

_FOLD = 4096  # micro-batch losses kept before older ones are folded into a device count
Value = fields.Value


class Probe:
    """Hooks a model and its optimizer and writes one JSONL record every `every` optimizer steps.

    Example::

        probe = Probe(model, optimizer, path="probe.jsonl", every=10, grad_accum=8, num_classes=400)
        loss.backward(); probe.step(loss=loss, labels=y, loss_aux=aux)   # every micro-batch
        probe.close()

    Line 1 is `{"meta": {...}}` (num_classes, grad_accum, params|numel|trainable/<group>, torch,
    cuda, rank, world_size, every). Optimizer steps are seen through its step pre/post hooks;
    step S (1-based count of steps) is written when S % every == 0:
    loss and each extra metric (mean over the step's micro-batches), grad_norm and
    grad_norm/<g> (L2, before the step, after any clipping), has_grad/<g>, trainable/<g>
    (parameter tensors with requires_grad), update_ratio/<g> = ||theta_after - theta_before|| /
    ||theta_after||, weight_norm/<g>, lr and lr/<i> per param group, labels/{unique,min,max,
    out_of_range} (labels outside [0, num_classes)), nonfinite/loss (non-finite micro-batch
    losses since the previous record) and nonfinite/grad (parameters whose gradient holds
    NaN/inf at this step). At the first step a `"event": "preflight"` record is also written.

    has_grad/<g> sums, over the group's parameters, the micro-batch gradients that are
    accumulated in the .grad the optimizer steps with: GA per parameter when accumulation
    is right, 1 when the grad is reset (zero_grad) on every micro-batch (earlier ones are
    thrown away), growing past GA if it is never reset. So has_grad/trainable == grad_accum.

    Cost: a few Python attribute reads per parameter per backward; on written steps a handful
    of `_foreach_norm` launches and ONE host sync. Memory: on written steps a copy of the
    optimized trainable parameters, held from the step's pre-hook to its post-hook only.
    """

    def __init__(self, model: nn.Module | None, optimizer: torch.optim.Optimizer,
                 path: str | None = None, every: int = 10, grad_accum: int | None = None,
                 num_classes: int | None = None, groups: Mapping[str, Any] | None = None,
                 *, _late: bool = False) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.optimizer, self.every = optimizer, int(every)
        self.grad_accum, self.num_classes = grad_accum, num_classes
        self.model = grouping.unwrap(model) if model is not None else None
        self.rank, self.world_size = _dist()
        self.groups = grouping.resolve(self.model, optimizer, groups)
        self.names = list(self.groups)
        self.params = [p for ps in self.groups.values() for p in ps]
        self.gidx = [g for g, ps in enumerate(self.groups.values()) for _ in ps]
        # Under DDP all-reduce writes grads in place, so only replaced grads count as resets.
        self.arrivals = Arrivals(self.params, check_version=self.world_size <= 1)
        self.path = rank_path(path or DEFAULT_PATH, self.rank, self.world_size)
        self.writer = JsonlWriter(self.path)
        self.writer.write({"meta": self._meta()})
        self.steps = 0
        self._skip = _late        # attached during a step whose backward we did not see
        self._preflight = True    # still to be written
        self._losses: list[Value] = []  # per micro-batch since the last record
        self._step_start = 0            # index in _losses where the current step begins
        self._nf_folded: list[Tensor] = []
        self._nf_folded_f = 0
        self._extras: dict[str, list[Value]] = {}
        self._labels: list[Tensor] = []
        self._pending: dict[str, Any] = {}
        self._slot_sums = SlotSums()
        self._capture = self._wants(1)
        self._handles = [optimizer.register_step_pre_hook(self._on_pre),
                         optimizer.register_step_post_hook(self._on_post)]

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.num_classes is not None:
            meta["num_classes"] = self.num_classes
        if self.grad_accum is not None:
            meta["grad_accum"] = self.grad_accum
        for name, ps in self.groups.items():
            meta[f"params/{name}"] = len(ps)
            meta[f"numel/{name}"] = sum(p.numel() for p in ps)
            meta[f"trainable/{name}"] = sum(1 for p in ps if p.requires_grad)
        meta.update({"torch": torch.__version__, "cuda": torch.version.cuda, "rank": self.rank,
                     "world_size": self.world_size, "every": self.every})
        return meta

    def _wants(self, step: int) -> bool:
        return step % self.every == 0 or (self._preflight and not self._skip)

    def step(self, loss: Value | None = None, labels: Tensor | None = None, **metrics: Value) -> None:
        """Record one micro-batch (call after its backward). Cheap unless its step is written."""
        if loss is not None:
            self._losses.append(loss.detach() if isinstance(loss, Tensor) else float(loss))
            if len(self._losses) > _FOLD:
                self._fold()
        if not self._capture:
            return
        if labels is not None:
            self._labels.append(labels.detach())
        for k, v in metrics.items():
            self._extras.setdefault(k, []).append(v.detach() if isinstance(v, Tensor) else float(v))

    def _fold(self) -> None:
        # Bound memory when steps are rare: count old losses' non-finites on the device.
        cut = self._step_start or len(self._losses) // 2
        old = [t for t in self._losses[:cut] if isinstance(t, Tensor)]
        if old:
            self._nf_folded.append(fields.nonfinite(old))
        self._nf_folded_f = self._nf_folded_f + sum(
            1 for t in self._losses[:cut] if not isinstance(t, Tensor) and not math.isfinite(t))
        self._losses = self._losses[cut:]
        self._step_start = max(0, self._step_start - cut)

    def _on_pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._skip or not self._capture:
            return  # a step that is not written costs this test and nothing else
        with torch.no_grad():  # hooks run outside the optimizer's own no_grad
            self._measure_pre(optimizer)

    def _measure_pre(self, optimizer: torch.optim.Optimizer) -> None:
        self.arrivals.install()
        G = len(self.names)
        has, trainable, unopt = [0] * G, [0] * G, [0] * G
        optimized = {id(p) for pg in optimizer.param_groups for p in pg["params"]}
        grads, gi, snap_idx = [], [], []
        for k, p in enumerate(self.params):
            g = self.gidx[k]
            has[g] += self.arrivals.accumulated(k)
            if p.requires_grad:
                trainable[g] += 1
                if id(p) in optimized:
                    snap_idx.append(k)
                else:
                    unopt[g] += 1
            if p.grad is not None:
                grads.append(p.grad)
                gi.append(g)
        named: fields.Named = []
        lrs: list[float] = []
        for i, pg in enumerate(optimizer.param_groups):
            lr = pg.get("lr", float("nan"))
            if isinstance(lr, Tensor):
                named.append(([f"lr/{i}"], lr))
            lrs.append(float("nan") if isinstance(lr, Tensor) else float(lr))
        # The only extra memory: one copy of the optimized trainable params, until _on_post.
        snap = torch._foreach_mul([self.params[k].detach() for k in snap_idx], 1.0) if snap_idx else []
        self._pending = {"named": named, "has": has, "trainable": trainable, "unopt": unopt,
                         "lrs": lrs, "snap_idx": snap_idx, "snap": snap,
                         "gnorms": norms(grads), "gslots": gi}

    def _on_post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self._skip or not self._capture:
            self._skip = False
            self._step_start = len(self._losses)
            self._capture = self._wants(self.steps + 1)
            return
        with torch.no_grad():
            self._measure_post()
        self._step_start = len(self._losses)
        self._extras, self._labels = {}, []
        self._capture = self._wants(self.steps + 1)

    def _measure_post(self) -> None:
        pend, self._pending = self._pending, {}
        named: fields.Named = pend["named"]
        G, snap, idx = len(self.names), pend["snap"], pend["snap_idx"]
        if idx:
            torch._foreach_sub_(snap, [self.params[k].detach() for k in idx])  # before - after
        vals = pend["gnorms"] + norms(snap) + norms([p.detach() for p in self.params])
        slots = pend["gslots"] + [G + self.gidx[k] for k in idx] + [2 * G + g for g in self.gidx]
        del snap
        sq_names = [f"sq/{s}" for s in range(3 * G)]
        named.extend((sq_names, v) for v in self._slot_sums(vals, slots, 3 * G))
        if pend["gnorms"]:  # parameters whose gradient holds a NaN/inf
            fields.queue_nonfinite(pend["gnorms"], "nonfinite/grad", named)
        write = self.steps % self.every == 0
        step_losses = self._losses[self._step_start:]
        fsum = fields.queue_sum(step_losses, "loss", named)
        extras = {k: (fields.queue_sum(v, f"x/{k}", named), len(v)) for k, v in self._extras.items()}
        if write:
            tl = [t for t in self._losses if isinstance(t, Tensor)]
            fields.queue_nonfinite(tl, "nf_loss", named)
            named.extend((["nf_loss"], t) for t in self._nf_folded)
        if self._labels:
            fields.queue_labels(self._labels, self.num_classes, named)
        host = read(named)  # the one host sync of this record is inside read()
        loss = (host.get("loss", 0.0) + fsum) / len(step_losses) if step_losses else None
        if self._preflight:
            self.writer.write(fields.preflight(self.steps, self.names, pend, loss, self.num_classes))
            self._preflight = False
        if write:
            rec: dict[str, Any] = {"step": self.steps}
            if loss is not None:
                rec["loss"] = loss
            for k, (fs, n) in extras.items():
                rec[k] = (host.get(f"x/{k}", 0.0) + fs) / n
            rec.update(fields.group_metrics(self.names, pend, host))
            rec["lr"] = _lr(pend["lrs"], host, 0)
            for i in range(len(pend["lrs"])):
                rec[f"lr/{i}"] = _lr(pend["lrs"], host, i)
            if "labels/min" in host:
                for k in ("min", "max", "out_of_range"):
                    rec[f"labels/{k}"] = int(host[f"labels/{k}"])
                rec["labels/unique"] = int(host["labels/unique"]) + 1
            if self._losses:
                nf_f = sum(1 for t in self._losses if not isinstance(t, Tensor) and not math.isfinite(t))
                rec["nonfinite/loss"] = int(host.get("nf_loss", 0)) + nf_f + self._nf_folded_f
            rec["nonfinite/grad"] = int(host.get("nonfinite/grad", 0))
            self.writer.write(rec)
            self._losses, self._nf_folded, self._nf_folded_f = [], [], 0

    def close(self) -> None:
        """Remove every hook and close the stream."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.arrivals.remove()
        self.writer.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dist() -> tuple[int, int]:
    """(rank, world_size) when torch.distributed is initialised, else (0, 1)."""
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr(lrs: list[float], host: dict[str, float], i: int) -> float:
    return host.get(f"lr/{i}", lrs[i]) if i < len(lrs) else float("nan")
