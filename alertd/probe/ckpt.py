"""`alertd ckpt diff`: which tensors two checkpoints add, drop, reshape or change, largest first."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

_WRAPPERS = ("state_dict", "model", "model_state_dict")


def _flatten(obj: Any, prefix: str, out: dict[str, Tensor]) -> None:
    if isinstance(obj, Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)


def load_state(path: str) -> dict[str, Tensor]:
    """Tensors of a checkpoint: a raw state_dict, or the dict under 'state_dict'/'model'."""
    obj = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: no pickled code
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state: dict[str, Tensor] = {}
    _flatten(obj, "", state)
    if not state:
        raise ValueError(f"{path}: no tensors found")
    # Saved from inside DDP: drop the wrapper's prefix so both sides name tensors alike.
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _compare(a: Tensor, b: Tensor) -> dict[str, Any]:
    x, y = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    na, nb = x.norm().item(), y.norm().item()
    l2 = (x - y).norm().item()
    cos = (x @ y).item() / (na * nb) if na > 0 and nb > 0 else (1.0 if na == nb == 0 else None)
    return {"l2": l2, "rel": l2 / na if na > 0 else (0.0 if l2 == 0 else None),
            "cosine": cos, "norm_a": na, "norm_b": nb}


def diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Any]:
    """Keys only in a / only in b, shape changes, and per-tensor L2 of difference and cosine."""
    common = [k for k in a if k in b]
    shape_changed = [{"key": k, "shape_a": list(a[k].shape), "shape_b": list(b[k].shape)}
                     for k in common if a[k].shape != b[k].shape]
    changed = []
    for k in common:
        if a[k].shape == b[k].shape and not a[k].is_complex():
            changed.append({"key": k, "shape": list(a[k].shape), **_compare(a[k], b[k])})
    changed.sort(key=lambda r: -r["l2"] if math.isfinite(r["l2"]) else -math.inf)
    return {"keys_a": len(a), "keys_b": len(b), "common": len(common),
            "only_a": [k for k in a if k not in b], "only_b": [k for k in b if k not in a],
            "shape_changed": shape_changed,
            "identical": sum(1 for r in changed if r["l2"] == 0), "changed": changed}


def diff_files(path_a: str, path_b: str) -> dict[str, Any]:
    """`diff` of two checkpoint files, with their paths."""
    result = diff(load_state(path_a), load_state(path_b))
    return {"a": path_a, "b": path_b, **result}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def format_table(d: dict[str, Any], top: int = 20) -> str:
    """Human-readable report: summary, key differences, then the largest changes."""
    lines = [f"A: {d.get('a', '')} ({d['keys_a']} tensors)  B: {d.get('b', '')} ({d['keys_b']} tensors)",
             f"common {d['common']}, identical {d['identical']}, only in A {len(d['only_a'])}, "
             f"only in B {len(d['only_b'])}, shape changed {len(d['shape_changed'])}"]
    lines += [f"  only in A: {k}" for k in d["only_a"]]
    lines += [f"  only in B: {k}" for k in d["only_b"]]
    lines += [f"  shape: {r['key']} {r['shape_a']} -> {r['shape_b']}" for r in d["shape_changed"]]
    rows = d["changed"][:top] if top else d["changed"]
    if rows:
        width = max(len("tensor"), *(len(r["key"]) for r in rows))
        lines.append(f"{'tensor':<{width}}  {'l2(B-A)':>10}  {'rel':>10}  {'cosine':>10}  {'|A|':>10}")
        for r in rows:
            lines.append(f"{r['key']:<{width}}  {_fmt(r['l2']):>10}  {_fmt(r['rel']):>10}  "
                         f"{_fmt(r['cosine']):>10}  {_fmt(r['norm_a']):>10}")
        if top and len(d["changed"]) > top:
            lines.append(f"... {len(d['changed']) - top} more (--top 0 for all)")
    return "\n".join(lines)
