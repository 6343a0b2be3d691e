"""What a report shows of finished runs: each series (downsampled) and each alert episode.

    runs = collect(["runs/exp3/train.log"], engine, fmt="auto")
    for run in runs: run.series["loss"].points, run.episodes

Events come from replaying each file through the engine (the same events as `alertd replay`);
the series from a second pass of the same parser over the file, kept as polars columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.record import FIRING, RESERVED, STEP, AlertEvent
from alertd.replay import Tally, chunks, replay_file

BUCKETS = 300  # per plot: a bucket keeps its min and max, so a one-record spike still shows


@dataclass
class Series:
    """One metric of one run, ready to draw."""

    name: str
    points: list[tuple[int, float]]   # finite values, downsampled to at most 2*BUCKETS
    nonfinite: list[int]              # steps where the value was NaN or +-inf (at most BUCKETS)
    count: int                        # records with a value
    last: float | None = None
    nonfinite_count: int = 0          # all of them, before thinning


@dataclass
class Episode:
    """An alert from its firing event to its resolved event (end None: still firing at the end)."""

    run: str
    rule: str
    severity: str
    labels: dict[str, str]
    start: int
    value: float | None
    summary: str
    threshold: float | None = None
    end: int | None = None


@dataclass
class RunData:
    path: str
    series: dict[str, Series] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    first_step: int = 0
    last_step: int = 0

    def series_of(self, episode: Episode) -> list[str]:
        """The series an episode is about (its label values that name series), else all of them."""
        named = [v for k, v in episode.labels.items() if k != "severity" and v in self.series]
        return named or list(self.series)


def episodes_of(events: list[AlertEvent]) -> list[Episode]:
    """Pair firing and resolved events per alert (run, rule, labels), in firing order."""
    open_: dict[str, Episode] = {}
    out: list[Episode] = []
    for e in events:
        if e.state == FIRING:
            ep = Episode(e.run, e.rule, e.severity, dict(e.labels), e.step, e.value, e.summary,
                         e.threshold)
            open_[e.key()] = ep
            out.append(ep)
        elif e.key() in open_:
            open_.pop(e.key()).end = e.step
    return out


def _downsample(frame: pl.DataFrame, col: str) -> Series:
    data = frame.select(STEP, pl.col(col)).filter(pl.col(col).is_not_null())
    finite = data.filter(pl.col(col).is_finite())
    bad = data.filter(~pl.col(col).is_finite())[STEP]
    bad_count = bad.len()
    if bad.len() > BUCKETS:  # a run that is NaN from some step on: a tick per bucket suffices
        bad = bad.gather_every(bad.len() // BUCKETS + 1)
    n = finite.height
    if n > 2 * BUCKETS:
        finite = (finite.with_row_index("_i").with_columns((pl.col("_i") * BUCKETS // n).alias("_b"))
                  .group_by("_b", maintain_order=True)
                  .agg(pl.col(STEP).get(pl.col(col).arg_min()).alias("s0"), pl.col(col).min().alias("v0"),
                       pl.col(STEP).get(pl.col(col).arg_max()).alias("s1"), pl.col(col).max().alias("v1")))
        pts = sorted(set(zip(finite["s0"].to_list(), finite["v0"].to_list()))
                     | set(zip(finite["s1"].to_list(), finite["v1"].to_list())))
    else:
        pts = list(zip(finite[STEP].to_list(), finite[col].to_list()))
    last = data[col][-1] if data.height else None
    return Series(col, pts, bad.to_list(), data.height, last, bad_count)


def read_series(path: str, fmt: str) -> tuple[dict[str, Series], int, int]:
    """Every metric of a file as a Series; and the first and last step."""
    parser = make_parser(fmt, path)
    frames = [p.frame for p in (parser.feed(data) for data in chunks(path)) if p.frame.height]
    if not frames:
        return {}, 0, 0
    frame = pl.concat(frames, how="diagonal_relaxed")
    cols = [c for c in frame.columns if c not in RESERVED]
    series = {c: _downsample(frame, c) for c in cols}
    return {c: s for c, s in series.items() if s.count}, int(frame[STEP].min()), int(frame[STEP].max())


def collect(paths: list[str], engine: Engine, fmt: str = "auto") -> list[RunData]:
    """Replay each file (raises alertd.replay.InputError) and read its series."""
    runs = []
    for path in paths:
        events: list[AlertEvent] = []
        run = RunData(path)
        run.tally = replay_file(engine, path, fmt, events.append)
        run.episodes = episodes_of(events)
        run.series, run.first_step, run.last_step = read_series(path, fmt)
        runs.append(run)
    return runs
