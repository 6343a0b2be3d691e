"""`--format regex:PATTERN`: lines matched by a user's regular expression with named groups.

The group named `step` is the step; every other named group is a metric named after the group,
read as a number (a match that is not a number gives no value). Lines, and tqdm updates between
carriage returns, that do not match are skipped. The pattern runs in polars (Rust regex syntax:
`(?P<name>...)` works), over the whole chunk at once; it is data, never code.

    p = RegexParser(r"it (?P<step>\\d+) .* loss (?P<loss>\\S+)")
"""
from __future__ import annotations

from typing import Any

import polars as pl

from alertd.parse.frame import STEP_COL, BadTally, LineParser, decode
from alertd.record import LINE, RESERVED

PREFIX = "regex:"


def compile_pattern(pattern: str) -> list[str]:
    """The named groups of pattern; ValueError if it does not compile or names no metric group."""
    try:
        schema = pl.DataFrame({"t": [""]}).select(pl.col("t").str.extract_groups(pattern)).schema["t"]
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"--format regex: bad pattern: {str(e).splitlines()[-1]}") from None
    names = [f.name for f in schema.fields if not f.name.isdigit()]
    if not [n for n in names if n != "step"]:
        raise ValueError("--format regex: the pattern needs a named group per metric, e.g. (?P<loss>\\S+)")
    return names


class RegexParser(LineParser):
    """Stateful parser for one file, with one pattern.

    >>> RegexParser(r"it (?P<step>\\d+) loss (?P<loss>\\S+)").feed(b"it 5 loss 2.5\\n").frame.row(0)
    (5, 1, 2.5)
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.names = compile_pattern(pattern)
        super().__init__()

    def _rows(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> pl.DataFrame:
        lines = pl.DataFrame({"t": decode(data).split("\n")}).with_row_index("i")
        lines = lines.select((pl.col("i").cast(pl.Int64) + self._lines + 1).alias(LINE),
                             pl.col("t").str.split("\r")).explode("t")
        m = lines.select(LINE, pl.col("t").str.extract_groups(self.pattern).alias("m")).unnest("m")
        metrics = [n for n in self.names if n != "step" and n not in RESERVED]
        return m.select(LINE, *[pl.col(n).cast(pl.Float64, strict=False).alias(n) for n in metrics],
                        *([pl.col("step").cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
                           .alias(STEP_COL)] if "step" in self.names else []))
