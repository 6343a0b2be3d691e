"""Which files to follow: glob patterns re-expanded on every scan, each match returned once.

Usage:
    d = Discovery(["runs/*/train.log", "metrics.jsonl"])
    for path in d.scan():          # call on every wake-up: globs grow as runs start
        followers[path] = Follower(path)
    waker.add_dirs(d.watch_dirs())

A rotated copy of a followed file (train.log -> train.log.1) that a broad pattern such as
`runs/*` also matches is recognised by its (dev, ino), which was the followed file's a
moment ago, and is not returned: its lines are read through the follower already.
Copies made by copytruncate get a new inode and are not recognised: exclude them with
`exclude` (basename globs such as "*.1" or "*.gz") or a narrower pattern.
"""
from __future__ import annotations

import fnmatch
import glob as _glob
import os
import stat as _stat
from typing import Callable


def _recursive_glob(pattern: str) -> list[str]:
    return _glob.glob(pattern, recursive=True)  # "**" spans directories, as users expect


class Discovery:
    """Expands patterns on each scan() and returns the files not returned before."""

    def __init__(self, patterns: list[str], glob: Callable[[str], list[str]] = _recursive_glob,
                 stat: Callable[[str], os.stat_result] = os.stat, exclude: list[str] = ()):
        self.patterns = [os.path.expanduser(p) for p in patterns]
        self.exclude = list(exclude)
        self._glob = glob
        self._stat = stat
        self._known: set[str] = set()
        self._skipped: set[str] = set()           # rotated copies of known files
        self._last_ids: dict[tuple[int, int], str] = {}  # identity -> path, at the previous scan

    def scan(self) -> list[str]:
        """Paths matching now that were not returned before (sorted)."""
        matches: dict[str, tuple[int, int]] = {}
        for pattern in self.patterns:
            for path in self._glob(pattern):
                if path in matches or self._excluded(path):
                    continue
                try:
                    st = self._stat(path)
                except OSError:
                    continue  # vanished between glob and stat
                if _is_regular(st):
                    matches[path] = (st.st_dev, st.st_ino)
        new = []
        for path in sorted(matches):
            if path in self._known:
                continue
            if self._last_ids.get(matches[path], path) != path:
                self._skipped.add(path)  # a followed file renamed since the last scan
            if path in self._skipped:
                continue
            self._known.add(path)
            new.append(path)
        self._skipped &= matches.keys()  # a rotated copy deleted and its name reused later is new
        self._last_ids = {i: p for p, i in matches.items() if p in self._known or p in self._skipped}
        return new

    def forget(self, path: str) -> None:
        """Let `path` be returned again by a later scan (its follower was dropped)."""
        self._known.discard(path)

    def watch_dirs(self) -> list[str]:
        """Existing directories whose changes should wake the daemon: each pattern's fixed prefix, and the
        directory of each known file."""
        dirs = {os.path.dirname(p) or "." for p in self._known}
        dirs.update(_fixed_dir(p) for p in self.patterns)
        return sorted(d for d in dirs if os.path.isdir(d))

    def _excluded(self, path: str) -> bool:
        if not self.exclude:  # asked per path per scan: hundreds of files, every pass
            return False
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(name, x) for x in self.exclude)


def _fixed_dir(pattern: str) -> str:
    """Deepest directory of `pattern` with no glob magic in it (where a new match would first appear)."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if _glob.has_magic(part):
            break
        fixed.append(part)
    d = os.sep.join(fixed)
    return d if d else (os.sep if pattern.startswith(os.sep) else ".")


def _is_regular(st: os.stat_result) -> bool:
    return _stat.S_ISREG(st.st_mode)
