"""`alertd run`: the wiring of discover -> tail -> parse -> evaluate -> notify. Wiring only.

One thread reads and evaluates; one delivers notifications, so a slow or dead receiver never
delays evaluation. Files are woken by watchdog events where the filesystem gives them and by
polling in any case (events are wake-ups only: every wake-up re-stats and reads to the end).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, TextIO

from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.record import AlertEvent
from alertd.replay import Tally
from alertd.sources import Checkpoints, Discovery, Tailer, Waker


@dataclass
class Options:
    patterns: list[str]
    fmt: str = "auto"
    poll: float = 1.0
    force_poll: bool = False
    from_end: bool = False
    state_dir: str | None = None
    max_idle_tick: float = 1.0  # how often no-data rules are checked with nothing arriving


class Delivery(threading.Thread):
    """Pumps the outbox: sends what is due, sleeps until the next retry or a new event."""

    def __init__(self, outbox):
        super().__init__(name="alertd-delivery", daemon=True)
        self.outbox = outbox
        self.wakeup = threading.Event()
        self.stopping = False

    def put(self, event: AlertEvent) -> None:
        self.outbox.put(event)
        self.wakeup.set()

    def run(self) -> None:
        while not self.stopping:
            self.outbox.pump()
            due = self.outbox.next_due()
            self.wakeup.wait(timeout=1.0 if due is None else max(0.01, min(due, 1.0)))
            self.wakeup.clear()

    def drain(self, timeout: float) -> None:
        """Try to deliver what is pending before exit, for at most `timeout` seconds."""
        self.stopping = True
        self.wakeup.set()
        self.join(timeout=2.0)
        end = time.monotonic() + timeout
        while self.outbox.pending() and time.monotonic() < end:
            if not self.outbox.pump():
                time.sleep(0.2)


class Daemon:
    """Tails files, evaluates every record as it arrives, emits and delivers events."""

    def __init__(self, engine: Engine, options: Options, emit: Callable[[AlertEvent], None],
                 deliver: Delivery | None = None, policy=None, err: TextIO = sys.stderr):
        self.engine, self.options, self.emit, self.err = engine, options, emit, err
        self.delivery, self.policy = deliver, policy
        checkpoints = Checkpoints(f"{options.state_dir}/offsets.json") if options.state_dir else None
        self.tailer = Tailer(Discovery(options.patterns), checkpoints, from_start=not options.from_end)
        self.waker = Waker(self.tailer.discovery.watch_dirs(), poll=options.poll,
                           force_poll=options.force_poll)
        self.parsers: dict[str, object] = {}
        self.tallies: dict[str, Tally] = {}
        self.stopping = False

    def stop(self, *_args) -> None:
        self.stopping = True
        self.waker.wake()

    def _evaluate(self, path: str, chunk, now: float) -> list[AlertEvent]:
        parser = self.parsers.get(path)
        if parser is None:
            parser = self.parsers[path] = make_parser(self.options.fmt)
            self.tallies[path] = Tally()
        if chunk.reset:
            parser.reset()
        parsed = parser.feed(chunk.data)
        tally = self.tallies[path]
        before = tally.bad_lines
        tally.add(parsed)
        if tally.bad_lines and not before:
            print(tally.summary(path), file=self.err, flush=True)
        return self.engine.feed(path, parsed, now=now)

    def step(self) -> int:
        """One pass over every source; returns the number of events emitted."""
        now = time.time()
        events = []
        for path, chunk in self.tailer.poll():
            events += self._evaluate(path, chunk, now)
        events += self.engine.tick(now)
        for event in events:
            self.emit(event)
        self._notify(events, now)
        self.tailer.commit()
        self.waker.add_dirs(self.tailer.discovery.watch_dirs())
        return len(events)

    def _notify(self, events: list[AlertEvent], now: float) -> None:
        if not self.delivery:
            return
        chosen = self.policy.decide(events, now) + self.policy.tick(now) if self.policy else events
        for event in chosen:
            self.delivery.put(event)

    def run(self) -> int:
        """Run until SIGINT/SIGTERM; returns the exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        if self.delivery:
            self.delivery.start()
        try:
            while not self.stopping:
                self.step()
                if not self.stopping:
                    self.waker.wait(timeout=self.options.max_idle_tick)
        finally:
            self.waker.close()
            self.tailer.close()
            for path, tally in self.tallies.items():
                if tally.summary(path):
                    print(tally.summary(path), file=self.err, flush=True)
            if self.delivery:
                self.delivery.drain(timeout=5.0)
        return 0
