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

from alertd.record import STEP, TIME
from alertd.rules.compile import RUN

INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"


@dataclass
class Carry:
    """What the machine remembers between batches for one alert instance."""

    streak: int = 0                # consecutive records on which the condition held
    since: float | None = None     # time the current streak began
    firing: bool = False
    fired_step: int | None = None  # step of the firing event of the current episode
    falses: int = 0                # consecutive records on which the condition was false
    since_step: int | None = None  # training step of the record that began the current streak

    def state(self) -> str:
        return FIRING if self.firing else PENDING if self.streak else INACTIVE

    def to_dict(self) -> dict:
        return {"streak": self.streak, "since": self.since, "firing": self.firing,
                "fired_step": self.fired_step, "falses": self.falses, "since_step": self.since_step}

    @staticmethod
    def from_dict(d: dict) -> "Carry":
        return Carry(int(d.get("streak", 0)), d.get("since"), bool(d.get("firing", False)),
                     d.get("fired_step"), int(d.get("falses", 0)), d.get("since_step"))


CARRY_COLUMNS = ("cs", "cf", "cfire", "csince", "need", "csstep", "span")  # see carry_row()
CARRY_TYPES = (pl.Int64, pl.Int64, pl.Boolean, pl.Float64, pl.Int64, pl.Int64, pl.Int64)


def carry_row(carry: Carry, need: int, prefix: str, span: int = 0) -> dict:
    """The carried state of one instance as the per-row columns `transitions` reads: `need`
    records in a row and a streak spanning `span` training steps make the hold."""
    going = bool(carry.streak)
    return {prefix + "cs": carry.streak, prefix + "cf": carry.falses, prefix + "cfire": carry.firing,
            prefix + "csince": carry.since if going else None, prefix + "need": max(need, 1),
            prefix + "csstep": carry.since_step if going else None, prefix + "span": span}


def transitions(cond: str, prefix: str, for_seconds: float, keep_firing_steps: int = 0,
                per_run: bool = False) -> list[list[pl.Expr]]:
    """Stages of expressions (each stage reads the columns of the ones before) giving, per
    record, `<prefix>streak`, `<prefix>since`, `<prefix>falses`, `<prefix>ok` (firing after this
    record), `<prefix>fire` and `<prefix>resolve`. The state carried in from earlier batches is
    read from the columns of `carry_row` (one value per run); with `per_run`, every
    order-dependent operation runs per run, so one frame can hold the records of many runs.

    `keep_firing_steps` damps flapping (Prometheus' keep_firing_for): a firing alert resolves
    only after that many false records in a row, plus one.
    """
    p, col = prefix, pl.col

    def ov(e: pl.Expr) -> pl.Expr:
        return e.over(RUN) if per_run else e

    def run_length(hits: str, resets: str, carried: str) -> pl.Expr:
        # Consecutive hit records, restarted by resets, without grouping (O(n)): the running count
        # of hits minus its value at the last reset; null records count as neither.
        base = ov(pl.when(col(resets)).then(col(hits + "#")).otherwise(None).forward_fill())
        return pl.when(base.is_null()).then(col(hits + "#") + col(carried)).otherwise(col(hits + "#") - base)

    # A null condition (a window not yet full, NaN in a comparison) is no evidence either way:
    # it neither extends a streak nor breaks it, so a NaN cannot end an episode and page again.
    first = [col(cond).fill_null(False).alias(p + "t"), col(cond).not_().fill_null(False).alias(p + "f")]
    counts = [ov(col(p + "t").cast(pl.Int64).cum_sum()).alias(p + "t#"),
              ov(col(p + "f").cast(pl.Int64).cum_sum()).alias(p + "f#")]
    runs = [run_length(p + "t", p + "f", p + "cs").alias(p + "streak"),
            run_length(p + "f", p + "t", p + "cf").alias(p + "falses")]
    began = ov(pl.when(col(p + "t") & (col(p + "streak") == 1)).then(col(TIME)).otherwise(None).forward_fill())
    began_step = ov(pl.when(col(p + "t") & (col(p + "streak") == 1)).then(col(STEP)).otherwise(None).forward_fill())
    carried_in = (col(p + "f#") == 0) & (col(p + "cs") > 0)
    since = [pl.when(carried_in).then(col(p + "csince")).otherwise(began).alias(p + "since"),
             pl.when(carried_in).then(col(p + "csstep")).otherwise(began_step).alias(p + "since_step")]
    # The hold: `need` records in a row, spanning `span` training steps (a log written every 10
    # steps reaches a 150-step span in 16 records), lasting `for_seconds`.
    held = (~col(p + "f") & (col(p + "streak") >= col(p + "need"))
            & ((col(STEP) - col(p + "since_step") + 1) >= col(p + "span"))
            & ((col(TIME) - col(p + "since")) >= for_seconds)).fill_null(False)
    # Firing after record i: some record j <= i met the hold, and no run of enough false records
    # ended after j. Indices instead of a loop: the last "held" record against the last "break".
    index = ov(pl.int_range(pl.len()))
    before = pl.when(col(p + "cfire")).then(-1).otherwise(-2)
    last_held = ov(pl.when(held).then(index).otherwise(None).forward_fill()).fill_null(before)
    breaks = col(p + "f") & (col(p + "falses") == keep_firing_steps + 1)
    last_break = ov(pl.when(breaks).then(index).otherwise(None).forward_fill()).fill_null(-2)
    ok = [(last_held > last_break).alias(p + "ok")]
    prev_ok = ov(col(p + "ok").shift(1)).fill_null(col(p + "cfire"))
    edges = [(col(p + "ok") & ~prev_ok).alias(p + "fire"), (~col(p + "ok") & prev_ok).alias(p + "resolve")]
    return [first, counts, runs, since, ok, edges]


def advance(carry: Carry, last: dict, prefix: str) -> Carry:
    """The carry after a batch, from the batch's last row of `transitions` columns."""
    streak = int(last[prefix + "streak"] or 0)
    return Carry(streak=streak, since=last[prefix + "since"] if streak else None,
                 since_step=last[prefix + "since_step"] if streak else None,
                 firing=bool(last[prefix + "ok"]), fired_step=carry.fired_step,
                 falses=int(last[prefix + "falses"] or 0))
