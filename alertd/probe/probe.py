"""Probe: per-optimizer-step training metrics, written as JSONL for alertd's rules."""
from __future__ import annotations

import atexit
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from alertd.probe import fields
from alertd.probe import groups as grouping
from alertd.probe.arrivals import Arrivals
from alertd.probe.measured import Measured, decode
from alertd.probe.hold import RecordHold
from alertd.probe.reduce import SumSq, UpdateSumSq
from alertd.probe.writer import DEFAULT_PATH, JsonlWriter, rank_path

_FOLD = 4096  # micro-batch losses kept before older ones are folded into a device count
# Default cadence of the update ratio, in optimizer steps (rounded up to a multiple of `every`).
# It is a slow signal (parameters that stop moving): 50 steps is ~1 minute of a typical run, and
# the first step's set-up mistakes are the preflight's. Its copy of the parameters is the dear
# part of a record (~10% of a memory-bound MLP step here): every 10 steps that alone is ~1%.
RATIO_EVERY = 50
# Records due within HOLD_S seconds of the last write wait for the next write (Probe's hold_s).
HOLD_S = 1.0
Value = fields.Value


class Probe:
    """Hooks a model and its optimizer and writes one JSONL record every `every` optimizer steps.

    Example::

        probe = Probe(model, optimizer, path="probe.jsonl", every=10, grad_accum=8, num_classes=400)
        loss.backward(); probe.step(loss=loss, labels=y, loss_aux=aux)   # every micro-batch
        probe.close()

    Line 1 is `{"meta": {...}}` (num_classes, grad_accum, params|numel|trainable/<group>, torch,
    cuda, rank, world_size, every, ratio_every). Optimizer steps are seen through its step pre/post hooks;
    step S (1-based count of steps) is written when S % every == 0:
    loss and each extra metric (mean over the step's micro-batches), grad_norm and
    grad_norm/<g> (L2, before the step, after any clipping), has_grad/<g>, trainable/<g>
    (parameter tensors with requires_grad), update_ratio/<g> = ||theta_after - theta_before|| /
    ||theta_after|| and weight_norm/<g> (only on written steps that are multiples of
    `ratio_every`, see below), lr and lr/<i> per param group, labels/{unique,min,max,
    out_of_range} (labels outside [0, num_classes)), nonfinite/loss (non-finite micro-batch
    losses since the previous record) and nonfinite/grad (parameters whose gradient holds
    NaN/inf at this step). At the first step a `"event": "preflight"` record is also written.

    has_grad/<g> sums, over the group's parameters, the micro-batch gradients that are
    accumulated in the .grad the optimizer steps with: GA per parameter when accumulation
    is right, 1 when the grad is reset (zero_grad) on every micro-batch (earlier ones are
    thrown away), growing past GA if it is never reset. So has_grad/trainable == grad_accum.
    Arrivals are seen by a hook per parameter, or, once a measured step counted both ways and
    found them equal, by one scan of the .grads in each probe.step (arrivals.Arrivals): call
    probe.step after each micro-batch's backward. Any other loop keeps the hooks.

    ratio_every (default: the smallest multiple of `every` from RATIO_EVERY = 50 on): the update
    ratio needs a copy of the parameters before the step and a read of them and of the copy
    after it (with the grads' read, 40-45% of a single-threaded CPU AdamW step), so it and
    weight_norm/<g> are measured only on written steps S with S % ratio_every == 0 (a given
    ratio_every is rounded to lcm(every, ratio_every); meta `ratio_every` is the effective
    cadence). Other records lack the update_ratio/* and weight_norm/* keys: rules see no record
    for those series. A hold spanning steps waits for the next measured record (the pack's
    UpdateRatioNearZero, 10 steps after a 10-step warm-up, fires at step 100 with the default,
    19 with ratio_every=1); a hold counting records waits ratio_every times longer.
    Pass ratio_every=1 to measure it on every written step.

    hold_s (default HOLD_S = 1.0): a record due less than hold_s after the last write is held
    and written with the next record due after that (their tensors read together, in one
    transfer, and one write(2) for the lot): at every=1 on a fast model that takes the probe's
    host work per step from ~300 us to ~125 us. Never held: the first step's records (the preflight)
    and update-ratio records (they read buffers the next ratio step reuses). Held records keep
    copies of the labels and of tensor LRs (a loop may refill one label buffer in place, and
    schedulers write tensor LRs in place). When training stops stepping (a hang, an evaluation,
    a script that never calls close()) a thread of the probe writes them 2 * hold_s after the
    last write. A hard kill (SIGKILL, the OOM killer) can lose the last hold_s of records;
    hold_s=0 writes every record at once.

    Cost: steps that are not measured do integer counting only (arrivals are counted just for
    the measured step and the one before it). A written step costs one read of the grads
    (per-parameter sums of squares: `torch.dot` for large CPU tensors, `_foreach_norm`
    otherwise; reduce.SumSq), and one transfer to the host per write, for all the records it
    writes (on the CPU the values are read in place; on CUDA a copy to pinned memory with no
    host sync, except for the preflight's and with hold_s=0: hold.RecordHold); a ratio step
    adds a copy of the optimized parameters (taken in the pre-hook of that step only) and one
    read of them and of the copy after the step (reduce.UpdateSumSq: on the CPU the difference
    stays in cache). Sums per group are made on the host, in float64, from per-parameter sums
    of squares. Memory: that copy, held from the step's pre-hook to its post-hook only on
    accelerators, kept (reused) on the CPU.
    """

    def __init__(self, model: nn.Module | None, optimizer: torch.optim.Optimizer,
                 path: str | None = None, every: int = 10, grad_accum: int | None = None,
                 num_classes: int | None = None, groups: Mapping[str, Any] | None = None,
                 ratio_every: int | None = None, hold_s: float = HOLD_S, *,
                 _late: bool = False) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        if ratio_every is not None and ratio_every < 1:
            raise ValueError("ratio_every must be >= 1")
        self.optimizer, self.every = optimizer, int(every)
        # The ratio is measured on written steps only: its cadence is a multiple of `every`.
        self.ratio_every = (math.lcm(self.every, int(ratio_every)) if ratio_every
                            else self.every * -(-RATIO_EVERY // self.every))
        self.grad_accum, self.num_classes = grad_accum, num_classes
        self.model = grouping.unwrap(model) if model is not None else None
        self.rank, self.world_size = _dist()
        self.groups = grouping.resolve(self.model, optimizer, groups)
        self.names = list(self.groups)
        self.params = [p for ps in self.groups.values() for p in ps]
        self.gidx = [g for g, ps in enumerate(self.groups.values()) for _ in ps]
        ends = [0]
        for ps in self.groups.values():
            ends.append(ends[-1] + len(ps))
        self._spans = list(zip(ends, ends[1:]))  # each group's slice of self.params
        self._layout_key: tuple[list[bool], list[int]] | None = None
        self._layout_val: tuple[list[int], list[int], list[int]] = ([], [], [])
        # Under DDP all-reduce writes grads in place, so only replaced grads count as resets.
        self.arrivals = Arrivals(self.params, check_version=self.world_size <= 1)
        self.path = rank_path(path or DEFAULT_PATH, self.rank, self.world_size)
        self.writer = JsonlWriter(self.path)
        self.writer.write({"meta": self._meta()})
        self.steps = 0
        self._skip = _late        # attached during a step whose backward we did not see
        self._preflight = True    # still to be written
        self._losses: list[Value] = []  # per micro-batch since the last record (0-d float32 or float)
        self._step_start = 0            # index in _losses where the current step begins
        self._nf_folded: list[Tensor] = []
        self._nf_folded_f = 0
        self._extras: dict[str, list[Value]] = {}
        self._labels: list[Tensor] = []
        self._pending: dict[str, Any] = {}
        self._label_stats = fields.LabelStats()
        self._plans: dict[tuple[Any, ...], Any] = {}  # SumSq / UpdateSumSq per parameter subset
        self._bufs: dict[tuple[int, ...], list[Tensor]] = {}  # CPU snapshot buffers, see _snapshot
        self._capture = self._wants(1)
        self.hold = RecordHold(self.writer, float(hold_s),
                               lambda m, vals: decode(m, vals, self.names, self.gidx, self.num_classes))
        atexit.register(self.close)  # held records reach the file when a script ends without close()
        self.arrivals.arm()  # the first measured step is the next one or the one after
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
                     "world_size": self.world_size, "every": self.every,
                     "ratio_every": self.ratio_every})
        return meta

    def _wants(self, step: int) -> bool:
        return step % self.every == 0 or (self._preflight and not self._skip)

    def step(self, loss: Value | None = None, labels: Tensor | None = None, **metrics: Value) -> None:
        """Record one micro-batch (call after its backward). Cheap unless its step is written."""
        if self.arrivals.scanning:  # around measured steps: which .grads this backward reached
            self.arrivals.scan(self.steps)
        if loss is not None:
            self._losses.append(fields.scalar(loss.detach()) if isinstance(loss, Tensor) else float(loss))
            if len(self._losses) > _FOLD:
                self._fold()
        if not self._capture:
            return
        if labels is not None:
            self._labels.append(labels.detach())
        for k, v in metrics.items():
            self._extras.setdefault(k, []).append(fields.scalar(v.detach()) if isinstance(v, Tensor) else float(v))

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

    def _plan(self, kind: type, tensors: list[Tensor], idx: list[int]):
        # Grads share their parameter's device, dtype and layout: one plan per parameter subset.
        key = (kind, tuple(idx))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = kind(tensors)
        return plan

    def _snapshot(self, params: list[nn.Parameter], idx: list[int]) -> list[Tensor]:
        # On the CPU the copy's buffers are kept across written steps: a fresh allocation of that
        # size page-faults on every use (3.5 vs 2.1 ms for 11 MB). On accelerators the caching
        # allocator makes a fresh copy cheap, and the memory is free between steps.
        bufs = self._bufs.get(tuple(idx))
        if bufs is not None and bufs[0].device == params[0].device:
            torch._foreach_copy_(bufs, params)
            return bufs
        snap = torch._foreach_mul(params, 1.0)
        if all(p.device.type == "cpu" for p in params):
            self._bufs = {tuple(idx): snap}
        return snap

    def _on_pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._skip or not self._capture:
            return  # a step that is not written costs this test and nothing else
        with torch.no_grad():  # hooks run outside the optimizer's own no_grad
            self._measure_pre(optimizer)

    def _measure_pre(self, optimizer: torch.optim.Optimizer) -> None:
        trainable, unopt, opt_idx = self._layout(optimizer)
        all_grads = [p.grad for p in self.params]
        count = self.arrivals.at_step(all_grads, self.steps)  # arrivals in the .grad the step uses
        has = [sum(count[a:b]) for a, b in self._spans]  # count is 0 where .grad is None
        gk = [k for k, g in enumerate(all_grads) if g is not None]
        grads = [all_grads[k] for k in gk]
        lr_t: list[tuple[int, Tensor]] = []
        lrs: list[float] = []
        for i, pg in enumerate(optimizer.param_groups):
            lr = pg.get("lr", float("nan"))
            if isinstance(lr, Tensor):
                lr_t.append((i, lr))
            lrs.append(float("nan") if isinstance(lr, Tensor) else float(lr))
        # The only extra memory: one copy of the optimized trainable params, until _on_post,
        # taken only before a step whose update ratio is measured (the costly part of a record).
        # (No .detach() per parameter: under no_grad the foreach ops make no graph.)
        ratio = (self.steps + 1) % self.ratio_every == 0
        snap_idx = opt_idx if ratio else []
        snap_params = [self.params[k] for k in snap_idx]
        snap = self._snapshot(snap_params, snap_idx) if snap_params else []
        gplan = self._plan(SumSq, grads, gk) if grads else None
        self._pending = {"has": has, "trainable": trainable, "unopt": unopt, "lrs": lrs, "lr_t": lr_t,
                         "ratio": ratio, "snap_idx": snap_idx, "snap": snap, "snap_params": snap_params,
                         "gplan": gplan, "gitems": gplan.items(grads) if gplan else [], "gk": gk}

    def _layout(self, optimizer: torch.optim.Optimizer) -> tuple[list[int], list[int], list[int]]:
        """Trainable and unoptimized parameters per group, and the indices of the optimized
        trainable ones; made again only when requires_grad or the optimizer's params change."""
        key = ([p.requires_grad for p in self.params],
               [id(p) for pg in optimizer.param_groups for p in pg["params"]])
        if self._layout_key != key:
            G, optimized = len(self.names), set(key[1])
            trainable, unopt, opt_idx = [0] * G, [0] * G, []
            for k, p in enumerate(self.params):
                if p.requires_grad:
                    trainable[self.gidx[k]] += 1
                    if id(p) in optimized:
                        opt_idx.append(k)
                    else:
                        unopt[self.gidx[k]] += 1
            self._layout_key, self._layout_val = key, (trainable, unopt, opt_idx)
        return self._layout_val

    def _on_post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self._capture and not self._skip:
            with torch.no_grad():
                self._measure_post()
            self._extras, self._labels = {}, []
        self._skip = False
        self._step_start = len(self._losses)
        self._capture = self._wants(self.steps + 1)
        # Hooks for the next step only if it or the one after is measured (see Arrivals).
        if self._capture or self._wants(self.steps + 2):
            self.arrivals.arm()
        elif self.arrivals.armed:
            self.arrivals.disarm()

    def _measure_post(self) -> None:
        pend, self._pending = self._pending, {}
        idx = pend["snap_idx"]
        # The copy leaves the record here (it keeps only norms): on an accelerator its memory
        # is free again after this step, however late the record is read.
        snap, snap_params = pend.pop("snap"), pend.pop("snap_params")
        uplan = self._plan(UpdateSumSq, snap_params, idx) if idx else None
        # ||after - before|| and ||after|| of the optimized parameters read together; the
        # weights of the others (frozen, or in no optimizer group) count in weight_norm too.
        uitems = uplan.items(snap_params, snap) if uplan else []
        if pend["ratio"]:
            opt = set(idx)
            widx = [k for k in range(len(self.params)) if k not in opt]
        else:
            widx = []
        wparams = [self.params[k] for k in widx]
        wplan = self._plan(SumSq, wparams, widx) if widx else None
        witems = wplan.items(wparams) if wplan else []
        write = self.steps % self.every == 0
        now = time.monotonic()
        # Held: a record within hold_s of the last write, unless it is the preflight's (the
        # first step's mistakes go out at once) or reads the update ratio's reused buffers.
        hold = self.hold.holds(now) and not self._preflight and not pend["ratio"]
        lr_t = [(i, t.clone() if hold else t) for i, t in pend["lr_t"]]  # schedulers write in place
        labels, n_labels = (self._label_stats.queue(self._labels, self.num_classes, own=hold)
                            if self._labels else ([], 0))
        m = Measured(self.steps, pend, uplan, uitems, wplan, witems, widx,
                     self._losses if write else self._losses[self._step_start:],
                     len(self._losses) - self._step_start, self._extras, lr_t,
                     self._nf_folded if write else [], self._nf_folded_f, labels, n_labels,
                     write, self._preflight)
        self._preflight = False
        if write:
            self._losses, self._nf_folded, self._nf_folded_f = [], [], 0
        self.hold.put(m, hold, now)

    def close(self) -> None:
        """Remove every hook, write the held records and close the stream."""
        atexit.unregister(self.close)
        for h in self._handles:
            h.remove()
        self._handles = []
        self.arrivals.disarm()
        self.hold.close()

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
