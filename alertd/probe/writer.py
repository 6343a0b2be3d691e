"""The probe's output: one JSON object per line, meta record first (a documented contract)."""
from __future__ import annotations

import json
import os
from typing import Any, TextIO

DEFAULT_PATH = "alertd-probe.jsonl"


def rank_path(path: str | os.PathLike[str], rank: int, world_size: int) -> str:
    """`x.jsonl` -> `x.rank{R}.jsonl` when several ranks write (each rank its own file)."""
    path = os.fspath(path)
    if world_size <= 1:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.rank{rank}{ext or '.jsonl'}"


class JsonlWriter:
    """Writes records as lines and flushes each, so a tailing daemon sees whole lines promptly.

    Each record is flushed (~0.1 ms): the last records before an OOM kill or a segfault are the
    ones that explain it, so none waits in a buffer."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # "w": a new run starts a new stream; the daemon treats the shrink as truncation.
        self._f: TextIO | None = open(path, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line (NaN/Infinity allowed, as `json.dumps` writes them)."""
        if self._f is None:
            return
        line = json.dumps(record, allow_nan=True)
        self._f.write(line + "\n")
        self._f.flush()

    def close(self) -> None:
        """Flush and close; later writes are ignored."""
        if self._f is not None:
            self._f.close()
            self._f = None
