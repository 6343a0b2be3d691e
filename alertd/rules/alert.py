"""The alert state machine: inactive -> pending -> firing -> resolved (-> inactive).

An alert is pending while its condition has held on fewer than `for_steps` consecutive records
of its series, or for less than `for_seconds`; it fires on the record where both holds are met,
once per episode; the first record on which the condition is false resolves it. A record on
which the condition is unknown (null) changes nothing. Like Prometheus'
`for`, one false record drops a pending alert; unlike Prometheus, every record is evaluated, so a
single NaN between scrapes is never missed.

The machine runs over a whole batch of records at once as polars expressions; what it needs from
earlier batches is a small `Carry`, so a stream gives the same events however it is cut into
batches (replay and live agree).
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from alertd.record import TIME

INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"


@dataclass
class Carry:
    """What the machine remembers between batches for one alert instance."""

    streak: int = 0                # consecutive records on which the condition held
    since: float | None = None     # time the current streak began
    firing: bool = False
    fired_step: int | None = None  # step of the firing event of the current episode
    falses: int = 0                # consecutive records on which the condition was false

    def state(self) -> str:
        return FIRING if self.firing else PENDING if self.streak else INACTIVE

    def to_dict(self) -> dict:
        return {"streak": self.streak, "since": self.since, "firing": self.firing,
                "fired_step": self.fired_step, "falses": self.falses}

    @staticmethod
    def from_dict(d: dict) -> "Carry":
        return Carry(int(d.get("streak", 0)), d.get("since"), bool(d.get("firing", False)),
                     d.get("fired_step"), int(d.get("falses", 0)))


def _run_length(hits: str, resets: str, carried: int) -> pl.Expr:
    """Consecutive hit records, restarted by reset records, without grouping (O(n)): the running
    count of hits minus its value at the last reset; null records count as neither."""
    base = pl.when(pl.col(resets)).then(pl.col(hits + "#")).otherwise(None).forward_fill()
    return pl.when(base.is_null()).then(pl.col(hits + "#") + carried).otherwise(pl.col(hits + "#") - base)


def transitions(cond: str, carry: Carry, for_steps: int, for_seconds: float, prefix: str,
                keep_firing_steps: int = 0) -> list[list[pl.Expr]]:
    """Stages of expressions (each stage reads the columns of the ones before) giving, per
    record, `<prefix>streak`, `<prefix>since`, `<prefix>falses`, `<prefix>ok` (firing after this
    record), `<prefix>fire` and `<prefix>resolve`.

    `keep_firing_steps` damps flapping (Prometheus' keep_firing_for): a firing alert resolves
    only after that many false records in a row, plus one.
    """
    p = prefix
    need = max(for_steps, 1)
    col = pl.col
    # A null condition (a window not yet full, NaN in a comparison) is no evidence either way:
    # it neither extends a streak nor breaks it, so a NaN cannot end an episode and page again.
    first = [col(cond).fill_null(False).alias(p + "t"), col(cond).not_().fill_null(False).alias(p + "f")]
    counts = [col(p + "t").cast(pl.Int64).cum_sum().alias(p + "t#"),
              col(p + "f").cast(pl.Int64).cum_sum().alias(p + "f#")]
    runs = [_run_length(p + "t", p + "f", carry.streak).alias(p + "streak"),
            _run_length(p + "f", p + "t", carry.falses).alias(p + "falses")]
    began = pl.when(col(p + "t") & (col(p + "streak") == 1)).then(col(TIME)).otherwise(None).forward_fill()
    if carry.streak and carry.since is not None:
        since = pl.when(col(p + "f#") == 0).then(pl.lit(carry.since)).otherwise(began)
    else:
        since = began
    held_when = [since.alias(p + "since")]
    held = (~col(p + "f") & (col(p + "streak") >= need)
            & ((col(TIME) - col(p + "since")) >= for_seconds)).fill_null(False)
    # Firing after record i: some record j <= i met the hold, and no run of enough false records
    # ended after j. Indices instead of a loop: the last "held" record against the last "break".
    index = pl.int_range(pl.len())
    last_held = pl.when(held).then(index).otherwise(None).forward_fill().fill_null(-1 if carry.firing else -2)
    breaks = col(p + "f") & (col(p + "falses") == keep_firing_steps + 1)
    last_break = pl.when(breaks).then(index).otherwise(None).forward_fill().fill_null(-2)
    ok = [(last_held > last_break).alias(p + "ok")]
    prev_ok = col(p + "ok").shift(1, fill_value=carry.firing)
    edges = [(col(p + "ok") & ~prev_ok).alias(p + "fire"), (~col(p + "ok") & prev_ok).alias(p + "resolve")]
    return [first, counts, runs, held_when, ok, edges]


def advance(carry: Carry, last: dict, prefix: str) -> Carry:
    """The carry after a batch, from the batch's last row of `transitions` columns."""
    streak = int(last[prefix + "streak"] or 0)
    return Carry(streak=streak, since=last[prefix + "since"] if streak else None,
                 firing=bool(last[prefix + "ok"]), fired_step=carry.fired_step,
                 falses=int(last[prefix + "falses"] or 0))
