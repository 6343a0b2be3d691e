"""The records of a pass as frames: every run's new records in one frame with `_run`, and the
rows of it that a group of rules reads.

Built from Series where that is enough: an eager select or filter plans a polars query of its
own (~0.1-0.3 ms), which for a pass of a few records is most of its cost.
"""
from __future__ import annotations

import polars as pl

from alertd.record import STEP, TIME
from alertd.rules.compile import RUN

F64 = pl.Float64


def stack(frames: list[pl.DataFrame], ids: list[int], untimed: list[int],
           now: float) -> tuple[pl.DataFrame, list[int]]:
    """The batches of several runs as one frame with `_run` (and the arrival time where a run's
    records carry none), and the order of the frames in it: runs come grouped by their column
    set, so that most of the stacking is a plain vertical concatenation (a diagonal one plans a
    query per frame: ~9 ms for 500 files; the order of runs in a batch does not matter)."""
    by_columns: dict[tuple, list[int]] = {}
    for k, f in enumerate(frames):
        by_columns.setdefault(tuple(f.columns), []).append(k)
    order = [k for ks in by_columns.values() for k in ks]
    parts = [_vertical([frames[k] for k in ks]) for ks in by_columns.values()]
    batch = parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
    if len(frames) > 1:
        run = pl.Series(RUN, [ids[k] for k in order], dtype=pl.Int64).repeat_by(
            pl.Series([frames[k].height for k in order])).explode()
    else:  # one run (one file, replay): a constant column, without planning a query
        run = pl.Series(RUN, ids, dtype=pl.Int64).new_from_index(0, batch.height)
    batch = batch.hstack([run]) if RUN not in batch.columns else batch.with_columns(run)
    if untimed:
        if TIME not in batch.columns:
            batch = batch.hstack([pl.Series(TIME, [now], dtype=F64).new_from_index(0, batch.height)])
        else:
            arrival = pl.lit(now, dtype=F64)
            time = pl.when(pl.col(RUN).is_in(untimed)).then(arrival).otherwise(pl.col(TIME))
            batch = batch.with_columns(time.alias(TIME))
    return batch, order


def _vertical(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames with the same columns stacked; a column whose dtype differs between them (not
    from the parsers, which give Float64 metrics) is stacked by promotion instead."""
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="vertical")
    except pl.exceptions.PolarsError:
        return pl.concat(frames, how="diagonal_relaxed")


def group_rows(columns: tuple[str, ...], frame: pl.DataFrame) -> pl.DataFrame | None:
    """The records of a batch on which every series of a group has a value, or None."""
    if not all(c in frame.columns for c in columns):
        return None  # a series of the group is absent from this whole batch
    # Series by Series (an eager select or filter plans a query: ~0.1-0.3 ms, per group per pass).
    series = [frame.get_column(RUN), frame.get_column(STEP), frame.get_column(TIME),
              *(frame.get_column(c).cast(F64) for c in columns)]
    if any(s.null_count() for s in series[3:]):
        present = series[3].is_not_null()
        for s in series[4:]:
            present = present & s.is_not_null()
        series = [s.filter(present) for s in series]
    return pl.DataFrame(series) if series[0].len() else None
