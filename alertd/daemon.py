"""`alertd run`: the wiring of discover -> tail -> parse -> evaluate -> notify. Wiring only.

One thread reads and evaluates; one delivers notifications (notify/delivery.py), so a slow or dead
receiver never delays evaluation. Files are woken by watchdog events where the filesystem gives them
and by polling in any case (events are wake-ups only: every wake-up re-stats and reads to the end).

Each pass: read what is new, evaluate it, print the events not printed before (persist.py), let the
policy choose notifications and queue the ones not queued before (outbox), then save offsets, engine
and policy together. A crash anywhere in a pass re-reads that pass's records after the restart and
evaluates them against the state they first met; the journals drop what was already printed/queued.
"""
from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

import polars as pl

from alertd.evaluate import Engine
from alertd.notify.delivery import Delivery
from alertd.notify.policy import Notification, Policy, event_id
from alertd.parse import make_parser
from alertd.parse.many import feed_many
from alertd.persist import StateStore
from alertd.record import AlertEvent, Parsed
from alertd.reload import RuleWatcher
from alertd.replay import Tally
from alertd.sources import Checkpoints, Discovery, Tailer, Waker, raise_fd_limit


@dataclass
class Options:
    patterns: list[str]
    fmt: str = "auto"
    poll: float = 1.0
    force_poll: bool = False
    from_end: bool = False
    state_dir: str | None = None
    max_idle_tick: float = 1.0  # how often no-data rules and repeats are checked with nothing arriving
    save_every: float = 0.2     # at most this often a pass that only read data saves the state file
    rule_paths: list[str] = field(default_factory=list)  # watched for hot reload (empty: no reload)
    cli_vars: dict = field(default_factory=dict)
    drain_timeout: float = 10.0  # at exit, how long pending notifications are tried
    min_pass: float = 0.25       # seconds between evaluation passes at the most (coalescing)
    max_gap: float = 0.6         # ... and at the least, however long passes take
    pass_share: float = 0.15     # between the two, passes take about this share of the time


