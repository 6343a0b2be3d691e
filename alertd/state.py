"""The engine's memory as plain JSON: per run, the alert carries and the window tails.

Saved together with the read offsets in one file (see persist.py), so a restarted daemon resumes
exactly where the saved state says: the records after those offsets are read again and
evaluated against the state as it was when they had not been seen. A rule whose definition
changed (its fingerprint) starts afresh; unchanged rules keep their state, which is also how a
hot reload keeps pending and firing alerts.
"""
from __future__ import annotations

import math
from typing import Any

import polars as pl

from alertd.batch import carried_prefix, memo_rule
from alertd.tails import Tails
from alertd.evaluate import Engine, RunState
from alertd.record import STEP, TIME
from alertd.rules.compile import RUN
from alertd.rules.alert import Carry

VERSION = 1
SEP = "\x1f"


def _instance_key(rule: str, binding: dict) -> str:
    return rule + SEP + SEP.join(f"{k}={v}" for k, v in sorted(binding.items()))


def _json_number(x):
    return x if x is None or math.isfinite(x) else repr(x)  # "nan", "inf": strict JSON


def _number(x):
    return float(x) if isinstance(x, str) else x


def _group_key(group) -> str:
    return SEP.join(group.columns) + (SEP + "long" if group.long else "")




def _columns(frame: pl.DataFrame) -> dict[str, list]:
    return {c: [_json_number(v) if isinstance(v, float) else v for v in frame[c].to_list()] for c in frame.columns}


def _frame(columns: dict[str, list]) -> pl.DataFrame:
    schema = {c: pl.Int64 if c == STEP else pl.Boolean if any(isinstance(v, bool) for v in vals)
              else pl.Float64 for c, vals in columns.items()}
    return pl.DataFrame({c: [_number(v) for v in vals] for c, vals in columns.items()}, schema=schema)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything the engine remembers, as JSON-able data."""
    runs = {}
    fingerprints = {r.name: r.fingerprint for r in engine.rules + engine.stale_rules}
    # Each group's records split by run once (not filtered once per run: hundreds of runs).
    kept = {key: t.by_run() for key, t in engine.tails.items()}
    waiting = {key: t.by_run(waiting=True) for key, t in engine.tails.items()}
    carried = {key: {row[RUN]: row for row in t.carried.iter_rows(named=True)}
               for key, t in engine.tails.items() if t.carried is not None}
    for name, run in engine.runs.items():
        cum = {}  # instance key -> its carried values, in compile order
        for group in run.groups.values():
            row = carried.get(group.key, {}).get(run.id, {})
            for inst in group.members:
                prefix = carried_prefix(inst.key)
                values = {int(n[len(prefix):]): v for n, v in row.items() if n.startswith(prefix)}
                cum[inst.key] = [values.get(j) for j in range(max(values, default=-1) + 1)]
        runs[name] = {
            "columns": run.columns, "meta": run.meta, "last_time": run.last_time,
            "last_step": run.last_step, "records": run.records,
            "stale": {k: c.to_dict() for k, c in run.stale.items()},
            "instances": {_instance_key(i.rule.name, i.binding):
                          {"carry": i.carry.to_dict(), "cum": [_json_number(c) if isinstance(c, float) else c
                                                               for c in cum.get(key, [])]}
                          for key, i in run.instances.items()},
            "tails": {_group_key(g): _columns(tail) for g in run.groups.values()
                      if (tail := kept.get(g.key, {}).get(run.id)) is not None},
            "waiting": {_group_key(g): _columns(rows) for g in run.groups.values()
                        if (rows := waiting.get(g.key, {}).get(run.id)) is not None},
        }
    return {"version": VERSION, "rules": fingerprints, "runs": runs}


def restore(engine: Engine, data: dict[str, Any]) -> None:
    """Load a snapshot into a fresh engine; state of rules whose definition changed is dropped."""
    if data.get("version") != VERSION:
        return
    saved_rules = data.get("rules", {})
    same = {r.name for r in engine.rules + engine.stale_rules
            if saved_rules.get(r.name) == r.fingerprint}
    carried: dict[tuple, dict[int, dict]] = {}  # group key -> run id -> carried values
    for name, saved in data.get("runs", {}).items():
        run = engine.runs[name] = RunState(meta=dict(saved.get("meta", {})),
                                           last_time=saved.get("last_time"),
                                           last_step=saved.get("last_step"),
                                           records=int(saved.get("records", 0)))
        run.stale = {k: Carry.from_dict(v) for k, v in saved.get("stale", {}).items() if k in same}
        engine._bind_new_columns(run, list(saved.get("columns", [])))
        instances = saved.get("instances", {})
        for group in run.groups.values():
            for inst in group.members:
                state = instances.get(_instance_key(inst.rule.name, inst.binding))
                if state and inst.rule.name in same:
                    run.set_carry(inst.key, Carry.from_dict(state["carry"]))
                    row = carried.setdefault(group.key, {}).setdefault(run.id, {RUN: run.id})
                    row.update((f"{carried_prefix(inst.key)}{j}", _number(c))  # a null: no column (its dtype is the plan's)
                               for j, c in enumerate(state.get("cum", [])) if c is not None)
        tails, waiting = saved.get("tails", {}), saved.get("waiting", {})
        for group in run.groups.values():
            # A snapshot older than long-window groups kept all of a series' rules in one group.
            tail = tails.get(_group_key(group), tails.get(SEP.join(group.columns)))
            store = engine.tails.setdefault(group.key, Tails())
            if tail is not None and group.keep:  # the records themselves are facts: kept whatever the rules
                frame = _frame(tail)
                memos = [c for c in frame.columns if memo_rule(c) in same]  # a changed rule's are stale
                store.set(run.id, frame.select(STEP, TIME, *group.columns, *memos).tail(group.keep))
            rows = waiting.get(_group_key(group))
            if rows is not None:  # evaluated at the next pass (an engine without long_every: at once)
                store.wait(_frame(rows).select(pl.lit(run.id, dtype=pl.Int64).alias(RUN), STEP, TIME,
                                               *group.columns), engine.clock())
    for key, by_run in carried.items():
        rows = list(by_run.values())
        names = dict.fromkeys(name for row in rows for name in row if name != RUN)
        if names:
            engine.tails.setdefault(key, Tails()).carried = pl.DataFrame(
                {RUN: [row[RUN] for row in rows], **{n: [row.get(n) for row in rows] for n in names}},
                schema={RUN: pl.Int64, **{n: pl.Boolean if any(isinstance(row.get(n), bool) for row in rows)
                                          else pl.Float64 for n in names}})
