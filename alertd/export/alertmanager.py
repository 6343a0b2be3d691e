"""A sink that posts alert events to Alertmanager's v2 API, so a cluster's routing, grouping,
silences and inhibitions apply to alertd's alerts like to Prometheus'.

    am = AlertmanagerSink("http://127.0.0.1:9093")
    am.send(event)      # POST /api/v2/alerts; False: retry later (the Outbox does)
    am.refresh()        # every minute or so: re-post what is firing, before Alertmanager expires it

Alertmanager resolves an alert by itself once its endsAt passes, as Prometheus expects senders to
re-post firing alerts; alertd emits one firing event per episode, so the sink keeps the alerts it
has sent firing and `refresh()` re-posts them with a later endsAt.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable

from alertd.record import FIRING, AlertEvent

log = logging.getLogger(__name__)

TTL = 600.0  # seconds a posted firing alert stays firing in Alertmanager without a refresh
_OURS = ("alertname", "run", "severity")


def iso(t: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager parses it."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def label_name(name: str) -> str:
    """A label name Alertmanager accepts ([a-zA-Z_][a-zA-Z0-9_]*)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", name) or "_"
    return "_" + name if name[0].isdigit() else name


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """alertname, run and severity, then the event's labels (they never override those three)."""
    labels = {"alertname": event.rule, "run": event.run, "severity": event.severity}
    for k, v in event.labels.items():
        k = label_name(k)
        if k not in _OURS:
            labels[k] = str(v)
    return {k: v for k, v in labels.items() if v != ""}  # empty means "no label" to Alertmanager


class AlertmanagerSink:
    """Posts each event as one alert; keeps the firing ones to re-post them (`refresh`)."""

    def __init__(self, url: str, generator_url: str | None = None, ttl: float = TTL,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.generator_url = generator_url
        self.ttl, self.timeout, self.clock = ttl, timeout, clock
        self._firing: dict[str, dict[str, Any]] = {}  # event key -> the alert as last posted
        self._lock = threading.Lock()  # send() runs in the delivery thread, refresh() maybe not

    def alert(self, event: AlertEvent, now: float) -> dict[str, Any]:
        """The Alertmanager v2 alert for an event."""
        if event.state == FIRING:
            start, end = iso(event.time or now), iso(now + self.ttl)
        else:
            with self._lock:
                sent = self._firing.get(event.key())
            # A resolved alert must keep its episode's startsAt (endsAt before startsAt is
            # rejected); after a restart the sink no longer knows it: the resolve time will do.
            end = iso(event.time or now)
            start = sent["startsAt"] if sent else end
        value = {"value": f"{event.value:.6g}"} if event.value is not None else {}
        alert = {"labels": alert_labels(event),
                 "annotations": {"summary": event.summary, "description": event.description,
                                 "step": str(event.step), **value},
                 "startsAt": start, "endsAt": end}
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    def _post(self, alerts: list[dict[str, Any]]) -> str:
        """"ok", "refused" (400: the alert itself is invalid) or "retry"."""
        body = json.dumps(alerts).encode()
        req = urllib.request.Request(self.endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                r.read()
            return "ok"
        except urllib.error.HTTPError as e:
            detail = e.read()[:200].decode(errors="replace")
            e.close()
            if e.code == 400:  # Alertmanager rejected the alert itself: a retry cannot help
                log.error("alertmanager refused the alert (%s): %s", e.code, detail)
                return "refused"
            log.warning("alertmanager %s answered %s: %s", self.endpoint, e.code, detail)
            return "retry"
        except (OSError, ValueError) as e:  # refused, timed out, DNS: retry later
            log.warning("alertmanager %s unreachable: %s", self.endpoint, e)
            return "retry"

    def send(self, event: AlertEvent, tag: str | None = None) -> bool:
        """Post one event; True when Alertmanager took it (or refused it for good)."""
        alert = self.alert(event, self.clock())
        result = self._post([alert])
        if result != "retry":
            with self._lock:
                if event.state == FIRING and result == "ok":
                    self._firing[event.key()] = alert
                else:
                    self._firing.pop(event.key(), None)
        return result != "retry"

    def refresh(self) -> bool:
        """Re-post every alert still firing with endsAt pushed out by ttl; True when delivered."""
        now = self.clock()
        with self._lock:
            alerts = [{**a, "endsAt": iso(now + self.ttl)} for a in self._firing.values()]
        return not alerts or self._post(alerts) != "retry"

    def firing(self) -> int:
        """How many alerts this sink keeps firing in Alertmanager."""
        with self._lock:
            return len(self._firing)
