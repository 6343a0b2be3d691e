"""Parsers: chunks of complete log lines -> `Parsed` batches (one per chunk).

Usage:
    p = make_parser("auto")
    batch = p.feed(b'{"step": 1, "loss": 2.5}\n')   # batch.frame: _step, _line, loss

Many files at once (the live daemon's pass): `parse.many.feed_many([(p, data), ...])` gives
what feeding each in turn gives, with the JSONL ones parsed in one polars read.
"""
from __future__ import annotations

from typing import Protocol

from alertd.record import Parsed


class Parser(Protocol):
    """A stateful per-file parser."""

    def feed(self, data: bytes) -> Parsed:
        """Parse complete lines (data ends with b"\\n" or b"\\r"); never raises."""
        ...

    def reset(self) -> None:
        """The file was rotated or truncated: restart line numbers, header and counters."""
        ...


from alertd.parse.detect import FORMATS, make_parser  # noqa: E402  (detect imports Parser)

__all__ = ["FORMATS", "Parser", "make_parser"]
