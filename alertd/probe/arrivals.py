"""Counts how many micro-batch gradients are accumulated in each parameter's current .grad."""
from __future__ import annotations

from torch import Tensor, nn

MARK = "_alertd_version"  # set on .grad tensors by the hooks: their version after our last arrival
SEEN = "_alertd_seen"     # set on .grad tensors by scans: (optimizer step, version) at the last scan

HOOKS, CALIBRATE, SCAN = "hooks", "calibrate", "scan"


class Arrivals:
    """Counts arrivals (backward passes that reached a parameter) since its .grad was last reset.

    An arrival *accumulated* if `.grad` is the tensor seen at the previous arrival and nothing
    wrote to it in between (its `_version` advanced by exactly the one in-place add of the
    accumulation). A new `.grad` object (zero_grad(set_to_none)) or an extra in-place write
    (zero_grad(set_to_none=False)) restarts the count at 1. With `check_version=False` (DDP:
    all-reduce writes grads in place) only new objects count as resets.

    Two ways to see arrivals:
    - hooks: a post-accumulate-grad hook per parameter. Exact whatever the loop does, but a
      Python call per parameter per backward: ~3 us warm, 10-20 us inside a real backward
      (the interpreter's code and data are cold between kernels).
    - scans: `scan()`, called by Probe.step() after each micro-batch's backward, looks at every
      .grad once; an arrival is a .grad that is new or whose version moved by one since the
      last scan. One Python loop, about 1 us per parameter.
    Scans replace the hooks only after they agreed with them over a whole measured step
    (mode CALIBRATE: both run), in a single process (check_version), and only while the loop
    keeps that shape. The hooks come back for good when a .grad reaches the optimizer step
    without having been scanned (probe.step called before backward, or not after each one), or
    when a scanned .grad outlives an optimizer step (zero_grad(set_to_none=False), or no
    zero_grad: then a zero_() and an arrival look alike to a scan).

    Either way counts are kept only while armed (`arm()` ... `disarm()`, around measured steps)
    and start at 0 when armed, so a gradient never reset is seen growing past grad_accum within
    the armed window (exact history when always armed).
    """

    def __init__(self, params: list[nn.Parameter], check_version: bool = True) -> None:
        self.params = params
        self.count = [0] * len(params)   # the counts the probe reads
        self._scount = [0] * len(params)  # scans' counts while calibrating
        self.check_version = check_version
        self.mode = CALIBRATE if check_version else HOOKS
        self.scanning = False  # armed and scans wanted: Probe.step calls scan()
        self._armed = False
        self._scanned = False  # a scan ran in this armed window
        self._handles: dict[int, object] = {}

    @property
    def armed(self) -> bool:
        """Whether arrivals are being counted."""
        return self._armed

    def arm(self) -> None:
        """Start counting (counts restart at 0) or, if counting, hook newly trainable leaves."""
        if not self._armed:
            self.count[:] = [0] * len(self.params)
            self._scount[:] = [0] * len(self.params)
            self._scanned = False
        self._armed = True
        self.scanning = self.mode != HOOKS
        if self.mode != SCAN:
            self._install_hooks()

    def _install_hooks(self) -> None:
        for i, p in enumerate(self.params):  # every trainable leaf: parameters can be unfrozen later
            if i not in self._handles and p.requires_grad and p.is_leaf:
                self._handles[i] = p.register_post_accumulate_grad_hook(self._hook(i))

    def _hook(self, i: int):
        count, check = self.count, self.check_version

        def hook(p: nn.Parameter) -> None:
            g = p.grad
            if g is None:
                return
            v = g._version
            prev = getattr(g, MARK, None)
            if prev is None or (check and v != prev + 1):
                count[i] = 1  # the gradient was reset since the last arrival
            else:
                count[i] += 1
            setattr(g, MARK, v)
        return hook

    def scan(self, step: int) -> None:
        """After a micro-batch's backward (`step`: optimizer steps taken so far): one arrival per
        parameter whose .grad is new or moved by one version since the last scan."""
        count = self._scount if self.mode == CALIBRATE else self.count
        self._scanned = True
        outlived = False
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            v = g._version
            seen = getattr(g, SEEN, None)
            if seen is None:
                count[i] = 1
            else:
                outlived = outlived or seen[0] != step  # kept through an optimizer step
                if v == seen[1]:
                    continue  # no arrival since the last scan
                count[i] = count[i] + 1 if v == seen[1] + 1 else 1
            setattr(g, SEEN, (step, v))
        if outlived:  # a zero_() and an arrival look alike to a scan: hooks from now on
            self._use_hooks()

    def at_step(self, grads: list[Tensor | None], step: int) -> list[int]:
        """Arrivals accumulated in each parameter's current .grad (0 if it is None), read in the
        optimizer's pre-hook (`step`: optimizer steps taken before this one). In-place writes
        after the last arrival (clipping, unscaling, all-reduce) and a replaced .grad (DDP bucket
        views) keep the count: the step uses what accumulated. Settles the calibration, and
        checks that the scans of this step saw every .grad."""
        if self.mode == SCAN:
            missed = [i for i, g in enumerate(grads)
                      if g is not None and getattr(g, SEEN, (None,))[0] != step]
            if missed:  # an arrival after the last scan of this step: count it, then use hooks
                for i in missed:
                    self.count[i] = 1
                self._use_hooks()
        elif self.mode == CALIBRATE and self._scanned:
            if all(g is None or self.count[i] == self._scount[i] for i, g in enumerate(grads)):
                self.mode = SCAN
                self.count[:] = self._scount
                self._remove_hooks()
            else:
                self._use_hooks()
        return [c if g is not None else 0 for c, g in zip(self.count, grads)]

    def _use_hooks(self) -> None:
        if self.mode == SCAN:  # the hooks go on from what the scans saw of each .grad
            for p in self.params:
                g = p.grad
                seen = getattr(g, SEEN, None) if g is not None else None
                if seen is not None:
                    setattr(g, MARK, seen[1])
        self.mode, self.scanning = HOOKS, False
        if self._armed:
            self._install_hooks()

    def _remove_hooks(self) -> None:
        for h in self._handles.values():
            h.remove()  # type: ignore[attr-defined]
        self._handles.clear()

    def disarm(self) -> None:
        """Stop counting: remove all hooks."""
        self._remove_hooks()
        self._armed = False
        self.scanning = False

    remove = disarm
