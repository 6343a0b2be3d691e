"""A durable, ordered queue of notifications for one destination, retried with backoff.

On disk (state_dir, all files 0600, readable JSON):
  NAME.jsonl      journal: one {"seq": n, "event": {...}, "tag": t, "ids": [...]} per line, appended and
                  fsynced before any attempt
  NAME.done.json  cursor: {"done": n, "recent": [[ids], ...]}, the last delivered seq and the ids of the
                  last RECENT delivered entries, replaced atomically after each delivery

Delivery is strictly first-in first-out (head-of-line): while the head fails, nothing behind it is
sent, so a receiver sees a run's events in the order the engine emitted them. Use one Outbox per
destination (`name=`) so a dead channel does not hold up the others.

Guarantee: after a restart, every event not marked done is sent again and no marked one is. If the
process dies between a successful send and the cursor write, that one event is sent twice
(at-least-once); there is no way around this without the receiver's help.

Idempotent put: each entry carries the ids of the alert events it stands for; `known(id)` is true for
an id journaled here (pending, or among the last RECENT delivered entries), so a daemon that evaluates
the same records again after a crash drops the notifications it had already queued.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from typing import Callable, Iterable

from alertd import statefile as files
from alertd.record import AlertEvent

log = logging.getLogger(__name__)
RECENT = 256  # delivered entries whose ids are remembered: more than one evaluation pass can queue


def _encode(seq: int, event: AlertEvent, tag: str | None, ids: tuple[str, ...]) -> str:
    return json.dumps({"seq": seq, "event": event.to_dict(with_points=True),
                       **({"tag": tag} if tag else {}), **({"ids": list(ids)} if ids else {})})


class Outbox:
    """Durable, ordered delivery with exponential backoff; `state_dir=None` keeps it in memory only.

        box = Outbox("/var/lib/alertd/outbox", sink.send)
        box.put(event)          # journaled (fsync) before anything is tried
        box.pump()              # sends what is due; call again after box.next_due() seconds
    """

    def __init__(self, state_dir: str | None, send: Callable[[AlertEvent], bool],
                 clock: Callable[[], float] = time.monotonic, base_backoff: float = 1.0,
                 max_backoff: float = 60.0, name: str = "outbox") -> None:
        self._send = send
        self._clock = clock
        self._base = base_backoff
        self._max = max_backoff
        self._queue: deque[tuple[int, AlertEvent, str | None, tuple[str, ...]]] = deque()
        self._recent: deque[tuple[str, ...]] = deque(maxlen=RECENT)  # ids of the last deliveries
        self._ids: dict[str, int] = {}  # id -> entries holding it (pending or recent)
        self._seq = 0
        self._attempts = 0     # consecutive failures of the head
        self._due = 0.0        # clock value before which the head is not retried
        self._journal = self._cursor = None
        # put() may come from the engine's thread while pump() runs in a sender thread: the lock
        # covers the queue and the files, never a send (a slow SMTP server must not block put).
        self._lock = threading.Lock()
        self._pumping = threading.Lock()
        if state_dir is not None:
            files.ensure_dir(state_dir)
            self._journal = os.path.join(state_dir, f"{name}.jsonl")
            self._cursor = os.path.join(state_dir, f"{name}.done.json")
            self._load()

    def _load(self) -> None:
        assert self._journal is not None and self._cursor is not None
        cursor = files.read_json(self._cursor, {"done": 0})
        done = int(cursor.get("done", 0))
        for ids in cursor.get("recent", []):
            self._remember(tuple(ids))
        self._seq = done
        try:
            with open(self._journal, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            # A crash mid-append left a torn last line; that put() never returned, so drop it.
            keep = data.rfind(b"\n") + 1
            os.truncate(self._journal, keep)
            data = data[:keep]
            log.warning("outbox %s: dropped a torn last line", self._journal)
        for number, line in enumerate(data.splitlines(), 1):
            try:
                rec = json.loads(line)
                seq, event = int(rec["seq"]), AlertEvent.from_dict(rec["event"])
                tag, ids = rec.get("tag"), tuple(rec.get("ids", ()))
            except (ValueError, KeyError, TypeError) as e:
                log.error("outbox %s line %d unreadable (%s); skipped", self._journal, number,
                          type(e).__name__)
                continue
            self._seq = max(self._seq, seq)
            if seq > done:
                self._queue.append((seq, event, tag, ids))
                self._count(ids, 1)
        if self._queue:
            log.info("outbox %s: %d pending event(s) from before the restart", self._journal,
                     len(self._queue))

    def put(self, event: AlertEvent, tag: str | None = None, ids: Iterable[str] = ()) -> bool:
        """Queue event (for the URLs with apprise `tag`) behind the others; with a state dir it is on
        disk when this returns. Returns False, queuing nothing, when every id in `ids` is known."""
        ids = tuple(ids)
        with self._lock:
            if ids and all(i in self._ids for i in ids):
                return False
            self._seq += 1
            if self._journal is not None:
                files.append_line(self._journal, _encode(self._seq, event, tag, ids))
            self._queue.append((self._seq, event, tag, ids))
            self._count(ids, 1)
        return True

    def known(self, event_id: str) -> bool:
        """True when an entry with this id was queued (still pending, or among the recent deliveries)."""
        with self._lock:
            return event_id in self._ids

    def _count(self, ids: tuple[str, ...], delta: int) -> None:
        for i in ids:
            n = self._ids.get(i, 0) + delta
            if n > 0:
                self._ids[i] = n
            else:
                self._ids.pop(i, None)

    def _remember(self, ids: tuple[str, ...]) -> None:
        """Keep a delivered entry's ids among the recent ones (the oldest recent entry is forgotten)."""
        if len(self._recent) == self._recent.maxlen:
            self._count(self._recent[0], -1)
        self._recent.append(ids)
        self._count(ids, 1)

    def pump(self) -> int:
        """Send due events in order until one fails; return how many went out. Never raises."""
        with self._pumping:
            return self._pump()

    def _pump(self) -> int:
        delivered = 0
        while self._queue and self._clock() >= self._due:
            with self._lock:
                seq, event, tag, ids = self._queue[0]
            try:
                ok = bool(self._send(event) if tag is None else self._send(event, tag=tag))
            except Exception as e:  # the sender should not raise; if it does, it is a failed try
                # Only the type: an exception text may quote a URL with its token.
                log.warning("outbox send raised %s", type(e).__name__)
                ok = False
            if not ok:
                self._attempts += 1
                delay = min(self._max, self._base * 2 ** (self._attempts - 1))
                self._due = self._clock() + delay
                log.info("delivery of %s failed (attempt %d); retry in %.3gs, %d pending",
                         event.key(), self._attempts, delay, len(self._queue))
                break
            with self._lock:
                self._queue.popleft()
                self._count(ids, -1)
                if ids:
                    self._remember(ids)
                self._attempts, self._due = 0, 0.0
                delivered += 1
                self._mark(seq)
        return delivered

    def _mark(self, seq: int) -> None:
        if self._cursor is None or self._journal is None:
            return
        try:
            recent = {"recent": [list(i) for i in self._recent]} if self._recent else {}
            files.write_json(self._cursor, {"done": seq, **recent})
            if not self._queue:
                # Everything is delivered: start the journal afresh so it does not grow forever.
                files.write_atomic(self._journal, "")
        except OSError as e:
            # The event went out; failing to record it means it may go out again after a restart.
            log.error("outbox cannot record delivery of seq %d: %s", seq, e)

    def pending(self) -> int:
        """Number of events not yet delivered."""
        return len(self._queue)

    def next_due(self) -> float | None:
        """Seconds until pump() has something to try (0 = now); None when nothing is pending."""
        if not self._queue:
            return None
        return max(0.0, self._due - self._clock())

    def retry_now(self) -> None:
        """Make the head due now, whatever its backoff (a final flush before exit)."""
        self._due = 0.0
