"""Free-text training logs: metric pairs in print lines, tqdm bars, MMEngine and HF Trainer lines.

Every regex runs over the whole chunk at once as a polars string expression; the only Python
loop is over the few config-print lines (HF Trainer's run header). A line (or a tqdm update
between carriage returns) with at least one metric pair is one record; other lines are
skipped silently, as logs are full of them.
"""
from __future__ import annotations

import re
from typing import Any

import polars as pl

from alertd.parse.frame import STEP_COL, STEP_KEYS, BadTally, LineParser, decode
from alertd.record import LINE, RESERVED

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
# A config print: a name of several words, `=`, an integer (thousands may be comma-separated)
# that ends the line or a `|` field, e.g. HF Trainer's `  Num examples = 51,200` or
# `  Total optimization steps = 800`. Metrics have one-word names (`loss = 0.5`,
# `train/loss_text=0.649`), so only the last word before `=` is captured as the key.
_CONFIG = r"[A-Za-z][ \t]+([A-Za-z_][\w./\-]*)[ \t]*=[ \t]*(?:\d{1,3}(?:,\d{3})+|\d+)[ \t]*(\||$)"
_CONFIG_RE = re.compile(_CONFIG)
# The header values that give HF dict lines (which carry only `'epoch': e`) their global step.
_HEADER_RE = re.compile(r"(?i)\b(num epochs|total optimization steps|gradient accumulation steps)"
                        r"[ \t]*=[ \t]*(\d{1,3}(?:,\d{3})+|\d+)")
_HEADER_KEYS = {"num epochs": "num_epochs", "total optimization steps": "total_steps",
                "gradient accumulation steps": "grad_accum"}
_HF_DICT = r"\{\s*['\"][A-Za-z_]"  # `{'loss': ...` as HF's ProgressCallback prints logs
_SCALE = "\x00scale"     # total_steps / num_epochs in force at each segment
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
    # `[INFO|trainer.py:2128]`: a logger's source location, not a metric.
    pairs = pl.concat([eq, piped]).filter(~pl.col(_KEYC).is_in(NOT_METRICS)
                                          & ~pl.col(_KEYC).str.ends_with(".py"))
    return pairs.with_columns(pl.col(_VALC).cast(pl.Float64, strict=False))


def _blank_config(m: re.Match[str]) -> str:
    """A config print as blank text (keeping its `|`); a step key (`global step = 100`) stays."""
    if m.group(1).lower() in STEP_KEYS:
        return m.group(0)
    return " |" if m.group(2) else " "


def _config_lines(segs: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, dict[str, int]]]]:
    """Blank config prints out of the segments; return them and the header values, by segment."""
    hit = segs.filter(pl.col("t").str.contains(_CONFIG))
    if hit.height == 0:
        return segs, []
    texts: dict[int, str] = {}
    header: list[tuple[int, dict[str, int]]] = []
    for seg, t in hit.select(_SEG, "t").iter_rows():  # header lines only: a handful per run
        texts[seg] = _CONFIG_RE.sub(_blank_config, t)
        vals = {_HEADER_KEYS[m.group(1).lower()]: int(m.group(2).replace(",", ""))
                for m in _HEADER_RE.finditer(t)}
        if vals:
            header.append((seg, vals))
    fixed = pl.DataFrame({_SEG: list(texts), "fixed": list(texts.values())},
                         schema={_SEG: segs.schema[_SEG], "fixed": pl.String})
    segs = (segs.join(fixed, on=_SEG, how="left")
            .with_columns(pl.coalesce("fixed", "t").alias("t")).drop("fixed").sort(_SEG))
    return segs, header


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
        t.str.contains(_HF_DICT).alias("hf"), _SCALE,
    )
    # HF's epoch is a float fraction of the run: its global step is epoch * steps per epoch.
    epoch = (pairs.filter(pl.col(_KEYC) == "epoch").group_by(_SEG)
             .agg(pl.col(_VALC).last().alias("epoch_v")))
    hf_step = (pl.when(pl.col("hf")).then((pl.col("epoch_v") * pl.col(_SCALE)).round())
               .cast(pl.Int64, strict=False))
    parts = ("explicit", "hf_step", "mm_epoch", "mm_iter", "tqdm")
    out = (wide.join(steps, on=_SEG, how="left").join(explicit, on=_SEG, how="left")
           .join(epoch, on=_SEG, how="left").sort(_SEG)
           .with_columns(hf_step.alias("hf_step"))
           .with_columns(pl.coalesce(*parts).alias(STEP_COL)))
    return out.drop(_SEG, "hf", _SCALE, "epoch_v", *parts)


class TextParser(LineParser):
    """Stateful parser for free-text logs of one file.

    >>> TextParser().feed(b"step 120 | loss 2.34 | lr 1e-04\\n").frame.row(0)
    (120, 1, 2.34, 0.0001)
    """

    def reset(self) -> None:
        """Forget position, record count and run header: the file was truncated or rotated."""
        super().reset()
        self._header: dict[str, int] = {}  # HF run header values in force; a later header updates

    def _steps_per_epoch(self) -> float | None:
        """total_steps / num_epochs from the header, or None when the header has not said."""
        t, e = self._header.get("total_steps"), self._header.get("num_epochs")
        return t / e if t is not None and e else None

    def _with_scale(self, segs: pl.DataFrame, header: list[tuple[int, dict[str, int]]]) -> pl.DataFrame:
        """Attach the steps per epoch in force at each segment, updating the header state."""
        before = pl.lit(self._steps_per_epoch(), dtype=pl.Float64)
        marks: list[tuple[int, float | None]] = []
        for seg, vals in header:
            self._header.update(vals)
            marks.append((seg, self._steps_per_epoch()))
        if not marks:
            return segs.with_columns(before.alias(_SCALE))
        at = pl.DataFrame(marks, schema={_SEG: segs.schema[_SEG], _SCALE: pl.Float64}, orient="row")
        return (segs.join(at, on=_SEG, how="left").sort(_SEG)
                .with_columns(pl.col(_SCALE).forward_fill().fill_null(before)))

    def _rows(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> pl.DataFrame:
        """Records of complete lines (tqdm updates may end in '\\r')."""
        segs = _segments(decode(data), self._lines)
        if not segs.height:
            return pl.DataFrame(schema={LINE: pl.Int64})
        segs, header = _config_lines(segs)
        for _, vals in header:  # the engine reads these as rule variables
            meta.update({k: v for k, v in vals.items() if k in ("grad_accum", "total_steps")})
        return _records(self._with_scale(segs, header), _pairs(segs))
