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

    def state(self) -> str:
        return FIRING if self.firing else PENDING if self.streak else INACTIVE

    def to_dict(self) -> dict:
        return {"streak": self.streak, "since": self.since, "firing": self.firing,
                "fired_step": self.fired_step}

    @staticmethod
    def from_dict(d: dict) -> "Carry":
        return Carry(int(d.get("streak", 0)), d.get("since"), bool(d.get("firing", False)),
                     d.get("fired_step"))


def transitions(cond: str, carry: Carry, for_steps: int, for_seconds: float,
                prefix: str) -> list[pl.Expr]:
    """Expressions over a batch giving, per record, `<prefix>streak`, `<prefix>since`,
    `<prefix>ok` (firing after this record), `<prefix>fire` and `<prefix>resolve`."""
    need = max(for_steps, 1)
    # A null condition (a window not yet full, NaN in a comparison) is no evidence either way:
    # it neither extends a streak nor breaks it, so a NaN cannot end an episode and page again.
    t = pl.col(cond).fill_null(False)
    f = pl.col(cond).not_().fill_null(False)
    # Consecutive-true counts without grouping (O(n), no hash over segments): the running count
    # of true records minus its value at the last false record.
    trues = t.cast(pl.Int64).cum_sum()
    in_first = f.cast(pl.Int64).cum_sum() == 0   # no false record yet: continues the carried streak
    base = pl.when(f).then(trues).otherwise(None).forward_fill().fill_null(0)
    local = trues - base
    streak = pl.when(in_first).then(local + carry.streak).otherwise(local)
    began = pl.when(t & (local == 1)).then(pl.col(TIME)).otherwise(None).forward_fill()
    if carry.streak and carry.since is not None:
        since = pl.when(in_first).then(pl.lit(carry.since)).otherwise(began)
    else:
        since = began
    ok = (~f & (streak >= need) & ((pl.col(TIME) - since) >= for_seconds)).fill_null(False)
    prev_ok = ok.shift(1, fill_value=carry.firing)
    return [
        streak.alias(prefix + "streak"),
        since.alias(prefix + "since"),
        ok.alias(prefix + "ok"),
        (ok & ~prev_ok).alias(prefix + "fire"),
        (f & prev_ok).alias(prefix + "resolve"),
    ]


def advance(carry: Carry, last: dict, prefix: str) -> Carry:
    """The carry after a batch, from the batch's last row of `transitions` columns."""
    streak = int(last[prefix + "streak"] or 0)
    return Carry(streak=streak, since=last[prefix + "since"] if streak else None,
                 firing=bool(last[prefix + "ok"]), fired_step=carry.fired_step)
