"""The probe's output: one JSON object per line, meta record first (a documented contract)."""
from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

DEFAULT_PATH = "alertd-probe.jsonl"


def rank_path(path: str | os.PathLike[str], rank: int, world_size: int) -> str:
    """`x.jsonl` -> `x.rank{R}.jsonl` when several ranks write (each rank its own file)."""
    path = os.fspath(path)
    if world_size <= 1:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.rank{rank}{ext or '.jsonl'}"


class JsonlWriter:
    """Writes records as lines, each call in one write(2) on an unbuffered file, so a tailing
    daemon sees whole lines and nothing waits in a buffer of ours when the process dies (when
    records are written is the probe's choice: see Probe's hold_s)."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # "w": a new run starts a new stream; the daemon treats the shrink as truncation.
        self._f: BinaryIO | None = open(path, "wb", buffering=0)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line (NaN/Infinity allowed, as `json.dumps` writes them)."""
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append records, one line each, in one write."""
        if self._f is None or not records:
            return
        data = "".join([json.dumps(r, allow_nan=True) + "\n" for r in records]).encode()  # ASCII
        n = self._f.write(data)
        while n < len(data):  # a regular file takes it all but for a full disk or a signal
            n += self._f.write(data[n:])

    def close(self) -> None:
        """Close; later writes are ignored."""
        if self._f is not None:
            self._f.close()
            self._f = None
