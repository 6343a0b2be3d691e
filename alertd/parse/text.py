"""Free-text training logs: metric pairs in print lines, tqdm bars, MMEngine and HF Trainer lines.

Every regex runs over the whole chunk at once as a polars string expression; there is no
Python loop per line. A line (or a tqdm update between carriage returns) with at least one
metric pair is one record; other lines are skipped silently, as logs are full of them.
"""
from __future__ import annotations

import polars as pl

from alertd.parse.frame import STEP_COL, STEP_KEYS, BadTally, decode, finalize, parsed
from alertd.record import LINE, RESERVED, Parsed

_KEY = r"[A-Za-z_][A-Za-z0-9_./\-]*"
_NUM = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?))"
# `key=value`, `key: value`, `'key': value`, `'key': 'value'`. The value must end at a
# delimiter, so `eta: 0:01:02`, `12.1it/s`, `3/10` and `localhost:8080/x` give nothing.
_PAIR = rf"""['"]?({_KEY})['"]?\s*[=:]\s*['"]?({_NUM})['"]?(?:[\s,;|}}\])]|$)"""
# `step 120 | loss 2.34`: a name and a number alone between pipes.
_PIPE_PAIR = rf"^\s*({_KEY})\s+({_NUM})\s*$"
# tqdm: `| 45/100 [00:03<00:04, ...` or, without a total, `45it [00:03, ...`.
_TQDM_N = r"(\d+)(?:/\S+|[A-Za-z]+)\s\[(?:\d+:)*\d+:\d\d[<,\]]"
# MMEngine: `Epoch(train) [e][ i/n]` and `Iter(train) [ i/n]`.
_MM_EPOCH = r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]"
_MM_ITER = r"Iter\(train\)\s*\[\s*(\d+)/\d+\]"
NOT_METRICS = ("eta",)  # time-left estimates look like numbers but are not metrics
_SEG = "\x00seg"        # internal column names cannot clash with metric keys (no NUL in keys)
_KEYC, _VALC = "\x00key", "\x00val"


def _segments(text: str, base: int) -> pl.DataFrame:
    """One row per line, or per tqdm update within a line (split at '\\r'), with its LINE."""
    df = pl.DataFrame({"t": text.split("\n")}).with_row_index(_SEG)
    df = df.select((pl.col(_SEG).cast(pl.Int64) + base + 1).alias(LINE), pl.col("t").str.split("\r"))
    df = df.explode("t").filter(pl.col("t").str.contains(r"[\d=:|]"))  # cheap pre-filter
    return df.with_row_index(_SEG)


def _pairs(segs: pl.DataFrame) -> pl.DataFrame:
    """All (segment, key, value) pairs in every style."""
    eq = (segs.select(_SEG, pl.col("t").str.extract_all(_PAIR).alias("p")).explode("p")
          .drop_nulls("p"))
    eq = eq.select(_SEG, pl.col("p").str.extract(_PAIR, 1).alias(_KEYC),
                   pl.col("p").str.extract(_PAIR, 2).alias(_VALC))
    piped = (segs.filter(pl.col("t").str.contains("|", literal=True))
             .select(_SEG, pl.col("t").str.split("|").alias("p")).explode("p")
             .filter(pl.col("p").str.contains(_PIPE_PAIR)))
    piped = piped.select(_SEG, pl.col("p").str.extract(_PIPE_PAIR, 1).alias(_KEYC),
                         pl.col("p").str.extract(_PIPE_PAIR, 2).alias(_VALC))
    pairs = pl.concat([eq, piped]).filter(~pl.col(_KEYC).is_in(NOT_METRICS))
    return pairs.with_columns(pl.col(_VALC).cast(pl.Float64, strict=False))


def _records(segs: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Pivot pairs into one row per segment with a metric; attach LINE and the step."""
    is_step = pl.col(_KEYC).str.to_lowercase().is_in(STEP_KEYS)
    metrics = pairs.filter(~is_step & ~pl.col(_KEYC).is_in(RESERVED))
    if metrics.height == 0:
        return pl.DataFrame(schema={LINE: pl.Int64})
    wide = metrics.pivot(on=_KEYC, index=_SEG, values=_VALC, aggregate_function="last")
    explicit = (pairs.filter(is_step).group_by(_SEG)
                .agg(pl.col(_VALC).first().cast(pl.Int64, strict=False).alias("explicit")))
    t = pl.col("t")
    steps = segs.select(
        _SEG, LINE,
        ((t.str.extract(_MM_EPOCH, 1).cast(pl.Int64, strict=False) - 1)
         * t.str.extract(_MM_EPOCH, 3).cast(pl.Int64, strict=False)
         + t.str.extract(_MM_EPOCH, 2).cast(pl.Int64, strict=False)).alias("mm_epoch"),
        t.str.extract(_MM_ITER, 1).cast(pl.Int64, strict=False).alias("mm_iter"),
        t.str.extract(_TQDM_N, 1).cast(pl.Int64, strict=False).alias("tqdm"),
    )
    out = (wide.join(steps, on=_SEG, how="left").join(explicit, on=_SEG, how="left").sort(_SEG)
           .with_columns(pl.coalesce("explicit", "mm_epoch", "mm_iter", "tqdm").alias(STEP_COL)))
    return out.drop(_SEG, "explicit", "mm_epoch", "mm_iter", "tqdm")


class TextParser:
    """Stateful parser for free-text logs of one file.

    >>> TextParser().feed(b"step 120 | loss 2.34 | lr 1e-04\\n").frame.row(0)
    (120, 1, 2.34, 0.0001)
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget position and record count: the file was truncated or rotated."""
        self._lines = 0
        self._records = 0

    def feed(self, data: bytes) -> Parsed:
        """Parse a chunk of complete lines (tqdm updates may end in '\\r')."""
        bad = BadTally()
        raw = pl.DataFrame(schema={LINE: pl.Int64})
        try:
            segs = _segments(decode(data), self._lines)
            if segs.height:
                raw = _records(segs, _pairs(segs))
        except Exception as e:  # never raise on input; say why instead
            bad.add(self._lines + 1, f"parser error: {type(e).__name__}", max(1, data.count(b"\n")))
        self._lines += data.count(b"\n")
        frame = finalize(raw, self._records)
        self._records += frame.height
        return parsed(frame, {}, bad)
