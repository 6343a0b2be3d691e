"""Turn an AlertEvent into the title, body and apprise notify type of a notification."""
from __future__ import annotations

import math
import os

from apprise import NotifyType

from alertd.record import RESOLVED, AlertEvent

# Severity of a firing alert -> apprise notify type (drives colour/icon in chat services).
# Plain strings (the enum's values), so the result prints and serialises as "failure" etc.
_TYPES = {"critical": NotifyType.FAILURE.value, "error": NotifyType.FAILURE.value,
          "page": NotifyType.FAILURE.value, "warning": NotifyType.WARNING.value,
          "info": NotifyType.INFO.value}


def fmt_value(value: float | None) -> str:
    """A metric value for people: 6 significant digits, `nan`/`inf` as such, `n/a` when absent."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


def title(event: AlertEvent) -> str:
    """One line: state, rule, run file name and step, e.g. `[FIRING] CEAtChance · run train.jsonl · step 312`."""
    return (f"[{event.state.upper()}] {event.rule} · run {os.path.basename(event.run) or event.run}"
            f" · step {event.step}")


def body(event: AlertEvent) -> str:
    """Plain-text body naming run, rule, step, value, state, severity, labels, summary, description."""
    verb = "resolved" if event.state == RESOLVED else "is firing"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items())) or "-"
    lines = [
        f"{event.rule} {verb} ({event.severity})",
        event.summary,
        "",
        f"run:      {event.run}",
        f"rule:     {event.rule}",
        f"state:    {event.state}",
        f"step:     {event.step}",
        f"value:    {fmt_value(event.value)}",
        f"severity: {event.severity}",
        f"labels:   {labels}",
    ]
    if event.action:
        lines.append(f"action:   {event.action}")
    if event.description:
        lines += ["", event.description]
    return "\n".join(lines)


def notify_type(event: AlertEvent) -> str:
    """apprise NotifyType: resolved -> success; firing critical -> failure, warning -> warning, info -> info."""
    if event.state == RESOLVED:
        return NotifyType.SUCCESS.value
    return _TYPES.get(event.severity.lower(), NotifyType.WARNING.value)
