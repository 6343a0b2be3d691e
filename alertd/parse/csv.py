"""CSV metric files with a header row, as Lightning's CSVLogger writes `metrics.csv`.

The header is remembered across feeds; each data row is one record (sparse rows and
several rows per step are kept as they are). A row with the wrong number of fields is
malformed.
"""
from __future__ import annotations

import csv as pycsv
from typing import Any

import polars as pl

from alertd.parse.frame import STEP_COL, STEP_KEYS, BadTally, LineParser, decode, step_expr
from alertd.record import LINE, RESERVED


def _header(line: str) -> list[str]:
    """Column names from the header line; duplicates and blanks get a suffix so names stay unique."""
    names: list[str] = []
    for i, raw in enumerate(next(pycsv.reader([line]), [])):
        name = raw.strip() or f"column_{i}"
        while name in names:
            name += "_"
        names.append(name)
    return names


class CsvParser(LineParser):
    """Stateful CSV parser for one file.

    >>> p = CsvParser(); p.feed(b"epoch,step,train_loss\\n0,9,2.5\\n").frame.row(0)
    (9, 2, 0.0, 2.5)
    """

    def reset(self) -> None:
        """Forget the header and position: the file was truncated or rotated."""
        super().reset()
        self.columns: list[str] | None = None

    def _rows(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> pl.DataFrame:
        return self._table(decode(data), bad)

    def _table(self, text: str, bad: BadTally) -> pl.DataFrame:
        """Split into lines, take the header if none yet, and read the rest with polars."""
        lines = pl.DataFrame({"t": text.split("\n")}).with_row_index("i")
        if text.endswith("\n"):
            lines = lines.head(lines.height - 1)  # the empty piece after the last newline
        lines = lines.with_columns(
            (pl.col("i").cast(pl.Int64) + self._lines + 1).alias(LINE),
            pl.col("t").str.strip_chars("\r\n\t ").alias("t"),
        ).filter(pl.col("t") != "")
        if lines.height == 0:
            return pl.DataFrame(schema={LINE: pl.Int64})
        if self.columns is None:
            self.columns = _header(lines.item(0, "t"))
            lines = lines.slice(1)
        cols = self.columns
        ncomma = len(cols) - 1
        lines = lines.with_columns(pl.col("t").str.count_matches(",", literal=True).alias("n"),
                                   pl.col("t").str.contains('"', literal=True).alias("q"))
        quoted = lines.filter(pl.col("q"))
        plain = lines.filter(~pl.col("q"))
        wrong = plain.filter(pl.col("n") != ncomma)
        if wrong.height:
            bad.add(wrong.item(0, LINE), f"expected {len(cols)} fields, got {wrong.item(0, 'n') + 1}",
                    wrong.height)
        plain = plain.filter(pl.col("n") == ncomma)
        parts: list[pl.DataFrame] = []
        if plain.height:
            # Split every row at once; field k of each row becomes column k.
            fields = plain.select(pl.col(LINE), pl.col("t").str.split_exact(",", ncomma).alias("f"))
            fields = fields.unnest("f")
            fields.columns = [LINE, *cols]
            parts.append(fields)
        if quoted.height:
            parts.append(self._quoted(quoted, cols, bad))
        if not parts:
            return pl.DataFrame(schema={LINE: pl.Int64})
        raw = pl.concat(parts, how="diagonal_relaxed").sort(LINE)
        raw = raw.with_columns(pl.exclude(LINE).str.strip_chars())
        steps = [k for k in STEP_KEYS if k in cols]
        if steps:
            raw = raw.with_columns(step_expr(steps).alias(STEP_COL))
        return raw.drop([c for c in cols if c in STEP_KEYS or (c in RESERVED and c != LINE)])

    @staticmethod
    def _quoted(rows: pl.DataFrame, cols: list[str], bad: BadTally) -> pl.DataFrame:
        """Rows with quotes (rare in metrics files) go through the csv module one by one."""
        out: list[dict[str, Any]] = []
        for line_no, text in rows.select(LINE, "t").iter_rows():
            fields = next(pycsv.reader([text]), [])
            if len(fields) != len(cols):
                bad.add(line_no, f"expected {len(cols)} fields, got {len(fields)}")
                continue
            out.append({LINE: line_no, **dict(zip(cols, fields))})
        schema = {LINE: pl.Int64, **{c: pl.String for c in cols}}
        return pl.DataFrame(out, schema=schema)
