"""Alert pictures: a real 640x320 PNG with the threshold and the firing point drawn, mailed as an attachment."""
import math
import os
import struct
import sys

import pytest
from PIL import Image

from alertd.notify.apprise_sink import AppriseSink
from alertd.notify.outbox import Outbox
from alertd.record import FIRING, RESOLVED, AlertEvent
from alertd.report import plot
from receivers import SMTPReceiver


@pytest.fixture(autouse=True, scope="module")
def apprise_worker_pool():
    """apprise's process-wide worker thread lives as long as the process (see test_notify_apprise)."""
    from apprise.apprise import get_shared_executor
    get_shared_executor().submit(lambda: None).result()
    yield


def spike(threshold: float | None = 3.0, state: str = FIRING) -> AlertEvent:
    # 100 records near 2.0, then a jump to ~3.5 from step 70; the alert fires on the last one.
    pts = tuple((s, 2.0 + 0.2 * math.sin(s / 10) + (1.5 if s > 70 else 0.0)) for s in range(100))
    return AlertEvent(rule="LossSpike", state=state, run="/runs/exp7/train.jsonl", step=99,
                      value=pts[-1][1], severity="warning", labels={"loss": "train/loss"},
                      summary="train/loss jumped", threshold=threshold, points=pts)


def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def pixels_of(path: str, color: str, tol: int = 12) -> list[tuple[int, int]]:
    """(x, y) of every pixel within tol of color."""
    img = Image.open(path).convert("RGB")
    (r, g, b), width, raw = rgb(color), img.size[0], img.tobytes()  # RGB bytes, row by row
    return [(i // 3 % width, i // 3 // width) for i in range(0, len(raw), 3)
            if abs(raw[i] - r) <= tol and abs(raw[i + 1] - g) <= tol and abs(raw[i + 2] - b) <= tol]


def threshold_rows(path: str) -> list[int]:
    """Rows where the threshold colour runs across most of the axes."""
    rows: dict[int, int] = {}
    for _, y in pixels_of(path, plot.THRESHOLD_COLOR):
        rows[y] = rows.get(y, 0) + 1
    return sorted(y for y, n in rows.items() if n > 400)


def test_png_is_real_and_of_the_right_size(tmp_path):
    path = plot.render_event(spike(), str(tmp_path))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (640, 320)
    assert Image.open(path).size == (640, 320)
    assert os.path.basename(path).startswith("LossSpike-firing-step99-")


def test_threshold_line_and_marker_are_drawn_where_the_data_says(tmp_path):
    low = plot.render_event(spike(threshold=2.5), str(tmp_path / "low"))
    high = plot.render_event(spike(threshold=3.3), str(tmp_path / "high"))
    (low_rows, high_rows) = threshold_rows(low), threshold_rows(high)
    assert low_rows and high_rows
    assert max(high_rows) < min(low_rows)  # a higher threshold is drawn higher up
    marker = pixels_of(low, plot.FIRING_COLOR)
    assert len(marker) > 40
    cx = sum(x for x, _ in marker) / len(marker)
    cy = sum(y for _, y in marker) / len(marker)
    assert cx > 0.8 * 640           # the firing step is the last point, at the right
    assert cy < min(low_rows)       # its value (3.4) is above the threshold (2.5)
    assert not pixels_of(low, plot.RESOLVED_COLOR)


def test_no_threshold_no_line_and_resolved_marker_is_green(tmp_path):
    path = plot.render_event(spike(threshold=None, state=RESOLVED), str(tmp_path))
    assert threshold_rows(path) == []
    assert len(pixels_of(path, plot.RESOLVED_COLOR)) > 40
    assert not pixels_of(path, plot.FIRING_COLOR)


def test_nan_value_marks_the_step(tmp_path):
    pts = tuple((s, 1.0 / (s + 1)) for s in range(50)) + ((50, math.nan),)
    event = AlertEvent(rule="NonFiniteMetric", state=FIRING, run="r.jsonl", step=50, value=math.nan,
                       severity="critical", labels={"metric": "train/loss"}, summary="nan",
                       points=pts)
    path = plot.render_event(event, str(tmp_path))
    columns = {x for x, _ in pixels_of(path, plot.FIRING_COLOR)}
    assert columns and max(columns) - min(columns) < 6  # a vertical line at the step


def test_no_points_no_picture(tmp_path):
    event = AlertEvent(rule="Stalled", state=FIRING, run="r", step=3, value=60.0,
                       severity="warning", labels={}, summary="silent")
    assert plot.render_event(event, str(tmp_path)) is None


def mailto(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=alertd@example.com&to=ops@example.com"


def sink_for(smtp: SMTPReceiver) -> AppriseSink:
    sink = AppriseSink([mailto(smtp.port)])
    for service in sink.services:
        service.request_rate_per_sec = 0  # apprise's email plugin waits 5.5 s between sends
    return sink


def png_parts(msg) -> list[bytes]:
    return [part.get_payload(decode=True) for part in msg.walk()
            if part.get_content_type() == "image/png"]


def test_email_carries_the_png(tmp_path):
    path = plot.render_event(spike(), str(tmp_path))
    with SMTPReceiver() as smtp:
        assert sink_for(smtp).send(spike(), attach=path)
        (msg,) = smtp.messages
    assert msg["Subject"].startswith("[FIRING] LossSpike")
    (png,) = png_parts(msg)
    assert png == open(path, "rb").read()


def test_outbox_send_with_picture_attaches_then_cleans_up(tmp_path):
    pics = tmp_path / "pics"
    with SMTPReceiver() as smtp:
        box = Outbox(None, plot.with_picture(sink_for(smtp).send, str(pics)))
        box.put(spike())
        assert box.pump() == 1
        (msg,) = smtp.messages
    (png,) = png_parts(msg)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(__import__("io").BytesIO(png)).size == (640, 320)
    assert list(pics.iterdir()) == []  # the file is removed once sent


def test_without_pillow_the_mail_goes_out_without_picture(tmp_path, monkeypatch):
    # As if the `report` extra were not installed: `import PIL.ImageDraw` raises ImportError.
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert not plot.available()
    with SMTPReceiver() as smtp:
        box = Outbox(None, plot.with_picture(sink_for(smtp).send, str(tmp_path)))
        box.put(spike())
        assert box.pump() == 1
        (msg,) = smtp.messages
    assert msg["Subject"].startswith("[FIRING] LossSpike") and png_parts(msg) == []
