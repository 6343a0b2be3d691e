"""Follow one pathname as one perpetual source of complete lines, across rotation and truncation.

Usage:
    f = Follower("run/train.log")
    while True:
        chunk = f.read()                  # call again at once while chunk.more
        if chunk.reset: parser.restart()  # a new file generation begins with this chunk
        parser.feed(chunk.data)           # complete lines only
        waker.wait()

How each change of the file underneath is seen (after google/mtail's logstream and Vector's
file source), on every read():
- rotation by rename+create, or delete+re-create: the path now names another (dev, ino).
  The old file is read to its end through the fd still open, then the new one from 0.
- copytruncate / truncation: the open file's size is below our offset, or its first bytes
  changed (truncated and rewritten past our offset before we looked): re-read it from 0.
- a record written in pieces: only bytes up to the last b"\\n" or b"\\r" are handed out; the
  partial tail is read again next time (never buffered, so position() is exact).
Writes to the old file after we switched to the new one are lost: a rotating writer
(logging.handlers.RotatingFileHandler, logrotate with a reopen signal) has stopped
writing the old file by the time the new one exists.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from stat import S_ISREG
from typing import Callable

from .checkpoint import Position
from .identity import HEAD_BYTES, fingerprint, fingerprint_matches, ident

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_BACKSCAN = 1 << 16  # bytes looked at to find the last line start when tailing from the end


@dataclass
class Chunk:
    """Complete lines read from one file generation."""

    data: bytes        # ends with b"\n" or b"\r" (tqdm updates end with \r), or b"" if nothing new
    reset: bool = False  # this chunk starts a new file generation: restart line numbering/header
    more: bool = False   # read() stopped early (max_chunk, or a generation ended): call it again now


def _last_terminator(buf: bytes) -> int:
    return max(buf.rfind(b"\n"), buf.rfind(b"\r"))


def _first_terminator(buf: bytes) -> int:
    hits = [i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0]
    return min(hits) if hits else -1


class Follower:
    """Follows one path across rotation (rename+create), copytruncate, truncation, delete+re-create."""

    def __init__(self, path: str, position: Position | None = None, from_start: bool = True,
                 stat: Callable[[str], os.stat_result] = os.stat, max_chunk: int = 64 << 20):
        self.path = path
        self._stat = stat
        self._max = max_chunk
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None  # (dev, ino) of the generation being read
        self._offset = 0       # bytes handed out in this generation
        self._lines = 0        # b"\n" handed out in this generation
        self._head = b""       # first bytes of this generation, to notice a rewrite in place
        self._fp_of: tuple[bytes, int] | None = None  # (head, length) the fingerprint below is of
        self._fp = ""
        self._size = -1        # size at the last look, to skip work when nothing changed
        self._reset = False    # the next chunk with data starts a new generation
        self._skipping = False  # dropping the rest of a line longer than max_chunk
        self.dropped = 0       # bytes of over-long lines dropped
        self._warned = False   # unreadable path already logged
        self._start(position, from_start)

    # -- opening ---------------------------------------------------------------------
    def _open(self) -> os.stat_result | None:
        try:
            fd = os.open(self.path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None  # not there (yet): looked for again on each read()
        except PermissionError as e:
            if not self._warned:
                log.warning("%s: %s; will retry", self.path, e)
                self._warned = True
            return None
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            os.close(fd)  # a directory, fifo or device has the name: pread cannot follow it
            return None
        self._fd = fd
        return st

    def _start(self, position: Position | None, from_start: bool) -> None:
        st = self._open()
        if st is None:
            return  # appears later: it is then a new file and read from its start
        self._ident = ident(st)
        self._head = os.pread(self._fd, HEAD_BYTES, 0)
        if position is not None:
            same = ((position.dev, position.ino) == self._ident and st.st_size >= position.offset
                    and fingerprint_matches(self._fd, position.fingerprint))
            if same:
                self._offset, self._lines = position.offset, position.lines
            else:
                # Rotated, truncated or replaced while we were down. The previous generation
                # may survive as path.1, but we do not chase it: its name depends on the
                # rotating tool, and reading it would also replay what we already handed out.
                log.info("%s: changed since the checkpoint; reading from the start", self.path)
        elif not from_start:
            self._seek_line_start(st.st_size)

    def _seek_line_start(self, size: int) -> None:
        """Start just after the last terminator before `size`, so tailing starts on a line boundary."""
        lo = max(0, size - _BACKSCAN)
        buf = os.pread(self._fd, size - lo, lo)
        cut = _last_terminator(buf)
        if cut >= 0:
            self._offset = lo + cut + 1
        else:
            # No line start in reach (or an empty file): start at lo, dropping a fragment if mid-line.
            self._offset, self._skipping = lo, lo > 0

    def _new_generation(self) -> None:
        """Switch to whatever file the path names now (maybe none yet), from its start."""
        self._close_fd()
        self._offset = self._lines = 0
        self._head, self._size, self._skipping = b"", -1, False
        self._reset = True
        st = self._open()
        self._ident = ident(st) if st is not None else None
        if st is not None:
            self._head = os.pread(self._fd, HEAD_BYTES, 0)

    def _reopen(self) -> bool:
        """Open the path after release() or while waiting for it to appear; True if a file is open."""
        st = self._open()
        if st is None:
            return False
        if self._ident is None:  # first appearance: a new file, read from 0
            self._ident = ident(st)
            self._head = os.pread(self._fd, HEAD_BYTES, 0)
            return True
        if ident(st) != self._ident or not os.pread(self._fd, len(self._head), 0) == self._head:
            # Replaced while released: the old file's unread tail (if any) is out of reach.
            self._new_generation()
            return self._fd is not None
        return True

    # -- reading ---------------------------------------------------------------------
    def read(self) -> Chunk:
        """Everything complete that is new since the last read, from one generation, bounded by max_chunk."""
        for _ in range(3):  # at most: finish old generation, switch, read new one
            if self._fd is None and not self._reopen():
                return Chunk(b"")
            size = os.fstat(self._fd).st_size
            if size != self._size:
                self._check_truncated(size)
                self._size = size
            data, more = self._read_complete(size)
            if data:
                # A rotation right behind these lines: say so, so the caller reads the new file now.
                return self._emit(data, more or self._path_moved())
            if more:
                return Chunk(b"", more=True)
            if not self._path_moved():
                return Chunk(b"")
            # Rotated or replaced: the writer has moved on, so the old file is complete. Take
            # what it got since we looked (and its unterminated last line) before switching.
            data, more = self._read_complete(os.fstat(self._fd).st_size, final=True)
            if more or data:
                chunk = self._emit(data, more=True)
                if not more:
                    self._new_generation()
                return chunk
            self._new_generation()
        return Chunk(b"", more=True)

    def _check_truncated(self, size: int) -> None:
        head = os.pread(self._fd, HEAD_BYTES, 0) if size else b""
        if size >= self._offset and head.startswith(self._head):
            if len(head) > len(self._head):  # a young file's head grew; else the same object
                self._head = head            # stays (position() hashes it once per change)
            return
        # Truncated (copytruncate, `> file`), or rewritten from 0 past our offset.
        log.info("%s: truncated; reading it again from the start", self.path)
        self._offset = self._lines = 0
        self._head, self._skipping, self._reset = head, False, True

    def _read_complete(self, size: int, final: bool = False) -> tuple[bytes, bool]:
        """Complete lines between the offset and `size` (and, if final, an unterminated tail)."""
        n = min(size - self._offset, self._max)
        if n <= 0:
            return b"", False
        buf = os.pread(self._fd, n, self._offset)
        more = size - self._offset > len(buf)
        cut = _last_terminator(buf) + 1
        if final and not more and cut < len(buf):
            self._offset += len(buf)
            data = buf + b"\n"  # the writer abandoned its last line: hand it out whole
        elif cut == 0:
            if len(buf) >= self._max:
                # One line longer than max_chunk: drop it rather than hold memory for it.
                log.warning("%s: line longer than %d bytes dropped", self.path, self._max)
                self._offset += len(buf)
                self.dropped += len(buf)
                self._skipping = True
                return b"", True
            return b"", False
        else:
            data = buf[:cut]
            self._offset += cut
        if self._skipping:
            i = _first_terminator(data) + 1
            self.dropped += i
            data, self._skipping = data[i:], False
        return data, more

    def _emit(self, data: bytes, more: bool) -> Chunk:
        self._lines += data.count(b"\n")
        chunk = Chunk(data, self._reset, more)
        if data:
            self._reset = False
        return chunk

    def _path_moved(self) -> bool:
        """True if the path now names another file than the one open."""
        try:
            st = self._stat(self.path)
        except OSError:
            # Gone (deleted, or renamed and not yet re-created): keep the open file, the
            # writer may still be appending to it through its own fd.
            return False
        return ident(st) != self._ident

    # -- state -----------------------------------------------------------------------
    def position(self) -> Position:
        """What has been handed out (never what was read ahead), for checkpoints."""
        dev, ino = self._ident or (0, 0)
        n = min(HEAD_BYTES, self._offset)
        # A hash of the head once per change, not per call: commit() asks every pass, per file.
        if self._fp_of is None or self._fp_of[0] is not self._head or self._fp_of[1] != n:
            self._fp_of, self._fp = (self._head, n), fingerprint(self._head[:n])
        return Position(dev, ino, self._offset, self._fp, self._lines)

    @property
    def is_open(self) -> bool:
        """True while a file descriptor is held."""
        return self._fd is not None

    def release(self) -> None:
        """Close the fd of a quiet file to bound open fds; the next read() reopens and re-checks identity."""
        self._close_fd()
        self._size = -1  # re-check truncation after reopening

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Close the file; the follower must not be read afterwards."""
        self._close_fd()

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
