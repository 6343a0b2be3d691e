"""Replay finished logs through the engine in large chunks, as if they had been streamed."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.record import AlertEvent, Parsed

CHUNK = 32 << 20  # bytes per parse: large enough for polars to be efficient, bounded memory


class InputError(Exception):
    """A file that cannot be used at all; the message names the file (and line)."""


@dataclass
class Tally:
    """Malformed-line bookkeeping for one file (reported on stderr, never fatal)."""

    records: int = 0
    bad_lines: int = 0
    first_bad_line: int | None = None
    first_bad_reason: str = ""

    def add(self, parsed: Parsed) -> None:
        self.records += parsed.frame.height
        if parsed.bad_lines:
            if self.first_bad_line is None:
                self.first_bad_line = parsed.first_bad_line
                self.first_bad_reason = parsed.first_bad_reason
            self.bad_lines += parsed.bad_lines

    def summary(self, path: str) -> str | None:
        if not self.bad_lines:
            return None
        return (f"alertd: {path}: skipped {self.bad_lines} malformed line(s); first at line "
                f"{self.first_bad_line}: {self.first_bad_reason}")


def chunks(path: str, size: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes in pieces that end on a line terminator (the last may not)."""
    rest = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(size)
            if not block:
                break
            data = rest + block
            cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield data[:cut + 1]
    if rest:
        yield rest + b"\n"  # a finished log's last line counts even without its newline


def replay_file(engine: Engine, path: str, fmt: str, emit: Callable[[AlertEvent], None],
                progress: Callable[[int], None] | None = None) -> Tally:
    """Feed one file through the engine; raises InputError if it cannot be read or holds nothing."""
    parser = make_parser(fmt, path)
    tally = Tally()
    now = time.time()
    try:
        for data in chunks(path):
            parsed = parser.feed(data)
            tally.add(parsed)
            for event in engine.feed(path, parsed, now=now):
                emit(event)
            if progress:
                progress(len(data))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if tally.records == 0 and tally.bad_lines:
        raise InputError(f"{path}:{tally.first_bad_line}: no usable records "
                         f"({tally.bad_lines} malformed lines; first: {tally.first_bad_reason})")
    return tally
