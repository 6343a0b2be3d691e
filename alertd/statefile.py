"""State files (offsets, engine state, outbox, policy, silences): mode 0600, fsynced, replaced
atomically, JSON a person can read."""
from __future__ import annotations

import json
import os
from typing import Any


def ensure_dir(path: str) -> None:
    """Create the state directory (0700) if needed."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def _fsync_dir(path: str) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(path: str, text: str | bytes) -> None:
    """Write to path via a 0600 temporary file, fsync and rename: readers see old or new, never half."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old tmp file may have kept other bits
        _write_all(fd, text.encode() if isinstance(text, str) else text)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path)


def write_json(path: str, obj: Any) -> None:
    """Atomically write obj as indented JSON (people read these files)."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str, default: Any) -> Any:
    """The JSON in path, or default when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def append_line(path: str, line: str) -> None:
    """Append one line to a 0600 journal and fsync it before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        _write_all(fd, (line.rstrip("\n") + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
