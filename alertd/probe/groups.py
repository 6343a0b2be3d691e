"""Which named group each parameter belongs to (the `<group>` in metric names)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

ROOT = "root"    # parameters registered directly on the root module
OTHER = "other"  # parameters outside every user-given group


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif type(model).__name__ in ("DistributedDataParallel", "DataParallel") and isinstance(
                getattr(model, "module", None), nn.Module):
            model = model.module
        else:
            return model


def default_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Top-level children (depth-1 named modules); root's own parameters go to 'root'."""
    groups: dict[str, list[nn.Parameter]] = {}
    own = list(model.parameters(recurse=False))
    if own:
        groups[ROOT] = own
    for name, child in model.named_children():
        params = list(child.parameters())
        if params:
            groups[name] = params
    return groups


def user_groups(model: nn.Module | None, spec: Mapping[str, Any]) -> dict[str, list[nn.Parameter]]:
    """Groups from `{"head": model.fc}`, `{"head": ["fc."]}` (name prefixes) or lists of params."""
    named = list(model.named_parameters()) if model is not None else []
    groups: dict[str, list[nn.Parameter]] = {}
    for gname, sel in spec.items():
        if isinstance(sel, nn.Module):
            groups[gname] = list(sel.parameters())
        elif isinstance(sel, str) or (isinstance(sel, Iterable) and all(isinstance(s, str) for s in sel)):
            prefixes = (sel,) if isinstance(sel, str) else tuple(sel)
            groups[gname] = [p for n, p in named if n.startswith(prefixes)]
        elif isinstance(sel, torch.Tensor):
            groups[gname] = [sel]
        else:
            groups[gname] = list(sel)
    if model is not None:
        claimed = {id(p) for ps in groups.values() for p in ps}
        rest = [p for p in model.parameters() if id(p) not in claimed]
        if rest:
            groups[OTHER] = rest
    return groups


def optimizer_groups(optimizer: torch.optim.Optimizer) -> dict[str, list[nn.Parameter]]:
    """Groups by optimizer param group (no module known): its 'name' key, else 'pg<i>'."""
    groups: dict[str, list[nn.Parameter]] = {}
    for i, pg in enumerate(optimizer.param_groups):
        name = pg.get("name")
        groups[name if isinstance(name, str) and name else f"pg{i}"] = list(pg["params"])
    return groups


def resolve(model: nn.Module | None, optimizer: torch.optim.Optimizer,
            spec: Mapping[str, Any] | None) -> dict[str, list[nn.Parameter]]:
    """Final grouping; each parameter tensor is counted in one group only (first wins)."""
    if spec:
        groups = user_groups(model, spec)
    elif model is not None:
        groups = default_groups(model)
    else:
        groups = optimizer_groups(optimizer)
    seen: set[int] = set()
    out: dict[str, list[nn.Parameter]] = {}
    for name, params in groups.items():
        uniq = []
        for p in params:
            if id(p) not in seen:  # shared (tied) weights: count once
                seen.add(id(p))
                uniq.append(p)
        out[name] = uniq
    # Optimized tensors outside the model (a learnable temperature, say) still count.
    extra = [p for pg in optimizer.param_groups for p in pg["params"] if id(p) not in seen]
    extra = list({id(p): p for p in extra}.values())
    if extra:
        out.setdefault(OTHER, []).extend(extra)
    return out
