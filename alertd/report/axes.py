"""Axis arithmetic shared by the notification PNG (plot.py) and the report's SVG (svg.py)."""
from __future__ import annotations

import math


def fmt(v: float) -> str:
    """A value as an axis label shows it."""
    return f"{v:.4g}"


def value_range(lo: float, hi: float) -> tuple[float, float]:
    """The range to draw values lo..hi in: padded by 5%, a constant series given some room."""
    if lo == hi:  # a constant series: give it some room instead of dividing by zero
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi], at most `most`."""
    raw = (hi - lo) / max(most - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]
