"""Counts how many micro-batch gradients are accumulated in each parameter's current .grad."""
from __future__ import annotations

from torch import nn

MARK = "_alertd_version"  # attribute set on .grad tensors: their version after our last arrival


class Arrivals:
    """Post-accumulate-grad hooks that count arrivals since the gradient was last reset.

    A hook fires once per backward per leaf, whether or not the previous micro-batch's
    gradient survived. An arrival *accumulated* if `.grad` is the tensor we marked at the
    previous arrival and nothing wrote to it in between (its `_version` advanced by exactly
    the one in-place add of the accumulation). A new `.grad` object (zero_grad(set_to_none))
    or an extra in-place write (zero_grad(set_to_none=False)) restarts the count at 1.
    With `check_version=False` (DDP: all-reduce writes grads in place) only new objects count
    as resets.

    Hooks are armed only around measured steps (`arm()` ... `disarm()`): a Python hook costs
    ~3 us per parameter per backward, which a model with hundreds of parameter tensors would
    pay on every micro-batch. Counts start at 0 when armed, so a gradient never reset is seen
    growing past grad_accum within the armed window (exact history when always armed).
    """

    def __init__(self, params: list[nn.Parameter], check_version: bool = True) -> None:
        self.params = params
        self.count = [0] * len(params)
        self.check_version = check_version
        self._handles: dict[int, object] = {}

    @property
    def armed(self) -> bool:
        """Whether the hooks are installed."""
        return bool(self._handles)

    def arm(self) -> None:
        """Hook every trainable leaf (parameters can be unfrozen later); counts restart at 0."""
        if not self._handles:
            self.count[:] = [0] * len(self.params)
        for i, p in enumerate(self.params):
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

    def accumulated(self, i: int) -> int:
        """Arrivals in parameter i's current .grad (0 if it was set to None since)."""
        # In-place writes after the last arrival (clipping, unscaling, all-reduce) and a
        # replaced .grad (DDP bucket views) keep the count: the step uses what accumulated.
        return self.count[i] if self.params[i].grad is not None else 0

    def disarm(self) -> None:
        """Remove all hooks."""
        for h in self._handles.values():
            h.remove()  # type: ignore[attr-defined]
        self._handles.clear()

    remove = disarm
