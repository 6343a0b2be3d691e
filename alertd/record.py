"""The data that flows from parsers through the engine to notifiers.

A parsed batch is a polars frame, one row per record, with two reserved columns
(STEP, LINE) and one Float64 column per metric, named exactly as written in the log
(`train/loss_text`, `dbg/grad_flow`). A metric missing from a record is null; NaN and
+-inf are values. The engine adds TIME (arrival time, seconds since the epoch).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

STEP = "_step"   # Int64: the record's training step
LINE = "_line"   # Int64: 1-based line number of the record in its file
TIME = "_time"   # Float64: when the record was read (live) or replayed
RESERVED = (STEP, LINE, TIME)


@dataclass
class Parsed:
    """What a parser returns for one chunk of complete lines."""

    frame: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)  # variables from meta records
    bad_lines: int = 0
    first_bad_line: int | None = None
    first_bad_reason: str = ""

    @staticmethod
    def empty() -> "Parsed":
        return Parsed(pl.DataFrame(schema={STEP: pl.Int64, LINE: pl.Int64}))

    def metric_names(self) -> list[str]:
        return [c for c in self.frame.columns if c not in RESERVED]


FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertEvent:
    """One transition of one alert: it started firing, or it resolved."""

    rule: str
    state: str            # FIRING or RESOLVED
    run: str              # the file path as given
    step: int
    value: float | None
    severity: str
    labels: dict[str, str]
    summary: str
    description: str = ""
    time: float = 0.0     # wall-clock seconds when the engine emitted it
    action: str | None = None  # e.g. "stop" (alertd watch)
    threshold: float | None = None  # the limit the value was compared with, if there is one
    points: tuple = ()         # (step, value) pairs of the series up to this event, for a plot

    def key(self) -> str:
        """Identity of the alert this event belongs to (run, rule, labels)."""
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.run}|{self.rule}|{labels}"

    def to_dict(self, with_points: bool = False) -> dict[str, Any]:
        """JSON-able form; the plot points only when asked (the outbox keeps them, stdout not)."""
        value = _finite_or_str(self.value)
        return {
            "rule": self.rule, "state": self.state, "run": self.run, "step": self.step,
            "value": value, "severity": self.severity, "labels": dict(self.labels),
            "summary": self.summary, "description": self.description, "time": self.time,
            **({"action": self.action} if self.action else {}),
            **({"threshold": _finite_or_str(self.threshold)} if self.threshold is not None else {}),
            **({"points": [[s, _finite_or_str(v)] for s, v in self.points]}
               if with_points and self.points else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "AlertEvent":
        value = d.get("value")
        if isinstance(value, str):
            value = float(value)
        return AlertEvent(rule=d["rule"], state=d["state"], run=d["run"], step=int(d["step"]),
                          value=value, severity=d.get("severity", "warning"),
                          labels=dict(d.get("labels", {})), summary=d.get("summary", ""),
                          description=d.get("description", ""), time=float(d.get("time", 0.0)),
                          action=d.get("action"),
                          threshold=None if d.get("threshold") is None else float(d["threshold"]),
                          points=tuple((int(s), float(v)) for s, v in d.get("points", [])))


def _finite_or_str(value):
    """Numbers for JSON; "nan"/"inf"/"-inf" as strings, so the JSON stays strict."""
    if value is not None and not math.isfinite(value):
        return str(value)
    return value
