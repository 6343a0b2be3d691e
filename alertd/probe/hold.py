"""Measured steps on their way to the file: written at once, or held and written together."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from alertd.probe.measured import Measured
from alertd.probe.reduce import read
from alertd.probe.writer import JsonlWriter

Decode = Callable[[Measured, Iterator[Any]], list[dict[str, Any]]]


class RecordHold:
    """Holds records due within `hold_s` of the last write and writes them with the next one due
    after it: their tensors in one read (one host sync) and their lines in one write(2).

    The training thread writes at its first record due past hold_s. When it stops stepping (a
    hang, a long evaluation, a script that never calls close()) a thread of ours writes what is
    held 2 * hold_s after the last write; while records keep coming (less than hold_s apart) it
    never does."""

    def __init__(self, writer: JsonlWriter, hold_s: float, decode: Decode) -> None:
        self.writer, self.hold_s, self._decode = writer, hold_s, decode
        self._held: list[Measured] = []
        self._written = -float("inf")  # time.monotonic() of the last write
        self._lock = threading.Lock()  # _held and the file, shared with the _watch thread
        self._closed = threading.Event()
        self._watch: threading.Thread | None = None

    def holds(self, now: float) -> bool:
        """Whether a record due at `now` (time.monotonic()) would be held."""
        return now - self._written < self.hold_s

    def put(self, m: Measured, hold: bool, now: float) -> None:
        """Hold `m`, or write it and everything held before it."""
        with self._lock:
            self._held.append(m)
            if not hold:
                self._write_held(now)
            elif self._watch is None:
                self._watch = threading.Thread(target=self._write_stalled, daemon=True,
                                               name="alertd-probe-hold")
                self._watch.start()

    def _write_held(self, now: float) -> None:
        # Called with the lock held.
        held, self._held = self._held, []
        tensors = [m.tensors() for m in held]
        vals = read([t for ts in tensors for t in ts])
        recs, at = [], 0
        for m, ts in zip(held, tensors):
            n = sum(t.numel() for t in ts)
            recs.extend(self._decode(m, iter(vals[at:at + n])))
            at += n
        self.writer.write_many(recs)
        self._written = now

    def _write_stalled(self) -> None:
        while not self._closed.wait(self.hold_s):
            with self._lock:
                now = time.monotonic()
                if self._held and now - self._written >= 2 * self.hold_s:
                    self._write_held(now)

    def close(self) -> None:
        """Write what is held and close the file; later records are dropped."""
        self._closed.set()
        with self._lock:
            if self._held:
                self._write_held(time.monotonic())
            self.writer.close()
