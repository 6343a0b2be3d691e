"""The records each run keeps for its windows to look back on, for all runs of a set of series
in one frame (batch.run_pass takes and puts them back); also the records waiting to be
evaluated by long-window groups (Engine.long_every)."""
from __future__ import annotations

import polars as pl

from alertd.rules.compile import RUN


class Tails:
    """The last `keep` records of every run for one set of series, in one frame with `_run`:
    a pass over hundreds of runs takes them and puts them back in one operation each. Also the
    records that wait to be evaluated (long windows, see Engine.long_every), oldest since `since`,
    and what cumulative functions carry over the records gone from the tails (`carried`)."""

    def __init__(self) -> None:
        self.frame: pl.DataFrame | None = None
        self.ids: set[int] = set()
        self.waiting: list[pl.DataFrame] = []
        self.since: float | None = None
        # Per run (`_run`), each cumulative node's value over the records that have left the
        # tails (batch.carried_prefix names the columns); null: none yet.
        self.carried: pl.DataFrame | None = None

    def wait(self, rows: pl.DataFrame, now: float) -> None:
        self.waiting.append(rows)
        self.since = now if self.since is None else self.since

    def release(self) -> pl.DataFrame:
        """The waiting records, in arrival order, no longer waiting."""
        rows = pl.concat(self.waiting, how="diagonal_relaxed") if len(self.waiting) > 1 else self.waiting[0]
        self.waiting, self.since = [], None
        return rows

    def by_run(self, waiting: bool = False) -> dict[int, pl.DataFrame]:
        """Every run's tail (or waiting records) without `_run`, split in one pass (snapshots)."""
        frame = (pl.concat(self.waiting, how="diagonal_relaxed") if self.waiting else None) if waiting else self.frame
        if frame is None or frame.height == 0:
            return {}
        return {rid: part for (rid,), part in frame.partition_by(RUN, as_dict=True, include_key=False).items()}

    def take(self, ids: list[int]) -> pl.DataFrame | None:
        if self.frame is None or not self.ids.intersection(ids):
            return None
        return self.frame if self.ids <= set(ids) else self.frame.filter(pl.col(RUN).is_in(ids))

    def put(self, ids: list[int], kept: pl.DataFrame) -> None:
        """Replace the tails of the runs `ids` by `kept` (their rows, `_run` first)."""
        rest = None
        if self.frame is not None and not self.ids <= set(ids):
            rest = self.frame.filter(~pl.col(RUN).is_in(ids))
        self.frame = pl.concat([rest, kept], how="diagonal_relaxed") if rest is not None and rest.height else kept
        self.ids = (self.ids - set(ids)) | set(kept[RUN].unique().to_list()) if kept.height else self.ids - set(ids)

    def set(self, rid: int, tail: pl.DataFrame) -> None:
        """Restore one run's tail (STEP, TIME, series columns)."""
        kept = tail.select(pl.lit(rid, dtype=pl.Int64).alias(RUN), pl.all())
        self.put([rid], kept)
