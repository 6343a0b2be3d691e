"""A small PNG of the series that tripped a rule: its lead-up, the threshold and the firing point.

Needs matplotlib (the optional extra `report`); without it `render_event` returns None and the
notification goes out without a picture.

    path = render_event(event, "/tmp/alertd-pics")       # None: no points, or no matplotlib
    sink.send(event, attach=path)
    send = with_picture(sink.send, "/tmp/alertd-pics")   # the same, as an Outbox send function
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
from typing import Callable, Sequence

from alertd.record import FIRING, AlertEvent

log = logging.getLogger(__name__)

WIDTH, HEIGHT, DPI = 640, 320, 100
SERIES_COLOR = "#1f77b4"     # the series
THRESHOLD_COLOR = "#d62728"  # the limit the value was compared with
FIRING_COLOR = "#ff7f0e"     # the point where the alert fired
RESOLVED_COLOR = "#2ca02c"   # ... or resolved


def available() -> bool:
    """True when matplotlib can be imported (the `report` extra is installed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def warm_up() -> None:
    """Import matplotlib and draw once, so the first notification does not pay ~1 s for it."""
    if available():
        render_png([(0, 0.0), (1, 1.0)], 0.5, 1, "warm-up")


def title_of(event: AlertEvent) -> str:
    """Rule, run (file name) and the series the alert is about."""
    series = ", ".join(f"{k}={v}" for k, v in event.labels.items() if k != "severity")
    run = os.path.basename(event.run) or event.run
    return f"{event.rule} · {run}" + (f" · {series}" if series else "")


def render_png(points: Sequence[tuple[int, float]], threshold: float | None, mark_step: int | None,
               title: str, subtitle: str = "", mark_color: str = FIRING_COLOR,
               size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    """PNG bytes of a line plot of (step, value) points, a threshold line and a marked step."""
    # The object API with an Agg canvas, not pyplot: no global figure registry, safe in any thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = [s for s, _ in points]
    # Non-finite values leave a gap in the line (matplotlib skips NaN) and get a tick at the top.
    values = [v if math.isfinite(v) else math.nan for _, v in points]
    ax.set_axisbelow(True)  # grid lines under the data and the threshold
    ax.plot(steps, values, color=SERIES_COLOR, linewidth=1.5, zorder=2)
    bad = [s for s, v in points if not math.isfinite(v)]
    if bad:
        ax.plot(bad, [1.0] * len(bad), "|", color=THRESHOLD_COLOR, markersize=10,
                transform=ax.get_xaxis_transform(), zorder=3)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color=THRESHOLD_COLOR, linewidth=2, zorder=3,
                   label=f"threshold {threshold:.4g}")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    if mark_step is not None:
        by_step = dict(points)
        value = by_step.get(mark_step)
        if value is not None and math.isfinite(value):
            ax.plot([mark_step], [value], "o", color=mark_color, markersize=10, zorder=4)
        else:  # the value itself is NaN/inf: mark the step instead
            ax.axvline(mark_step, color=mark_color, linewidth=2, zorder=4)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step" + (f"   ({subtitle})" if subtitle else ""), fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox_inches="tight": it would change the size
    return buf.getvalue()


def _file_name(event: AlertEvent) -> str:
    # Deterministic per event: AppriseSink keys its partial-retry memory on the attach path, so a
    # retried event must get the same path (and mail clients show this name).
    digest = hashlib.sha1(f"{event.key()}|{event.state}|{event.step}".encode()).hexdigest()[:10]
    rule = re.sub(r"[^A-Za-z0-9_.-]+", "_", event.rule)[:60]
    return f"{rule}-{event.state}-step{event.step}-{digest}.png"


def render_event(event: AlertEvent, directory: str) -> str | None:
    """Write the event's picture into directory; its path, or None (no points, no matplotlib)."""
    if not event.points or not available():
        return None
    value = "?" if event.value is None else f"{event.value:.6g}"
    color = FIRING_COLOR if event.state == FIRING else RESOLVED_COLOR
    try:
        data = render_png(event.points, event.threshold, event.step, title_of(event),
                          f"{event.state} at step {event.step}, value {value}", color)
    except Exception as e:  # a picture is a nicety: never let it stop the notification
        log.warning("cannot draw %s: %s: %s", event.key(), type(e).__name__, e)
        return None
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, _file_name(event))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def with_picture(send: Callable[..., bool], directory: str) -> Callable[..., bool]:
    """Wrap `send(event, tag=None, attach=None)` (AppriseSink.send) into an Outbox send function."""
    def send_with_picture(event: AlertEvent, tag: str | None = None) -> bool:
        path = render_event(event, directory)
        try:
            return send(event, tag=tag, attach=path)
        finally:
            if path is not None:
                try:
                    os.remove(path)
                except OSError:
                    pass
    return send_with_picture
