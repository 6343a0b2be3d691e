"""Which alert events become notifications: repeat, silence, group by run, bound storms.

The daemon calls `plan(events, now)` with each batch the engine emits and `plan_tick(now)` on each
pass; both return the Notifications to put in the outbox (`decide`/`tick` return just their events).
Time is always passed in (wall-clock seconds), so tests step it. Each Notification carries the ids of
the alert events it stands for, so an outbox that has journaled them already can drop a repeat of
the same decision made again after a crash (see alertd/persist.py).
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from alertd import statefile as files
from alertd.notify.render import fmt_value
from alertd.notify.routes import Routes
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


def event_id(event: AlertEvent) -> str:
    """Idempotency key of one alert event: run|rule|labels|state|step (the same after a re-evaluation)."""
    return f"{event.key()}|{event.state}|{event.step}"


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
class Notification:
    """What goes into the outbox: an event (maybe a digest), the apprise tag, the alert events behind it."""

    event: AlertEvent
    ids: tuple[str, ...]
    tag: str | None = None
    members: tuple[AlertEvent, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the daemon's state file)."""
        return {"event": self.event.to_dict(), "ids": list(self.ids), "tag": self.tag,
                "members": [m.to_dict() for m in self.members]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Notification":
        return Notification(AlertEvent.from_dict(d["event"]), tuple(d.get("ids", ())), d.get("tag"),
                            tuple(AlertEvent.from_dict(m) for m in d.get("members", ())))


def _single(event: AlertEvent, nid: str, tag: str | None) -> Notification:
    return Notification(event, (nid,), tag, (event,))


@dataclass
class _Alert:
    event: AlertEvent          # the latest firing event of this alert
    last_sent: float | None    # when its firing was last notified
    repeats: int = 0           # repeats sent for this episode (part of a repeat's id)


class Policy:
    """Repeat firing alerts every repeat_interval, drop silenced ones, route to apprise tags, group a
    batch by run, and turn more than storm_limit notifications per storm_window seconds into one digest.

        policy = Policy(repeat_interval=4 * 3600, silences=Silences(state_dir), state_dir=state_dir)
        for n in policy.decide(events, time.time()):
            outbox.put(n)

    With a state_dir the firing alerts and when they were sent survive a restart, so an engine that
    re-fires the same incident after restarting does not page twice. The daemon instead keeps
    `to_dict()` in its one state file, beside the engine state it belongs with.
    """

    def __init__(self, repeat_interval: float | None = 4 * 3600.0, storm_limit: int = 20,
                 storm_window: float = 60.0, group_by_run: bool = True,
                 silences: Silences | None = None, state_dir: str | None = None,
                 routes: Routes | None = None, send_resolved: bool = True) -> None:
        self.repeat_interval = repeat_interval
        self.send_resolved = send_resolved
        self.storm_limit = storm_limit
        self.storm_window = storm_window
        self.group_by_run = group_by_run
        self.silences = silences or Silences(None)
        self.routes = routes or Routes()
        self._path = None if state_dir is None else os.path.join(state_dir, "policy.json")
        self._alerts: dict[str, _Alert] = {}
        self._sent: deque[float] = deque()      # times of notifications inside the storm window
        self._held: list[Notification] = []     # notifications over the storm bound
        if self._path is not None:
            files.ensure_dir(state_dir)  # type: ignore[arg-type]
            self.load_dict(files.read_json(self._path, {}))

    # -- decisions -------------------------------------------------------------------------
    def plan(self, events: Iterable[AlertEvent], now: float,
             known: Callable[[str], bool] | None = None) -> list[Notification]:
        """Record these transitions; return the notifications to send now, leaving out alert events
        for which `known(id)` is true (already journaled before a crash)."""
        chosen, seen = [], 0
        for seen, event in enumerate(events, 1):
            key = event.key()
            alert = self._alerts.get(key)
            last_sent = alert.last_sent if alert else None
            send = (not self.silences.silenced(event, now)
                    and needs_sending(event.state, last_sent, now, self.repeat_interval)
                    and (self.send_resolved or event.state != RESOLVED))
            if event.state == RESOLVED:
                self._alerts.pop(key, None)
            elif alert is not None and not send:
                alert.event = event
            else:
                self._alerts[key] = _Alert(event, now if send else last_sent)
            if send:
                chosen.append(_single(event, event_id(event), self.routes.tag(event)))
        if known is not None:
            chosen = [n for n in chosen if not known(n.ids[0])]
        out = self._emit(self._grouped(chosen, now), now)
        if seen:
            self._save()
        return out

    def plan_tick(self, now: float, known: Callable[[str], bool] | None = None) -> list[Notification]:
        """Repeats that are due (and announcements of alerts whose silence ended), and a storm digest
        whose window has room; call it periodically."""
        due = []
        for alert in self._alerts.values():
            if (not self.silences.silenced(alert.event, now)
                    and needs_sending(FIRING, alert.last_sent, now, self.repeat_interval)):
                nid = event_id(alert.event)
                if alert.last_sent is not None:
                    alert.repeats += 1
                    nid += f"|repeat{alert.repeats}"
                alert.last_sent = now
                due.append(_single(alert.event, nid, self.routes.tag(alert.event)))
        if known is not None:
            due = [n for n in due if not known(n.ids[0])]
        out = self._emit(self._grouped(due, now), now)
        if due:
            self._save()
        return out

    def decide(self, events: Iterable[AlertEvent], now: float) -> list[AlertEvent]:
        """Record these transitions and return the events to notify now."""
        return [n.event for n in self.plan(events, now)]

    def tick(self, now: float) -> list[AlertEvent]:
        """Repeats that are due and a storm digest whose window has room."""
        return [n.event for n in self.plan_tick(now)]

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

    # -- shaping ---------------------------------------------------------------------------
    def _grouped(self, notes: list[Notification], now: float) -> list[Notification]:
        if not self.group_by_run:
            return notes
        groups: dict[tuple, list[Notification]] = {}
        for n in notes:
            groups.setdefault((n.event.run, n.tag), []).append(n)
        return [g[0] if len(g) == 1 else _merge(g, now, "group") for g in groups.values()]

    def _emit(self, notes: list[Notification], now: float) -> list[Notification]:
        while self._sent and self._sent[0] <= now - self.storm_window:
            self._sent.popleft()
        out = []
        if self._held and len(self._sent) < self.storm_limit:
            tags: dict[str | None, list[Notification]] = {}
            for n in self._held:
                tags.setdefault(n.tag, []).append(n)
            for held in tags.values():  # one digest per destination
                out.append(_merge(held, now, "storm digest"))
                self._sent.append(now)
            self._held = []
        for n in notes:
            if len(self._sent) < self.storm_limit:
                out.append(n)
                self._sent.append(now)
            else:
                self._held.append(n)
        return out

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything the policy remembers, as JSON-able data."""
        return {"alerts": {k: {"event": a.event.to_dict(), "last_sent": a.last_sent, "repeats": a.repeats}
                           for k, a in self._alerts.items()},
                "sent": list(self._sent), "held": [n.to_dict() for n in self._held]}

    def load_dict(self, data: dict[str, Any]) -> None:
        """Restore what to_dict() returned (also reads the older {key: alert} policy.json form)."""
        alerts = data.get("alerts", data) if "held" in data or "sent" in data else data
        self._alerts = {k: _Alert(AlertEvent.from_dict(d["event"]), d["last_sent"], int(d.get("repeats", 0)))
                        for k, d in alerts.items() if isinstance(d, dict) and "event" in d}
        self._sent = deque(float(t) for t in data.get("sent", []))
        self._held = [Notification.from_dict(n) for n in data.get("held", [])]

    def _save(self) -> None:
        if self._path is not None:
            files.write_json(self._path, self.to_dict())


def _merge(notes: list[Notification], now: float, name: str) -> Notification:
    """One notification standing for several (same tag): a digest of all their alert events."""
    members = tuple(m for n in notes for m in n.members)
    return Notification(digest(list(members), now, name), tuple(i for n in notes for i in n.ids),
                        notes[0].tag, members)
