"""A small PNG of the series that tripped a rule: its lead-up, the threshold and the firing point.

Drawn with Pillow (the optional extra `report`): a line chart needs lines, text and a PNG encoder,
which Pillow has in ~5 MB, where matplotlib with numpy adds ~50 MB to a daemon that otherwise
holds ~95. Without Pillow `render_event` returns None and the notification goes out as text.

    path = render_event(event, "/tmp/alertd-pics")       # None: no points, or no Pillow
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
from alertd.report.axes import fmt, nice_ticks, value_range

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 320
SERIES_COLOR = "#1f77b4"     # the series
THRESHOLD_COLOR = "#d62728"  # the limit the value was compared with
FIRING_COLOR = "#ff7f0e"     # the point where the alert fired
RESOLVED_COLOR = "#2ca02c"   # ... or resolved
GRID_COLOR, AXIS_COLOR, TEXT_COLOR = "#dddddd", "#555555", "#222222"
# The plot area inside the picture: room for y tick labels on the left, the title on top, x tick
# labels and the x label below.
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 28, 44


def available() -> bool:
    """True when Pillow can be imported (the `report` extra is installed)."""
    try:
        import PIL.ImageDraw  # noqa: F401  (the import is the check)
    except ImportError:
        return False
    return True


def title_of(event: AlertEvent) -> str:
    """Rule, run (file name) and the series the alert is about."""
    series = ", ".join(f"{k}={v}" for k, v in event.labels.items() if k != "severity")
    run = os.path.basename(event.run) or event.run
    return f"{event.rule} · {run}" + (f" · {series}" if series else "")


def render_png(points: Sequence[tuple[int, float]], threshold: float | None, mark_step: int | None,
               title: str, subtitle: str = "", mark_color: str = FIRING_COLOR,
               size: tuple[int, int] = (WIDTH, HEIGHT)) -> bytes:
    """PNG bytes of a line plot of (step, value) points, a threshold line and a marked step."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    small, big = ImageFont.load_default(size=11), ImageFont.load_default(size=13)
    x0, x1, y0, y1 = LEFT, width - RIGHT, TOP, height - BOTTOM   # the plot area, y0 at the top
    steps = [s for s, _ in points]
    finite = [v for _, v in points if math.isfinite(v)]
    show_threshold = threshold is not None and math.isfinite(threshold)
    slo, shi = (min(steps), max(steps)) if steps else (0, 1)
    if slo == shi:
        slo, shi = slo - 1, shi + 1
    drawn = finite + ([threshold] if show_threshold else [])
    vlo, vhi = value_range(min(drawn), max(drawn)) if drawn else (0.0, 1.0)

    def px(step: float) -> float:
        return x0 + (step - slo) / (shi - slo) * (x1 - x0)

    def py(value: float) -> float:
        return y1 - (value - vlo) / (vhi - vlo) * (y1 - y0)

    for v in nice_ticks(vlo, vhi):
        y = py(v)
        draw.line([(x0, y), (x1, y)], fill=GRID_COLOR)
        draw.text((x0 - 6, y), fmt(v), fill=TEXT_COLOR, font=small, anchor="rm")
    for s in nice_ticks(slo, shi):
        x = px(s)
        draw.line([(x, y0), (x, y1)], fill=GRID_COLOR)
        draw.text((x, y1 + 6), fmt(s), fill=TEXT_COLOR, font=small, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline=AXIS_COLOR)
    # Non-finite values break the line and get a tick at the top of the plot area.
    run: list[tuple[float, float]] = []
    for s, v in list(points) + [(0, math.nan)]:
        if math.isfinite(v):
            run.append((px(s), py(v)))
            continue
        if len(run) > 1:
            draw.line(run, fill=SERIES_COLOR, width=2, joint="curve")
        elif run:
            draw.point(run, fill=SERIES_COLOR)
        run = []
    for s, v in points:
        if not math.isfinite(v):
            draw.line([(px(s), y0), (px(s), y0 + 10)], fill=THRESHOLD_COLOR, width=2)
    if show_threshold:
        y = py(threshold)
        draw.line([(x0, y), (x1, y)], fill=THRESHOLD_COLOR, width=2)
        draw.text((x0 + 8, y0 + 6), f"threshold {threshold:.4g}", fill=THRESHOLD_COLOR, font=small)
    if mark_step is not None:
        value = dict(points).get(mark_step)
        if value is not None and math.isfinite(value):
            x, y = px(mark_step), py(value)
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=mark_color)
        else:  # the value itself is NaN/inf: mark the step instead
            draw.line([(px(mark_step), y0), (px(mark_step), y1)], fill=mark_color, width=2)
    draw.text(((x0 + x1) / 2, y0 - 8), title, fill=TEXT_COLOR, font=big, anchor="ms")
    draw.text(((x0 + x1) / 2, height - 6), "step" + (f"   ({subtitle})" if subtitle else ""),
              fill=TEXT_COLOR, font=small, anchor="md")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _file_name(event: AlertEvent) -> str:
    # Deterministic per event: AppriseSink keys its partial-retry memory on the attach path, so a
    # retried event must get the same path (and mail clients show this name).
    digest = hashlib.sha1(f"{event.key()}|{event.state}|{event.step}".encode()).hexdigest()[:10]
    rule = re.sub(r"[^A-Za-z0-9_.-]+", "_", event.rule)[:60]
    return f"{rule}-{event.state}-step{event.step}-{digest}.png"


def render_event(event: AlertEvent, directory: str) -> str | None:
    """Write the event's picture into directory; its path, or None (no points, no Pillow)."""
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
