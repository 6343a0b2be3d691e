"""A Prometheus text-format endpoint: latest series values, alert states and record counts per run.

The server reads plain data from a function, so it never touches the engine while the daemon's
thread changes it: the daemon builds a snapshot after each batch and the function returns it.

    latest = LatestValues()
    latest.update(path, parsed.frame)                 # beside engine.feed(path, parsed)
    box = {"snap": {}}
    box["snap"] = snapshot(engine, latest)            # after each step (the daemon's thread)
    with MetricsServer(lambda: box["snap"], "127.0.0.1", 9464) as server:
        ...                                           # GET http://127.0.0.1:9464/metrics

A snapshot is {run: {"records": int, "values": {series: float},
                     "alerts": [{"rule": str, "state": "firing"|"pending", "labels": {str: str}}]}}.
"""
from __future__ import annotations

import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import polars as pl

from alertd.record import RESERVED

Snapshot = dict[str, dict[str, Any]]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_RESERVED_LABELS = ("run", "rule", "state", "series")


class LatestValues:
    """The last non-null value of each series of each run, updated from parsed batches."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, float]] = {}

    def update(self, run: str, frame: pl.DataFrame) -> None:
        """Fold one parsed batch (its last non-null value per metric column) in."""
        cols = [c for c in frame.columns if c not in RESERVED]
        if not cols or frame.height == 0:
            return
        last = frame.select(pl.col(c).drop_nulls().last() for c in cols).row(0, named=True)
        values = self.runs.setdefault(run, {})
        values.update({c: float(v) for c, v in last.items() if v is not None})


def snapshot(engine, latest: LatestValues | None = None) -> Snapshot:
    """Plain data for MetricsServer from an alertd.evaluate.Engine (call in the engine's thread)."""
    out: Snapshot = {}
    for name, run in engine.runs.items():
        alerts = []
        for inst in run.instances.values():
            state = inst.carry.state()
            if state in ("firing", "pending"):
                alerts.append({"rule": inst.rule.name, "state": state,
                               "labels": {**inst.rule.labels, **inst.labels}})
        alerts += [{"rule": rule, "state": "firing", "labels": {}}
                   for rule, carry in run.stale.items() if carry.firing]
        values = dict(latest.runs.get(name, {})) if latest else {}
        out[name] = {"records": run.records, "values": values, "alerts": alerts}
    return out


def label_name(name: str) -> str:
    """A valid Prometheus label name; ours (run, rule, state, series) are not overridden."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", name) or "_"
    if name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):  # reserved for Prometheus' internal use
        name = "label" + name
    return f"label_{name}" if name in _RESERVED_LABELS else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def exposition(snap: Snapshot) -> str:
    """The snapshot in Prometheus text format 0.0.4."""
    values, alerts, records = [], [], []
    for run in sorted(snap):
        data = snap[run]
        for series, value in sorted(data.get("values", {}).items()):
            values.append(f"alertd_series_value{_labels([('run', run), ('series', series)])} "
                          f"{_number(value)}")
        seen = set()
        for a in data.get("alerts", []):
            extra = {label_name(k): v for k, v in a.get("labels", {}).items()}
            pairs = [("run", run), ("rule", a["rule"]), ("state", a["state"]), *sorted(extra.items())]
            line = f"alertd_alert_state{_labels(pairs)} 1"
            if line not in seen:  # two instances can sanitize to the same label set
                seen.add(line)
                alerts.append(line)
        records.append(f"alertd_records_total{_labels([('run', run)])} {int(data.get('records', 0))}")
    out = []
    for name, kind, help_text, lines in [
        ("alertd_series_value", "gauge", "Latest value of each series of each run.", values),
        ("alertd_alert_state", "gauge", "Alerts pending or firing now (1), by run, rule and state.",
         alerts),
        ("alertd_records_total", "counter", "Records evaluated per run.", records),
    ]:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]
    return "\n".join(out) + "\n"


class MetricsServer:
    """Serves GET /metrics from snapshot_fn() on a daemon thread; 127.0.0.1 unless told otherwise."""

    def __init__(self, snapshot_fn: Callable[[], Snapshot], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.snapshot_fn = snapshot_fn
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                try:
                    body = exposition(server.snapshot_fn()).encode()
                except Exception as e:  # a bad snapshot must not kill the server thread
                    self.send_error(500, explain=type(e).__name__)
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # scrapes every few seconds would flood the daemon's stderr

        return Handler

    def start(self) -> "MetricsServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="alertd-metrics",
                                        daemon=True, kwargs={"poll_interval": 0.2})
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "MetricsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
