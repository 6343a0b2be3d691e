"""Training-side probe: writes the metrics alertd's rules read, as a JSONL stream.

torch is imported only when `Probe` (or anything under this package that needs it)
is first used, so `import alertd` and `alertd.probe.commands` work without torch.

Example::

    from alertd.probe import Probe
    probe = Probe(model, optimizer, path="probe.jsonl", every=10, grad_accum=8, num_classes=400)
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        loss.backward()
        probe.step(loss=loss, labels=y)
        if (i + 1) % 8 == 0:
            optimizer.step(); optimizer.zero_grad()
    probe.close()
"""
from __future__ import annotations

from typing import Any

__all__ = ["Probe", "run_attached"]


def __getattr__(name: str) -> Any:
    # Lazy: importing torch costs ~1 s and is optional for the rest of alertd.
    if name == "Probe":
        from alertd.probe.probe import Probe
        return Probe
    if name == "run_attached":
        from alertd.probe.attach import run_attached
        return run_attached
    raise AttributeError(f"module 'alertd.probe' has no attribute {name!r}")
