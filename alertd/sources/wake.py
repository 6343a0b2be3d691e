"""Wake-ups for the read loop: inotify through watchdog when it works, a poll tick always.

Usage:
    with Waker(discovery.watch_dirs(), poll=1.0) as waker:
        while running:
            read_everything()   # re-stat and read to the end: events are hints, not data
            waker.wait()

Events are never trusted to be complete: watchdog drops events when the inotify queue
overflows, one write can give several events, and writes made by other hosts on
NFS/Lustre/FUSE give none. So wait() also returns every `poll` seconds, and the caller
re-reads everything each time. inotify only makes local writes show up sooner.
"""
from __future__ import annotations

import logging
import os
import select
from typing import Callable

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileClosedEvent,
                             FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent,
                             FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)


class _StoppedWatchRace(logging.Filter):
    """Drops watchdog's ERROR for an event read just as its watch was stopped: pause() stops
    every watch while files are busy, so it happens in normal running (watchdog then drops the
    event, as it should: we asked for the stop). Its other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StoppedWatchRace())

# Only changes. Opened/closed-without-write events would wake us on our own reads: a busy loop.
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent,
           DirCreatedEvent, DirMovedEvent, DirDeletedEvent]


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: "Waker"):
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._wake.wake()


class Waker:
    """Wakes the daemon when watched dirs change (watchdog inotify), else every poll seconds."""

    def __init__(self, dirs: list[str], poll: float = 1.0, force_poll: bool = False,
                 observer_factory: Callable[[], BaseObserver] = Observer):
        if poll <= 0:
            raise ValueError("poll must be > 0 seconds")
        self.poll = poll
        # A self-pipe, not a threading.Event: Event.set() takes a lock that the interrupted
        # main thread may hold, so calling it from a signal handler can deadlock; os.write cannot.
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._watched: set[str] = set()
        self._observer = None
        self.polling = True  # False once inotify watches are running
        self.paused = False  # watches dropped for a while (pause/resume)
        if not force_poll:
            self._start_observer(dirs, observer_factory)

    def _start_observer(self, dirs: list[str], factory: Callable[[], BaseObserver]) -> None:
        observer = None
        try:
            observer = factory()
            for d in dirs:
                self._schedule(observer, d)
            observer.start()
        except Exception as e:  # inotify limits (OSError), no backend, a failing emitter thread
            log.warning("file watching unavailable (%s); polling every %.3g s", e, self.poll)
            if observer is not None:
                _stop(observer)
            self._watched.clear()
            return
        self._observer = observer
        self.polling = False

    def _schedule(self, observer: BaseObserver, d: str) -> None:
        d = os.path.abspath(d)
        if d in self._watched or not os.path.isdir(d):
            return
        if not self.paused:
            observer.schedule(_Handler(self), d, recursive=False, event_filter=_EVENTS)
        self._watched.add(d)

    def pause(self) -> None:
        """Stop inotify while the caller reads on its own schedule anyway (files busy): watchdog
        handles every event in Python, thousands a second for hundreds of busy files."""
        if self._observer is not None and not self.paused:
            self.paused = True
            self._observer.unschedule_all()

    def resume(self) -> None:
        """Watch again (files went quiet). The caller reads once more before it waits: what was
        written while paused gave no event."""
        if self._observer is not None and self.paused:
            self.paused = False
            watched, self._watched = self._watched, set()
            self.add_dirs(sorted(watched))

    def add_dirs(self, dirs: list[str]) -> None:
        """Watch more directories (new runs appear); one that cannot be watched is left to the poll tick."""
        if self._observer is None:
            return
        for d in dirs:
            try:
                self._schedule(self._observer, d)
            except Exception as e:  # e.g. max_user_watches reached: polling still covers it
                log.warning("cannot watch %s (%s); relying on the %.3g s poll", d, e, self.poll)

    def watched(self) -> list[str]:
        """Directories watched through inotify (empty when polling)."""
        return sorted(self._watched)

    def wait(self, timeout: float | None = None) -> None:
        """Return on a change in a watched dir, a wake(), after `poll` seconds, or after `timeout`."""
        limit = self.poll if timeout is None else min(timeout, self.poll)
        if self._r < 0:
            raise ValueError("Waker is closed")
        try:
            select.select([self._r], [], [], max(0.0, limit))
        except InterruptedError:
            pass
        # Drain before the caller reads: a change after this point wakes the next wait().
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass

    def wake(self) -> None:
        """Make the current or next wait() return now (safe from a signal handler or another thread)."""
        try:
            os.write(self._w, b"w")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake-up is pending anyway) or closed

    def close(self) -> None:
        """Stop watching and join watchdog's threads."""
        if self._observer is not None:
            _stop(self._observer)
            self._observer = None
        self._watched.clear()
        self.polling = True
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1

    def __enter__(self) -> "Waker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join()
    except Exception:  # best effort: it may never have started
        log.debug("observer stop failed", exc_info=True)
