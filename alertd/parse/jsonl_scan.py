"""One pass over a JSONL piece's bytes: what the parser must know before and after polars reads it.

A 32 MB piece used to be scanned once per question (newlines twice, '{' for the nesting guard,
':' and ':null' for the all-keys check), each pass ~0.18 s per 188 MB. One `bytes.translate`
now deletes every byte that carries no structure (digits, most letters), and the questions are
answered over what is left: a fifth of the piece on the bench log (the keys' quotes stay), the
newlines and openers alone a few percent.
"""
from __future__ import annotations

# Lines with this many '{' or '[' never reach polars: its schema inference slows steeply with
# nesting (polars 2.1, one line: 4 ms at 32 levels of objects, 80 ms at 64, 15 s at 200; arrays
# 25 ms at 64, 180 ms at 128), while json.loads reads such lines in microseconds.
MAX_OPENERS = 32

# Kept: newlines, openers ('[' as '{': the guard counts both alike), colons, quotes, 'n' (of
# null), and 'N' / 'I' (of NaN / Infinity, so the quoting step knows whether to look for them).
_TABLE = bytes.maketrans(b"[", b"{")
_DELETE = bytes(sorted(set(range(256)) - set(b'\n{[:"nNI')))
_NOT_OPENERS = b':"nNI'


class Scan:
    """The skeleton of a piece of JSONL and the counts taken from it."""

    __slots__ = ("skeleton", "openers", "newlines")

    def __init__(self, data: bytes) -> None:
        self.skeleton = data.translate(_TABLE, _DELETE)
        self.openers = self.skeleton.translate(None, _NOT_OPENERS)  # newlines and openers only
        self.newlines = self.openers.count(b"\n")

    def nesting_ok(self) -> bool:
        """True when no line holds MAX_OPENERS or more openers: then polars may read the piece."""
        return b"{" * MAX_OPENERS not in self.openers  # such a line is a run of '{' here

    def may_hold(self, letter: bytes) -> bool:
        """False when the piece surely holds no `letter` (b"N" or b"I") at all."""
        return letter in self.skeleton

    def colons(self) -> int:
        return self.skeleton.count(b":")

    def nulls(self) -> int:
        """Colons followed by null (true, false and numbers keep no 'n'; strings open with '"';
        NaN and Infinity start with capitals): one inside a string comes with its own colon."""
        return self.skeleton.count(b":n")
