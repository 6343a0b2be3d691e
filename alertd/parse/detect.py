"""Choosing a parser: by name, or ("auto") from the first non-empty lines a file gives."""
from __future__ import annotations

import fnmatch
import json
import os
import re

from alertd.parse.csv import CsvParser
from alertd.parse.jsonl import JsonlParser
from alertd.parse.regex import PREFIX as REGEX_PREFIX, RegexParser
from alertd.parse.scalars_json import ScalarsJsonParser
from alertd.parse.tensorboard import TensorBoardParser, looks_like_tfrecord
from alertd.parse.text import TextParser
from alertd.parse.trainer_state import TrainerStateParser
from alertd.record import Parsed

FORMATS = ("auto", "jsonl", "text", "csv")
# The formats of other tools' metric files (and regex:PATTERN); kept apart so FORMATS stays the line formats.
ALL_FORMATS = FORMATS + ("tensorboard", "trainer_state", "scalars_json")
_PARSERS = {"jsonl": JsonlParser, "text": TextParser, "csv": CsvParser, "tensorboard": TensorBoardParser,
            "trainer_state": TrainerStateParser, "scalars_json": ScalarsJsonParser}
# Formats whose files are known by name, where the content alone is ambiguous (scalars.json is
# JSON lines either way, but needs its evaluation records moved to the train step axis).
_BY_NAME = (("events.out.tfevents.*", "tensorboard"), ("trainer_state.json", "trainer_state"),
            ("scalars.json", "scalars_json"))


def format_by_name(path: str | None) -> str | None:
    """The format a file's name says it has, or None."""
    name = os.path.basename(path or "")
    return next((fmt for pattern, fmt in _BY_NAME if fnmatch.fnmatch(name, pattern)), None)


def check_format(fmt: str) -> str:
    """argparse type for --format: one of ALL_FORMATS or regex:PATTERN (the pattern is compiled now)."""
    from argparse import ArgumentTypeError  # argparse prints its message as the usage error
    if fmt.startswith(REGEX_PREFIX):
        from alertd.parse.regex import compile_pattern
        try:
            compile_pattern(fmt[len(REGEX_PREFIX):])
        except ValueError as e:
            raise ArgumentTypeError(str(e)) from None
    elif fmt not in ALL_FORMATS:
        raise ArgumentTypeError(f"unknown log format {fmt!r}; expected one of {', '.join(ALL_FORMATS)} or regex:PATTERN")
    return fmt


def _sniff(data: bytes) -> str | None:
    """Formats recognisable from their first bytes before the line-based detection runs."""
    if looks_like_tfrecord(data):
        return "tensorboard"
    head = data[:4096].lstrip()
    if head.startswith(b"{") and head[1:].lstrip(b" \t\r").startswith(b"\n") and b'"log_history"' in data:
        return "trainer_state"  # pretty-printed JSON with the Trainer's history
    return None
# A CSV header: two or more identifier-like names separated by commas.
_HEADER = re.compile(r"\s*[A-Za-z_][\w./\- ]*(?:\s*,\s*[A-Za-z_][\w./\- ]*)+\s*")


def detect(data: bytes) -> str | None:
    """The format of a file from its first bytes, or None while they hold no non-empty line."""
    for raw in data.split(b"\n", 64)[:64]:
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

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.format: str | None = None
        self._inner = None
        self._skipped = b""  # leading blank lines, kept so line numbers stay right
        by_name = format_by_name(path)
        if by_name is not None:
            self.format, self._inner = by_name, _PARSERS[by_name]()

    def reset(self) -> None:
        """Rotation or truncation: a new file may have another format, detect again."""
        if format_by_name(self.path) is not None:
            self._inner.reset()  # the name decides; the parser keeps what survives a rewrite
            return
        self.__init__(self.path)

    def feed(self, data: bytes) -> Parsed:
        """Parse a chunk of complete lines, detecting the format first if needed."""
        routed = self.route(data)
        if routed is None:
            return Parsed.empty()
        parser, data = routed
        return parser.feed(data)

    def route(self, data: bytes) -> tuple[object, bytes] | None:
        """The parser `feed` hands `data` to and the bytes it hands it (blank lines held back
        before detection go first), detecting the format first if needed; None while no
        non-empty line has come (feed then returns an empty batch). feed_many batches on this."""
        if self._inner is None and not self._skipped:
            sniffed = _sniff(data)  # binary or multi-line formats, known from the file's first bytes
            if sniffed is not None:
                self.format, self._inner = sniffed, _PARSERS[sniffed]()
        if self._inner is None:
            fmt = detect(data)
            if fmt is None:
                self._skipped += b"\n" * data.count(b"\n")
                return None
            self.format, self._inner = fmt, _PARSERS[fmt]()
            data, self._skipped = self._skipped + data, b""
        return self._inner, data


def make_parser(fmt: str = "auto", path: str | None = None):
    """A fresh parser for one file; fmt is one of FORMATS or regex:PATTERN; path lets "auto" go by name."""
    if fmt == "auto":
        return AutoParser(path)
    if fmt.startswith(REGEX_PREFIX):
        return RegexParser(fmt[len(REGEX_PREFIX):])
    try:
        return _PARSERS[fmt]()
    except KeyError:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(ALL_FORMATS)} or regex:PATTERN") from None
