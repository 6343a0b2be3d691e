"""The engine: batches of parsed records per run -> alert events. Live and replay share it.

Per run the engine keeps, for each set of series that some rule instances read together, a
bounded tail of earlier records (as long as the longest window those rules look back), so memory
does not grow with the length of the run. Each batch is appended to its tail, every instance's
condition is computed as one polars select, the state machine (alert.py) runs over the new rows,
and only the rows where an alert fires or resolves become Python objects.

    engine = Engine(load_rules(["rules/"]), cli_vars={"num_classes": 400})
    for event in engine.feed("train.jsonl", parser.feed(data), now=time.time()):
        print(event.to_json())
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

import polars as pl

from alertd.record import FIRING, RESERVED, RESOLVED, STEP, TIME, AlertEvent, Parsed
from alertd.rules import alert, template
from alertd.rules.alert import Carry
from alertd.rules.compile import Binding, MissingVar, Stages, compile_rule
from alertd.rules.expr import Name
from alertd.rules.rulefile import Rule, RuleSet
from alertd.rules.select import instances, references

F64 = pl.Float64
PLOT_POINTS = 100  # records of history kept per series so a notification can show the lead-up


@dataclass
class Instance:
    """One rule bound to concrete series of one run."""

    rule: Rule
    binding: dict[str, str]          # reference as written -> column
    labels: dict[str, str]           # alias -> column, for the alert's labels
    carry: Carry = field(default_factory=Carry)
    cum: list = field(default_factory=list)  # carried min/max/any of cumulative functions

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.binding.values())


@dataclass
class Group:
    """Instances that read the same series, and the tail of records they share."""

    columns: tuple[str, ...]
    keep: int = 0
    tail: pl.DataFrame | None = None
    members: list[Instance] = field(default_factory=list)


@dataclass
class RunState:
    columns: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    instances: dict[tuple, Instance] = field(default_factory=dict)
    groups: dict[tuple, Group] = field(default_factory=dict)
    last_time: float | None = None
    last_step: int | None = None
    stale: dict[str, Carry] = field(default_factory=dict)
    records: int = 0


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Engine:
    """Evaluates a RuleSet over the records of any number of runs."""

    def __init__(self, ruleset: RuleSet, cli_vars: dict | None = None, clock=_time.time):
        self.rules = [r for r in ruleset.rules if r.cond is not None]
        self.stale_rules = [r for r in ruleset.rules if r.stale_seconds is not None]
        self.cli_vars = {k: _number(v) for k, v in (cli_vars or {}).items()}
        self.clock = clock
        self.runs: dict[str, RunState] = {}
        self._refs = {r.name: references(r, set(r.vars)) for r in self.rules}

    # -- variables -------------------------------------------------------------------------
    def var(self, run: RunState, rule: Rule, name: str):
        """--var beats the stream's meta record, which beats the rule file's default."""
        for source in (self.cli_vars, run.meta):
            if source.get(name) is not None:
                return source[name]
        return rule.vars.get(name)

    def _resolver(self, run: RunState, inst: Instance):
        def resolve(node: Name) -> Binding:
            if node.quoted:
                return Binding("col", inst.binding[node.name])
            if node.name == "step":
                return Binding("step")
            if node.name in inst.rule.vars:
                return Binding("var", self.var(run, inst.rule, node.name))
            return Binding("col", inst.binding[node.name])
        return resolve

    # -- instances -------------------------------------------------------------------------
    def _bind_new_columns(self, run: RunState, new_columns: list[str]) -> None:
        run.columns += new_columns
        for rule in self.rules:
            refs = self._refs[rule.name]
            for binding in instances(refs, run.columns):
                key = (rule.name, tuple(sorted(binding.items())))
                if key in run.instances:
                    continue
                labels = {r.label: binding[r.ref] for r in refs if r.label}
                inst = Instance(rule, binding, labels)
                run.instances[key] = inst
                gkey = tuple(sorted(inst.columns))
                group = run.groups.setdefault(gkey, Group(gkey))
                group.members.append(inst)
                group.keep = max(group.keep, rule.lookback, PLOT_POINTS - 1)

    # -- evaluation ------------------------------------------------------------------------
    def feed(self, run_name: str, parsed: Parsed, now: float | None = None) -> list[AlertEvent]:
        """Evaluate a batch of records of one run; returns the events in step order."""
        now = self.clock() if now is None else now
        run = self.runs.setdefault(run_name, RunState())
        for k, v in parsed.meta.items():
            if _number(v) is not None:
                run.meta[k] = _number(v)
        frame = parsed.frame
        if frame.height == 0:
            return []
        new_columns = [c for c in frame.columns if c not in RESERVED and c not in run.columns]
        if new_columns or not run.records:
            self._bind_new_columns(run, new_columns)
        if TIME not in frame.columns:  # records carry no time of their own: they arrived now
            frame = frame.with_columns(pl.lit(now, dtype=F64).alias(TIME))
        events: list[AlertEvent] = []
        for group in run.groups.values():
            events += self._eval_group(run_name, run, group, frame, now)
        events += self._stale_resolved(run_name, run, frame, now)
        run.records += frame.height
        run.last_time = now
        run.last_step = int(frame[STEP][-1])
        events.sort(key=lambda e: (e.step, e.state != RESOLVED, e.rule))
        return events

    def _eval_group(self, run_name: str, run: RunState, group: Group, frame: pl.DataFrame,
                    now: float) -> list[AlertEvent]:
        cols = [c for c in group.columns]
        present = [c for c in cols if c in frame.columns]
        if len(present) < len(cols):
            return []  # a series of the group is absent from this whole batch
        sub = frame.select(STEP, TIME, *[pl.col(c).cast(F64) for c in cols])
        if any(sub[c].null_count() for c in cols):
            sub = sub.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols))
        if sub.height == 0:
            return []
        tail_len = group.tail.height if group.tail is not None else 0
        full = pl.concat([group.tail, sub]) if tail_len else sub
        exprs, live, stages = [], [], Stages()
        for i, inst in enumerate(group.members):
            try:
                comp = compile_rule(inst.rule.cond, inst.rule.value, self._resolver(run, inst), inst.cum,
                                    inst.rule.threshold, stages)
            except MissingVar:
                continue
            exprs += [comp.cond.alias(f"c{i}"), comp.value.alias(f"v{i}"), comp.threshold.alias(f"t{i}")]
            exprs += [e.alias(f"k{i}_{j}") for j, (_, e) in enumerate(comp.cum_inputs)]
            live.append((i, inst, [kind for kind, _ in comp.cum_inputs]))
        if not live:
            group.tail = full.tail(group.keep) if group.keep else None
            return []
        computed = stages.apply(full).select(STEP, TIME, *exprs)
        drop = max(full.height - group.keep, 0)
        for i, inst, kinds in live:
            inst.cum = [_fold(kind, inst.cum[j] if j < len(inst.cum) else None,
                              computed[f"k{i}_{j}"].head(drop)) for j, kind in enumerate(kinds)]
        new = computed.slice(tail_len).with_row_index("_row", offset=tail_len)
        machine: list[list[pl.Expr]] = []
        for i, inst, _ in live:
            r = inst.rule
            for_steps = r.for_steps
            if isinstance(for_steps, str):
                for_steps = int(self.var(run, r, for_steps) or 0)
            stages_i = alert.transitions(f"c{i}", inst.carry, for_steps, r.for_seconds, f"m{i}_",
                                         r.keep_firing_steps)
            machine = [a + b for a, b in zip(machine, stages_i)] if machine else stages_i
        states = new
        for stage in machine:
            states = states.with_columns(stage)
        flags = [pl.col(f"m{i}_fire") | pl.col(f"m{i}_resolve") for i, _, _ in live]
        hits = states.filter(pl.any_horizontal(flags)) if flags else states.clear()
        last = states.row(-1, named=True)
        events = []
        for row in hits.iter_rows(named=True):
            for i, inst, _ in live:
                state = FIRING if row[f"m{i}_fire"] else RESOLVED if row[f"m{i}_resolve"] else None
                if state is None:
                    continue
                if state == FIRING:
                    inst.carry.fired_step = row[STEP]
                first = max(0, row["_row"] - PLOT_POINTS + 1)
                window = computed.slice(first, row["_row"] - first + 1)
                points = tuple(zip(window[STEP].to_list(), window[f"v{i}"].to_list()))
                events.append(self._event(run_name, run, inst, state, row[STEP], row[f"v{i}"], now,
                                          threshold=row[f"t{i}"], points=points))
        for i, inst, _ in live:
            inst.carry = alert.advance(inst.carry, last, f"m{i}_")
        group.tail = full.tail(group.keep) if group.keep else None
        return events

    def _event(self, run_name: str, run: RunState, inst: Instance | None, state: str, step: int,
               value, now: float, rule: Rule | None = None, threshold=None, points=()) -> AlertEvent:
        rule = rule or inst.rule
        labels = {**{k: v for k, v in rule.labels.items()}, **(inst.labels if inst else {})}
        ctx = {"value": value, "step": step, "run": run_name, "rule": rule.name, "state": state,
               "labels": labels, "severity": rule.severity,
               "vars": {k: self.var(run, rule, k) for k in rule.vars}}
        return AlertEvent(rule=rule.name, state=state, run=run_name, step=int(step),
                          value=None if value is None else float(value), severity=rule.severity,
                          labels=labels, summary=template.render(rule.annotations.get("summary", rule.name), ctx),
                          description=template.render(rule.annotations.get("description", ""), ctx),
                          time=now, action=rule.action, threshold=threshold,
                          points=tuple((int(s), float(v)) for s, v in points if v is not None))

    # -- no-data (live only) ---------------------------------------------------------------
    def _stale_resolved(self, run_name: str, run: RunState, frame: pl.DataFrame, now: float):
        events = []
        for rule in self.stale_rules:
            carry = run.stale.get(rule.name)
            if carry and carry.firing:
                run.stale[rule.name] = Carry()
                events.append(self._event(run_name, run, None, RESOLVED, int(frame[STEP][0]),
                                          0.0, now, rule))
        return events

    def tick(self, now: float | None = None) -> list[AlertEvent]:
        """Fire no-data rules for runs that have been silent too long."""
        now = self.clock() if now is None else now
        events = []
        for run_name, run in self.runs.items():
            if run.last_time is None:
                continue
            silent = now - run.last_time
            for rule in self.stale_rules:
                carry = run.stale.setdefault(rule.name, Carry())
                if not carry.firing and silent >= rule.stale_seconds:
                    carry.firing = True
                    events.append(self._event(run_name, run, None, FIRING, run.last_step or 0,
                                              silent, now, rule))
        return events

    def state_of(self, run_name: str, rule: str, labels: dict) -> str:
        """inactive, pending or firing: the most advanced state of the matching instances."""
        run = self.runs.get(run_name)
        if run is None:
            return alert.INACTIVE
        states = [i.carry.state() for i in run.instances.values()
                  if i.rule.name == rule and labels.items() <= {**i.rule.labels, **i.labels}.items()]
        states += [c.state() for name, c in run.stale.items() if name == rule and not labels]
        for s in (alert.FIRING, alert.PENDING):
            if s in states:
                return s
        return alert.INACTIVE

    def firing(self) -> list[tuple[str, str, dict]]:
        """(run, rule, labels) of every alert firing now."""
        out = []
        for run_name, run in self.runs.items():
            out += [(run_name, i.rule.name, i.labels) for i in run.instances.values() if i.carry.firing]
            out += [(run_name, name, {}) for name, c in run.stale.items() if c.firing]
        return out


def _fold(kind: str, carry, values: pl.Series):
    """Fold the values leaving the window into a cumulative function's carried value."""
    if values.len() == 0:
        return carry
    if kind == "any":
        now = bool(values.fill_null(False).any())
        return now or bool(carry)
    if kind == "first":
        if carry is not None:
            return carry
        clean = values.fill_nan(None).drop_nulls()
        return clean[0] if clean.len() else None
    clean = values.fill_nan(None).drop_nulls()
    if clean.len() == 0:
        return carry
    agg = clean.min() if kind == "min" else clean.max()
    if carry is None:
        return agg
    return min(carry, agg) if kind == "min" else max(carry, agg)
