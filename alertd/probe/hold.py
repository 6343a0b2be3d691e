"""Measured steps on their way to the file: written at once, or held and written together."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from alertd.probe.measured import Measured
from alertd.probe.reduce import copy_to_host, read
from alertd.probe.writer import JsonlWriter

Decode = Callable[[Measured, Iterator[Any]], list[dict[str, Any]]]


class RecordHold:
    """Holds records due within `hold_s` of the last write and writes them with the next one due
    after it: their tensors in one transfer and their lines in one write(2).

    On the CPU the transfer is a read in place. On a CUDA device it is a copy to pinned host
    memory queued behind the step's kernels, with no host sync: a sync would drain the queue of
    kernels the training loop launched ahead, and the GPU would wait for the next ones. The
    lines of a copy are written once its event is done, looked at on each measured step, by our
    thread, and on close. The first step's records (the preflight) and every record with
    hold_s=0 are read at once instead (one sync each).

    The training thread writes at its first record due past hold_s. When it stops stepping (a
    hang, a long evaluation, a script that never calls close()) a thread of ours writes what is
    held 2 * hold_s after the last write; while records keep coming (less than hold_s apart) it
    never does."""

    def __init__(self, writer: JsonlWriter, hold_s: float, decode: Decode) -> None:
        self.writer, self.hold_s, self._decode = writer, hold_s, decode
        self._held: list[Measured] = []
        # Copies queued on the device, oldest first: (records, values per record, host, event).
        self._flight: deque[tuple[list[Measured], list[int], Any, Any]] = deque()
        self._written = -float("inf")  # time.monotonic() of the last write (or queued copy)
        self._lock = threading.Lock()  # _held, _flight and the file, shared with the _watch thread
        self._closed = threading.Event()
        self._watch: threading.Thread | None = None

    def holds(self, now: float) -> bool:
        """Whether a record due at `now` (time.monotonic()) would be held."""
        return now - self._written < self.hold_s

    def put(self, m: Measured, hold: bool, now: float) -> None:
        """Hold `m`, or write it and everything held before it."""
        with self._lock:
            self._held.append(m)
            if self._flight:
                self._land(block=False)
            if not hold:
                self._write_held(now, at_once=m.preflight or self.hold_s <= 0)
            if (self._held or self._flight) and self._watch is None:
                self._watch = threading.Thread(target=self._write_stalled, daemon=True,
                                               name="alertd-probe-hold")
                self._watch.start()

    def _write_held(self, now: float, at_once: bool) -> None:
        # Called with the lock held.
        held, self._held = self._held, []
        tensors = [m.tensors() for m in held]
        items = [t for ts in tensors for t in ts]
        sizes = [sum(t.numel() for t in ts) for ts in tensors]
        self._written = now
        copy = None if at_once else copy_to_host(items)
        if copy is not None:
            self._flight.append((held, sizes, *copy))
            return
        self._land(block=True)  # earlier copies first: the file keeps the steps' order
        self._write(held, sizes, read(items))

    def _write(self, held: list[Measured], sizes: list[int], vals: list[Any]) -> None:
        recs, at = [], 0
        for m, n in zip(held, sizes):
            recs.extend(self._decode(m, iter(vals[at:at + n])))
            at += n
        self.writer.write_many(recs)

    def _land(self, block: bool) -> None:
        """Write the copies the device has finished, in order (all of them, waiting, if `block`)."""
        while self._flight:
            held, sizes, host, done = self._flight[0]
            if not done.query():
                if not block:
                    return
                done.synchronize()
            self._flight.popleft()
            self._write(held, sizes, host.tolist())

    def _write_stalled(self) -> None:
        while not self._closed.wait(self.hold_s):
            with self._lock:
                first = self._flight[0][3] if self._flight else None
            if first is not None:
                first.synchronize()  # outside the lock: the training thread never waits for us
            with self._lock:
                if self._closed.is_set():
                    return
                self._land(block=False)
                now = time.monotonic()
                if self._held and now - self._written >= 2 * self.hold_s:
                    self._write_held(now, at_once=False)  # a copy: it lands at the next wake

    def close(self) -> None:
        """Write what is held and close the file; later records are dropped."""
        self._closed.set()
        with self._lock:
            if self._held:
                self._write_held(time.monotonic(), at_once=True)
            self._land(block=True)
            self.writer.close()
