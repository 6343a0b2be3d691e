"""Helpers shared by the parsers: numeric casting, bad-line tally, the final frame shape."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from alertd.record import LINE, RESERVED, STEP, Parsed

# Names that carry the training step rather than a metric, by priority.
STEP_KEYS = ("_step", "step", "global_step", "iteration", "iter")
STEP_COL = "__step_raw"  # temporary column: the explicit step before the ordinal fallback

# A number as a string, in the syntax polars' String -> Float64 cast accepts.
_NUM_RE = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|infinity)", re.I)


@dataclass
class BadTally:
    """Counts malformed lines and remembers the first one."""

    count: int = 0
    first_line: int | None = None
    reason: str = ""

    def add(self, line: int, reason: str, n: int = 1) -> None:
        """Record `n` malformed lines, the first of them at `line`."""
        if n <= 0:
            return
        self.count += n
        if self.first_line is None or line < self.first_line:
            self.first_line, self.reason = line, reason[:120]


def to_number(v: Any) -> float | None:
    """A JSON-ish value as a float, or None when it is not numeric (strings of numbers count)."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:  # ints beyond float range
            return math.copysign(math.inf, v)
    if isinstance(v, str) and len(v) < 64 and _NUM_RE.fullmatch(v):
        return float(v)
    return None


def holds_numbers(dtype: pl.DataType) -> bool:
    """Whether a column of this dtype casts to metric values (lists, structs left over, nulls,
    binary do not)."""
    return dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.String


def numeric_expr(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """Expression casting column `name` to Float64, or None if the dtype holds no numbers."""
    return pl.col(name).cast(pl.Float64, strict=False) if holds_numbers(dtype) else None


def step_expr(names: list[str]) -> pl.Expr:
    """The explicit step of each row: the first step-like column present, as Int64."""
    cols = [pl.col(n).cast(pl.Float64, strict=False).cast(pl.Int64, strict=False) for n in names]
    return pl.coalesce(cols) if len(cols) > 1 else cols[0]


def _pattern(name: str) -> bool:
    """A key polars reads as a pattern wherever a column is named (`*`, `^...$`): no rule could
    name it, and every query would select other columns with it. Left out of the frame."""
    return name == "*" or (len(name) > 1 and name.startswith("^") and name.endswith("$"))


def finalize(raw: pl.DataFrame, ordinal_base: int) -> pl.DataFrame:
    """Shape a raw batch (LINE, optional STEP_COL, metric columns of any dtype) into the contract.

    Keeps rows with at least one metric value; STEP falls back to the record's ordinal
    (1, 2, 3, ... counted from `ordinal_base`).
    """
    metrics = [name for name, dtype in raw.schema.items()
               if name not in RESERVED and name != STEP_COL and holds_numbers(dtype) and not _pattern(name)]
    if not metrics or raw.height == 0:
        return Parsed.empty().frame
    casts = [raw.get_column(m).cast(pl.Float64, strict=False) for m in metrics]
    explicit = raw.get_column(STEP_COL).cast(pl.Int64) if STEP_COL in raw.columns else None
    if any(c.null_count() == 0 for c in casts) and (explicit is None or explicit.null_count() == 0):
        # The common case, column by column (an eager query plans itself: ~0.3 ms apiece, most of
        # a small feed's parse): every row has a metric, and its step or none has one.
        step = explicit if explicit is not None else pl.Series(
            range(ordinal_base + 1, ordinal_base + 1 + raw.height), dtype=pl.Int64)
        keep = [c for c in casts if c.null_count() < raw.height]
        return pl.DataFrame([step.alias(STEP), raw.get_column(LINE).cast(pl.Int64), *keep])
    # Rows with a metric, by Series too (one query less).
    present = casts[0].is_not_null()
    for c in casts[1:]:
        present = present | c.is_not_null()
    kept = int(present.sum())
    ordinal = pl.Series(range(ordinal_base + 1, ordinal_base + 1 + kept), dtype=pl.Int64)
    step = ordinal if explicit is None else explicit.filter(present)
    if explicit is not None and step.null_count():
        step = step.zip_with(step.is_not_null(), ordinal)
    columns = [c.filter(present) for c in casts]
    # A column all null in this batch says nothing: left out (parsers are sparse anyway).
    return pl.DataFrame([step.alias(STEP), raw.get_column(LINE).cast(pl.Int64).filter(present),
                         *(c for c in columns if c.null_count() < kept)])


def flatten(obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None,
            depth: int = 0) -> dict[str, Any]:
    """Flatten nested dicts with '/' (`{"a": {"b": 1}}` -> `{"a/b": 1}`); first key wins."""
    out = {} if out is None else out
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if depth < 32:  # deeper parts are not metrics anyone logs; avoid deep recursion
                flatten(v, key + "/", out, depth + 1)
        elif key not in out:
            out[key] = v
    return out


def decode(data: bytes) -> str:
    """Bytes as text: invalid UTF-8 replaced, NUL bytes (preallocated log files) read as blanks."""
    return data.decode("utf-8", errors="replace").replace("\x00", " ")


def parsed(frame: pl.DataFrame, meta: dict[str, Any], bad: BadTally) -> Parsed:
    """Bundle a finished frame, meta and bad-line tally into a Parsed."""
    return Parsed(frame, meta, bad.count, bad.first_line, bad.reason)


class LineParser:
    """What every line-format parser shares: line numbering across feeds, record ordinals, and
    never raising on input (a failure is counted as bad lines with its reason).

    Subclasses implement `_rows(data, meta, bad)`: a frame with LINE and raw metric columns for
    the complete lines in `data`, adding variables to `meta` and malformed lines to `bad`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget position: the file was truncated or rotated."""
        self._lines = 0
        self._records = 0

    def _rows(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> pl.DataFrame:
        raise NotImplementedError

    def _rows_and_newlines(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> tuple[pl.DataFrame, int]:
        """`_rows` and the number of b"\\n" in `data`; a parser that scans the bytes anyway
        (JSONL) overrides this to count them in the same pass."""
        return self._rows(data, meta, bad), data.count(b"\n")

    def feed(self, data: bytes) -> Parsed:
        """Parse a chunk of complete lines."""
        bad, meta = BadTally(), {}
        raw, nl = pl.DataFrame(schema={LINE: pl.Int64}), 0
        if data:
            try:
                raw, nl = self._rows_and_newlines(data, meta, bad)
            except Exception as e:  # never raise on input; say why instead
                nl = data.count(b"\n")
                bad.add(self._lines + 1, f"parser error: {type(e).__name__}", max(1, nl))
        self._lines += nl
        frame = finalize(raw, self._records)
        self._records += frame.height
        return parsed(frame, meta, bad)
