"""A durable, ordered queue of notifications for one destination, retried with backoff.

On disk (state_dir, all files 0600, readable JSON):
  NAME.jsonl      journal: one {"seq": n, "event": {...}} per line, appended and fsynced before any attempt
  NAME.done.json  cursor: {"done": n}, the last delivered seq, replaced atomically after each delivery

Delivery is strictly first-in first-out (head-of-line): while the head fails, nothing behind it is
sent, so a receiver sees a run's events in the order the engine emitted them. Use one Outbox per
destination (`name=`) so a dead channel does not hold up the others.

Guarantee: after a restart, every event not marked done is sent again and no marked one is. If the
process dies between a successful send and the cursor write, that one event is sent twice
(at-least-once); there is no way around this without the receiver's help.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from typing import Callable

from alertd.notify import files
from alertd.record import AlertEvent

log = logging.getLogger(__name__)


def _encode(seq: int, event: AlertEvent) -> str:
    return json.dumps({"seq": seq, "event": event.to_dict(with_points=True)})


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
        self._queue: deque[tuple[int, AlertEvent]] = deque()
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
        done = int(files.read_json(self._cursor, {"done": 0}).get("done", 0))
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
            except (ValueError, KeyError, TypeError) as e:
                log.error("outbox %s line %d unreadable (%s); skipped", self._journal, number,
                          type(e).__name__)
                continue
            self._seq = max(self._seq, seq)
            if seq > done:
                self._queue.append((seq, event))
        if self._queue:
            log.info("outbox %s: %d pending event(s) from before the restart", self._journal,
                     len(self._queue))

    def put(self, event: AlertEvent) -> None:
        """Queue event behind the others; with a state dir it is on disk when this returns."""
        with self._lock:
            self._seq += 1
            if self._journal is not None:
                files.append_line(self._journal, _encode(self._seq, event))
            self._queue.append((self._seq, event))

    def pump(self) -> int:
        """Send due events in order until one fails; return how many went out. Never raises."""
        with self._pumping:
            return self._pump()

    def _pump(self) -> int:
        delivered = 0
        while self._queue and self._clock() >= self._due:
            with self._lock:
                seq, event = self._queue[0]
            try:
                ok = bool(self._send(event))
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
                self._attempts, self._due = 0, 0.0
                delivered += 1
                self._mark(seq)
        return delivered

    def _mark(self, seq: int) -> None:
        if self._cursor is None or self._journal is None:
            return
        try:
            files.write_json(self._cursor, {"done": seq})
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
