"""MMEngine's `vis_data/scalars.json` (LocalVisBackend): one JSON object per line with a `step`.

Train records carry `iter` (and `step` = iter + 1); evaluation records carry no `iter`, and their
`step` is the epoch (or iteration) at which validation ran, on another axis. So that steps stay
one axis, an evaluation record is placed at the last train step seen before it, its own `step`
is kept as the metric `val/step`, and its `time`/`data_time` become `val/time`/`val/data_time`
instead of mixing into the train series of the same name.
"""
from __future__ import annotations

import polars as pl

from alertd.parse.jsonl import JsonlParser
from alertd.record import LINE, STEP, Parsed

VAL_STEP = "val/step"
_TIMING = ("time", "data_time")


class ScalarsJsonParser:
    """Stateful parser for one scalars.json.

    >>> p = ScalarsJsonParser()
    >>> p.feed(b'{"loss": 2.0, "iter": 9, "step": 10}\\n{"acc": 0.5, "step": 1}\\n').frame.rows()
    [(10, 1, 2.0, None, None), (10, 2, None, 0.5, 1.0)]
    """

    def __init__(self) -> None:
        self._inner = JsonlParser()
        self._last_train_step: int | None = None

    def reset(self) -> None:
        """Truncated or rotated: restart line numbering (the step axis carries on)."""
        self._inner.reset()

    def feed(self, data: bytes) -> Parsed:
        """Parse complete lines; evaluation records move to the train step axis."""
        text = data.decode("utf-8", errors="replace")
        lines = pl.DataFrame({"t": text.split("\n")})
        t = pl.col("t")
        lines = lines.select(pl.when(t.str.contains('"iter"', literal=True)).then(t)
                             .otherwise(t.str.replace('"step":', f'"{VAL_STEP}":', literal=True)))
        out = self._inner.feed("\n".join(lines["t"].to_list()).encode())
        frame = out.frame
        if frame.height == 0 or VAL_STEP not in frame.columns:
            if frame.height:
                self._last_train_step = int(frame[STEP][-1])
            return out
        is_val = pl.col(VAL_STEP).is_not_null()
        train_step = pl.when(is_val).then(None).otherwise(pl.col(STEP))
        frame = frame.with_columns(
            train_step.forward_fill().fill_null(pl.lit(self._last_train_step, dtype=pl.Int64)).alias("__train"))
        frame = frame.with_columns(
            pl.when(is_val).then(pl.coalesce("__train", pl.lit(0))).otherwise(pl.col(STEP)).alias(STEP),
            *[c for name in _TIMING if name in frame.columns
              for c in (pl.when(is_val).then(pl.col(name)).alias(f"val/{name}"),
                        pl.when(is_val).then(None).otherwise(pl.col(name)).alias(name))],
        ).drop("__train")
        trains = frame.filter(pl.col(VAL_STEP).is_null())
        if trains.height:
            self._last_train_step = int(trains[STEP][-1])
        out.frame = frame.select(STEP, LINE, *[c for c in frame.columns if c not in (STEP, LINE)])
        return out
