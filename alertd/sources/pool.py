"""All followed files from one thread: discovery, one Follower per path, checkpoints, bounded fds.

Usage:
    tailer = Tailer(Discovery(["runs/*/train.log"]), Checkpoints(state_dir + "/checkpoints.json"))
    with Waker(tailer.discovery.watch_dirs()) as waker:
        while running:
            for path, chunk in tailer.poll():
                handle(path, chunk)      # parse, evaluate, notify
            tailer.commit()              # only now: a crash before it re-reads, never skips
            waker.add_dirs(tailer.discovery.watch_dirs())
            waker.wait()

Fds stay bounded: a file with no new data for `quiet_after` seconds gives its fd back
(Follower.release), and beyond `max_open` open files (default: half the process's fd limit)
the least recently active ones do.
A released file is reopened on the next poll and its identity re-checked; a rotation that
happens while it is released loses only the old file's unread tail, which a quiet writer
does not have.
"""
from __future__ import annotations

import resource
import time
from typing import Callable, Iterator

from .checkpoint import Checkpoints
from .discover import Discovery
from .tail import Chunk, Follower


FD_CAP = 65536  # fds asked for at most: each open file holds ~1 KB of kernel memory


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one (at most FD_CAP), as Go programs
    (Prometheus, Alertmanager) do at start: the Tailer keeps half the soft limit open, and past
    it closes the least recent files and reopens them on the next pass, every pass while they
    are all busy; a shell's 1024 caps that at 512 files. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_CAP if hard == resource.RLIM_INFINITY else min(hard, FD_CAP)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass  # a sandbox may refuse: keep the limit we have
    return _soft_limit()


def _soft_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return FD_CAP if soft == resource.RLIM_INFINITY else min(soft, FD_CAP)


def default_max_open() -> int:
    """Open files a Tailer keeps: half the soft fd limit (the rest for sockets, state files and
    the libraries), at least 64."""
    return max(64, _soft_limit() // 2)


class Tailer:
    """Reads every discovered file to its end on each poll(), without a thread per file."""

    def __init__(self, discovery: Discovery, checkpoints: Checkpoints | None = None,
                 from_start: bool = True, max_open: int | None = None, quiet_after: float = 60.0,
                 max_chunk: int = 64 << 20, clock: Callable[[], float] = time.monotonic):
        self.discovery = discovery
        self.checkpoints = checkpoints
        self.from_start = from_start
        self.max_open = default_max_open() if max_open is None else max_open
        self.quiet_after = quiet_after
        self.max_chunk = max_chunk
        self._clock = clock
        self.followers: dict[str, Follower] = {}
        self._active: dict[str, float] = {}  # path -> when it last gave data
        self._first_scan = True

    def poll(self) -> Iterator[tuple[str, Chunk]]:
        """Yield (path, chunk) for every non-empty chunk available now, then bound the open fds."""
        now = self._clock()
        for path in self.discovery.scan():
            pos = self.checkpoints.get(path) if self.checkpoints else None
            # from_start=False only for files there at startup: a file that appears later is all news.
            self.followers[path] = Follower(path, position=pos, max_chunk=self.max_chunk,
                                            from_start=self.from_start or not self._first_scan)
            self._active[path] = now
        self._first_scan = False
        for path, f in self.followers.items():
            while True:
                chunk = f.read()
                if chunk.data:
                    self._active[path] = now
                    yield path, chunk
                if not chunk.more:
                    break
        self._bound_fds(now)

    def _bound_fds(self, now: float) -> None:
        open_ = sorted((self._active[p], p) for p, f in self.followers.items() if f.is_open)
        excess = len(open_) - self.max_open
        for i, (last, path) in enumerate(open_):
            if i < excess or now - last >= self.quiet_after:
                self.followers[path].release()

    def commit(self) -> None:
        """Save every follower's position (call after the yielded chunks were handled)."""
        if self.checkpoints is None:
            return
        for path, f in self.followers.items():
            self.checkpoints.set(path, f.position())
        self.checkpoints.save()

    def open_files(self) -> int:
        """Number of fds held now."""
        return sum(f.is_open for f in self.followers.values())

    def close(self) -> None:
        """Close every follower (positions are not saved: call commit() first)."""
        for f in self.followers.values():
            f.close()
        self.followers.clear()

    def __enter__(self) -> "Tailer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
