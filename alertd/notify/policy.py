"""Which alert events become notifications: repeat, silence, group by run, bound storms.

The daemon calls `decide(events, now)` with each batch the engine emits and `tick(now)` when
`next_due(now)` says so; both return the notifications to put in the outbox. Time is always passed in
(wall-clock seconds), so tests step it.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Iterable

from alertd.notify import files
from alertd.notify.render import fmt_value
from alertd.notify.silence import Silences
from alertd.record import FIRING, RESOLVED, AlertEvent

_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3, "page": 3}


def needs_sending(state: str, last_sent: float | None, now: float,
                  repeat_interval: float | None) -> bool:
    """The resend decision for one unsilenced alert (Prometheus' needsSending, for transitions).

    last_sent: when this alert's firing was last notified, None if never (reset by a resolve).
    """
    if state == RESOLVED:
        return last_sent is not None   # announce the end only of what was announced
    if last_sent is None:
        return True                    # new, or its silence ended while it still fires
    # Still firing and already announced (also: the engine re-fired it after a restart).
    return repeat_interval is not None and now - last_sent >= repeat_interval


def digest(events: list[AlertEvent], now: float, name: str) -> AlertEvent:
    """One event standing for several: the list goes in the description, one line each."""
    runs = sorted({e.run for e in events})
    firing = sum(e.state == FIRING for e in events)
    lines = [f"[{e.state.upper()}] {e.rule} · {os.path.basename(e.run)} · step {e.step}"
             f" · value {fmt_value(e.value)} · {e.summary}" for e in events]
    return AlertEvent(
        rule=f"{name} ({len(events)} alerts)", state=FIRING if firing else RESOLVED,
        run=runs[0] if len(runs) == 1 else f"{len(runs)} runs", step=max(e.step for e in events),
        value=None, severity=max((e.severity for e in events), key=lambda s: _RANK.get(s, 1)),
        labels={"alerts": str(len(events))},
        summary=f"{firing} firing, {len(events) - firing} resolved", description="\n".join(lines),
        time=now)


@dataclass
class _Alert:
    event: AlertEvent          # the latest firing event of this alert
    last_sent: float | None    # when its firing was last notified


class Policy:
    """Repeat firing alerts every repeat_interval, drop silenced ones, group a batch by run, and turn
    more than storm_limit notifications per storm_window seconds into one digest.

        policy = Policy(repeat_interval=4 * 3600, silences=Silences(state_dir), state_dir=state_dir)
        for n in policy.decide(events, time.time()):
            outbox.put(n)

    With a state_dir the firing alerts and when they were sent survive a restart, so an engine that
    re-fires the same incident after restarting does not page twice.
    """

    def __init__(self, repeat_interval: float | None = 4 * 3600.0, storm_limit: int = 20,
                 storm_window: float = 60.0, group_by_run: bool = True,
                 silences: Silences | None = None, state_dir: str | None = None) -> None:
        self.repeat_interval = repeat_interval
        self.storm_limit = storm_limit
        self.storm_window = storm_window
        self.group_by_run = group_by_run
        self.silences = silences or Silences(None)
        self._path = None if state_dir is None else os.path.join(state_dir, "policy.json")
        self._alerts: dict[str, _Alert] = {}
        self._sent: deque[float] = deque()      # times of notifications inside the storm window
        self._held: list[AlertEvent] = []       # notifications over the storm bound
        if self._path is not None:
            files.ensure_dir(state_dir)  # type: ignore[arg-type]
            for key, d in files.read_json(self._path, {}).items():
                self._alerts[key] = _Alert(AlertEvent.from_dict(d["event"]), d["last_sent"])

    def decide(self, events: Iterable[AlertEvent], now: float) -> list[AlertEvent]:
        """Record these transitions and return the notifications to send now."""
        chosen, seen = [], 0
        for seen, event in enumerate(events, 1):
            key = event.key()
            alert = self._alerts.get(key)
            last_sent = alert.last_sent if alert else None
            send = (not self.silences.silenced(event, now)
                    and needs_sending(event.state, last_sent, now, self.repeat_interval))
            if event.state == RESOLVED:
                self._alerts.pop(key, None)
            else:
                self._alerts[key] = _Alert(event, now if send else last_sent)
            if send:
                chosen.append(event)
        out = self._emit(self._grouped(chosen, now), now)
        if seen:
            self._save()
        return out

    def tick(self, now: float) -> list[AlertEvent]:
        """Repeats that are due and a storm digest whose window has room; call it periodically."""
        due = []
        for alert in self._alerts.values():
            if (not self.silences.silenced(alert.event, now)
                    and needs_sending(FIRING, alert.last_sent, now, self.repeat_interval)):
                alert.last_sent = now
                due.append(alert.event)
        out = self._emit(self._grouped(due, now), now)
        if due:
            self._save()
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until tick() may have something to send; None when nothing is waiting."""
        times = []
        if self._held and self._sent:
            times.append(self._sent[0] + self.storm_window - now)
        elif self._held:
            times.append(0.0)
        for a in self._alerts.values():
            if a.last_sent is None:  # silenced: look again when its last silence ends
                ends = [s.expires for s in self.silences.active(now) if s.matches(a.event, now)]
                times.append(max(ends) - now if ends else 0.0)
            elif self.repeat_interval is not None:
                times.append(a.last_sent + self.repeat_interval - now)
        return max(0.0, min(times)) if times else None

    def _grouped(self, events: list[AlertEvent], now: float) -> list[AlertEvent]:
        if not self.group_by_run:
            return events
        runs: dict[str, list[AlertEvent]] = {}
        for e in events:
            runs.setdefault(e.run, []).append(e)
        return [g[0] if len(g) == 1 else digest(g, now, "group") for g in runs.values()]

    def _emit(self, events: list[AlertEvent], now: float) -> list[AlertEvent]:
        while self._sent and self._sent[0] <= now - self.storm_window:
            self._sent.popleft()
        out = []
        if self._held and len(self._sent) < self.storm_limit:
            out.append(digest(self._held, now, "storm digest"))
            self._held = []
            self._sent.append(now)
        for e in events:
            if len(self._sent) < self.storm_limit:
                out.append(e)
                self._sent.append(now)
            else:
                self._held.append(e)
        return out

    def _save(self) -> None:
        if self._path is not None:
            files.write_json(self._path, {k: {"event": a.event.to_dict(), "last_sent": a.last_sent}
                                          for k, a in self._alerts.items()})
