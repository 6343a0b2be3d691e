"""Annotation templates: `{{ value }}`, `{{ labels.series }}`, `{{ vars.num_classes | .0f }}`.

A placeholder names a field and optionally a format spec after `|`; it is looked up in a
plain mapping (never attribute access, never eval), so a rule file cannot reach into Python.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*(?:\|\s*([^}]*?)\s*)?\}\}")
_SPEC = re.compile(r"^[<>^=]?[+\- ]?#?0?\d*[,_]?(?:\.\d+)?[eEfFgG%d]?$")


def check(text: str) -> list[str]:
    """Problems in a template (bad format specs); fields are checked when rendered."""
    return [f"bad format spec {m.group(2)!r} in {m.group(0)!r}"
            for m in PLACEHOLDER.finditer(text) if m.group(2) and not _SPEC.match(m.group(2))]


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _format(value: Any, spec: str | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if not spec:
            return f"{value:.6g}"
    if spec:
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            return str(value)
    return str(value)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Fill every placeholder from `context`; an unknown field renders as '?'."""
    return PLACEHOLDER.sub(lambda m: _format(_lookup(context, m.group(1)), m.group(2)), text)