class Daemon:
    """Tails files, evaluates every record as it arrives, emits and delivers events."""

    def __init__(self, engine: Engine, options: Options, emit: Callable[[AlertEvent], None],
                 deliver: Delivery | None = None, policy: Policy | None = None, err: TextIO = sys.stderr,
                 extras: list[Delivery] = (), on_parsed=None, after_step=None):
        self.engine, self.options, self.emit, self.err = engine, options, emit, err
        self.delivery = deliver
        self.extras = list(extras)      # destinations that take every event as it is (Alertmanager)
        self.on_parsed, self.after_step = on_parsed, after_step  # hooks (the /metrics endpoint)
        self.policy = policy if policy is not None or deliver is None else Policy(repeat_interval=None)
        self.store = StateStore(options.state_dir) if options.state_dir else None
        if self.store:
            self.store.restore_engine(engine)
            if policy is not None and self.store.policy:
                policy.load_dict(self.store.policy)
        self.checkpoints = Checkpoints(None, self.store.offsets if self.store else None)
        raise_fd_limit()  # before the tailer sizes its pool of open files from it
        self.tailer = Tailer(Discovery(options.patterns), self.checkpoints, from_start=not options.from_end)
        self.waker = Waker(self.tailer.discovery.watch_dirs(), poll=options.poll,
                           force_poll=options.force_poll)
        self.rules = RuleWatcher(options.rule_paths, options.cli_vars, err) if options.rule_paths else None
        self.parsers: dict[str, object] = {}
        self.tallies: dict[str, Tally] = {}
        self.stopping = False
        self.read_data = False   # the last pass read something (the files are busy)
        self._dirty = False      # state changed since the last save
        self._saved_at = 0.0

    def stop(self, *_args) -> None:
        self.stopping = True
        self.waker.wake()

    def _parse_all(self, polled: list) -> list[tuple[str, Parsed]]:
        """Parse what every file brought, the JSONL ones in one polars read (parse.many): a
        parser call costs milliseconds whatever it reads, so hundreds of files would cost a
        parser call each."""
        done: list[Parsed] = []
        items: list[tuple[object, bytes]] = []
        for path, chunk in polled:
            parser = self.parsers.get(path)
            if parser is None:
                parser = self.parsers[path] = make_parser(self.options.fmt, path)
                self.tallies[path] = Tally()
            if chunk.reset:
                if any(p is parser for p, _ in items):  # its earlier chunk is parsed before the reset
                    done += feed_many(items)
                    items = []
                parser.reset()
            items.append((parser, chunk.data))
        done += feed_many(items)
        out = []
        for (path, _), parsed in zip(polled, done):
            tally = self.tallies[path]
            before = tally.bad_lines
            tally.add(parsed)
            if tally.bad_lines and not before:
                print(tally.summary(path), file=self.err, flush=True)
            if self.on_parsed:
                self.on_parsed(path, parsed)
            out.append((path, parsed))
        return out

    def step(self, final: bool = False) -> int:
        """One pass over every source; returns the number of events emitted. The final pass
        also evaluates the records that wait (Engine.long_every)."""
        now = time.time()
        if self.rules:
            self.engine = self.rules.check(self.engine)
        if self.policy:
            self.policy.silences.refresh()
        # Everything new in every file, then one evaluation pass over all of them: hundreds of
        # files cost a few polars calls per pass, not per file (evaluate.feed_many).
        batches: dict[str, Parsed] = {}
        polled = list(self.tailer.poll())
        self.read_data = bool(polled)
        for path, parsed in self._parse_all(polled):
            batches[path] = _merge(batches[path], parsed) if path in batches else parsed
        events = self.engine.feed_many(batches, now)  # also the waiting records now due
        events += self.engine.flush(now) if final else []
        events += self.engine.tick(now)
        fresh = self.store.admit(events) if self.store else events
        for event in fresh:
            self.emit(event)
        queued = self._notify(events, now)
        for extra in self.extras:
            for event in events:
                extra.put(Notification(event, (event_id(event),)))
        self.tailer.commit()  # positions into self.checkpoints (kept in memory, saved below)
        self._dirty |= bool(batches) or bool(events) or queued
        if self._dirty and (events or queued or now - self._saved_at >= self.options.save_every):
            self._save(now)
        self.waker.add_dirs(self.tailer.discovery.watch_dirs())
        if self.after_step:
            self.after_step(self.engine)
        return len(fresh)

    def _notify(self, events: list[AlertEvent], now: float) -> bool:
        """Hand the policy's notifications to the outbox; True when the policy's state changed."""
        if not self.delivery or self.policy is None:
            return False
        known = self.delivery.known
        notes = self.policy.plan(events, now, known) + self.policy.plan_tick(now, known)
        for note in notes:
            self.delivery.put(note)
        return bool(notes)

    def _save(self, now: float) -> None:
        if self.store:
            self.store.save(self.checkpoints.to_dict(), self.engine,
                            self.policy.to_dict() if self.policy else None)
        self._dirty, self._saved_at = False, now

    def run(self) -> int:
        """Run until SIGINT/SIGTERM; returns the exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        for d in [self.delivery, *self.extras]:
            if d:
                d.start()
        last, gap = 0.0, self.options.min_pass
        # What exists now (modules, compiled rules) lives as long as the daemon: frozen out of the
        # collector's full passes, which would walk it every ~70k allocations (~6 ms a pass
        # over 500 files, amortised; gc.freeze's documented use).
        gc.freeze()
        try:
            while not self.stopping:
                # Coalesce: at most one pass per `gap` seconds, so a busy writer (or hundreds of
                # files) gives larger batches instead of a pass per line. A pass costs a fixed
                # part whatever it reads: when passes get dear, they get rarer (they take about
                # pass_share of the time, 15%: 500 busy files cost ~0.1 s a pass), up to
                # max_gap, which bounds the latency it adds.
                time.sleep(max(0.0, last + gap - time.monotonic()))
                last = time.monotonic()
                self.step()
                cost = time.monotonic() - last
                gap = min(self.options.max_gap, max(self.options.min_pass, cost / self.options.pass_share))
                if self.read_data:  # busy: the next pass comes after `gap` whatever inotify says
                    self.waker.pause()
                    continue
                if self.waker.paused:  # quiet again: watch, and read once more before waiting
                    self.waker.resume()
                    continue
                if not self.stopping:
                    settling = self.rules is not None and self.rules.pending()
                    self.waker.wait(timeout=0.1 if settling else self.options.max_idle_tick)
            self.step(final=True)  # what was written just before the stop is still evaluated
        finally:
            if self._dirty:
                self._save(time.time())
            self.waker.close()
            self.tailer.close()
            for path, tally in self.tallies.items():
                if tally.summary(path):
                    print(tally.summary(path), file=self.err, flush=True)
            for d in [self.delivery, *self.extras]:
                if d:
                    d.drain(timeout=self.options.drain_timeout)
        return 0


def _merge(first: Parsed, then: Parsed) -> Parsed:
    """Two parsed chunks of one file (a rotation hands out the old file's end, then the new)."""
    frame = pl.concat([first.frame, then.frame], how="diagonal_relaxed")
    bad = first.bad_lines + then.bad_lines
    return Parsed(frame, {**first.meta, **then.meta}, bad, first.first_bad_line or then.first_bad_line,
                  first.first_bad_reason or then.first_bad_reason)
