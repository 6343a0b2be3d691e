"""Choosing a parser: by name, or ("auto") from the first non-empty lines a file gives."""
from __future__ import annotations

import json
import re

from alertd.parse.csv import CsvParser
from alertd.parse.jsonl import JsonlParser
from alertd.parse.text import TextParser
from alertd.record import Parsed

FORMATS = ("auto", "jsonl", "text", "csv")
_PARSERS = {"jsonl": JsonlParser, "text": TextParser, "csv": CsvParser}
# A CSV header: two or more identifier-like names separated by commas.
_HEADER = re.compile(r"\s*[A-Za-z_][\w./\- ]*(?:\s*,\s*[A-Za-z_][\w./\- ]*)+\s*")


def detect(data: bytes) -> str | None:
    """The format of a file from its first bytes, or None while they hold no non-empty line."""
    for raw in data.split(b"\n")[:64]:
        line = raw.decode("utf-8", errors="replace").strip("\r\t \x00")
        line = line.rsplit("\r", 1)[-1].strip() if "\r" in line else line
        if not line:
            continue
        if line.startswith('{"'):
            return "jsonl"
        if line.startswith("{"):
            try:
                return "jsonl" if isinstance(json.loads(line), dict) else "text"
            except (ValueError, RecursionError):
                return "text"  # e.g. an HF Trainer dict printed with single quotes
        return "csv" if _HEADER.fullmatch(line) else "text"
    return None


class AutoParser:
    """Detects the format from the first non-empty data fed, then delegates for good.

    >>> p = AutoParser(); p.feed(b'{"loss": 1.5}\\n').frame.columns; p.format
    ['_step', '_line', 'loss']
    'jsonl'
    """

    def __init__(self) -> None:
        self.format: str | None = None
        self._inner: JsonlParser | TextParser | CsvParser | None = None
        self._skipped = b""  # leading blank lines, kept so line numbers stay right

    def reset(self) -> None:
        """Rotation or truncation: a new file may have another format, detect again."""
        self.__init__()

    def feed(self, data: bytes) -> Parsed:
        """Parse a chunk of complete lines, detecting the format first if needed."""
        if self._inner is None:
            fmt = detect(data)
            if fmt is None:
                self._skipped += b"\n" * data.count(b"\n")
                return Parsed.empty()
            self.format, self._inner = fmt, _PARSERS[fmt]()
            data, self._skipped = self._skipped + data, b""
        return self._inner.feed(data)


def make_parser(fmt: str = "auto") -> JsonlParser | TextParser | CsvParser | AutoParser:
    """A fresh parser for one file; fmt is one of FORMATS."""
    if fmt == "auto":
        return AutoParser()
    try:
        return _PARSERS[fmt]()
    except KeyError:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
