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

import itertools
import time as _time
from collections import deque
from dataclasses import dataclass, field

import polars as pl

from alertd.record import FIRING, RESERVED, RESOLVED, STEP, TIME, AlertEvent, Parsed
from alertd.rules import alert, template
from alertd.rules.alert import Carry
from alertd.batch import Plan, any_true, make_plan, run_pass
from alertd.tails import Tails
from alertd.stacking import group_rows, stack
from alertd.rules.compile import RUN
from alertd.rules.rulefile import Rule, RuleSet
from alertd.rules.select import instances, references

F64 = pl.Float64
PLOT_POINTS = 100  # records of lead-up a notification's plot shows
LONG_WINDOW = 50   # records of look-back from which a rule may wait (Engine long_every) to be evaluated


@dataclass
class Instance:
    """One rule bound to concrete series of one run."""

    rule: Rule
    binding: dict[str, str]          # reference as written -> column
    labels: dict[str, str]           # alias -> column, for the alert's labels
    carry: Carry = field(default_factory=Carry)

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.binding.values())

    @property
    def key(self) -> tuple:
        """(rule name, sorted binding): the instance's key in RunState.instances and plans."""
        return self.rule.name, tuple(sorted(self.binding.items()))


@dataclass
class Group:
    """Instances that read the same series (and so share the records kept for their windows)."""

    columns: tuple[str, ...]
    long: bool = False  # its windows look back LONG_WINDOW records or more (may wait: Engine.long_every)
    keep: int = 0  # records of the series each run keeps (Engine.tails) for windows to look back
    members: list[Instance] = field(default_factory=list)
    # batch.any_true of the members (None: not row-local) and their instance keys, with the
    # member count they were built for
    quick: tuple[int, pl.Expr | None, list[tuple]] = (0, None, [])

    @property
    def key(self) -> tuple:
        return self.columns, self.long


_RUN_IDS = itertools.count()


@dataclass
class RunState:
    id: int = field(default_factory=lambda: next(_RUN_IDS))  # its rows' `_run` in a shared pass
    columns: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    instances: dict[tuple, Instance] = field(default_factory=dict)
    groups: dict[tuple, Group] = field(default_factory=dict)
    last_time: float | None = None
    last_step: int | None = None
    stale: dict[str, Carry] = field(default_factory=dict)
    records: int = 0
    # (arrival, pass frame, first row, rows): its latest records in the frames of the passes that
    # brought them, >= PLOT_POINTS records (plots). A row range rather than a slice of its own:
    # 500 busy runs times ~40 passes kept (see Engine._longest_wait) made 20,000 small frames,
    # ~100 MB of per-column overhead; the pass frames are shared.
    recent: deque = field(default_factory=deque)
    recent_rows: int = 0
    busy: set = field(default_factory=set)  # keys of instances pending or firing (their carry matters)
    known: set = field(default_factory=lambda: set(RESERVED))  # its columns and the reserved ones

    def remember(self, frame: pl.DataFrame, first: int, rows: int, now: float, hold: float = 0.0) -> None:
        """Keep the latest batches (rows first..first+rows of a pass's frame) for plots, dropping
        whole old ones (no copying per batch); also every batch of the last `hold` seconds
        (records waiting for long windows plot their lead-up)."""
        self.recent.append((now, frame, first, rows))
        self.recent_rows += rows
        while (len(self.recent) > 1 and self.recent_rows - self.recent[0][3] >= PLOT_POINTS
               and self.recent[0][0] <= now - hold):
            self.recent_rows -= self.recent.popleft()[3]

    def set_carry(self, key: tuple, carry: Carry) -> None:
        self.instances[key].carry = carry
        (self.busy.add if carry.streak or carry.firing else self.busy.discard)(key)

    def lead_up(self, column: str, step: int) -> tuple:
        """(step, value) of a series over the PLOT_POINTS records up to `step`."""
        # Series by Series: a select per kept batch would plan a query each (~0.1 ms).
        parts = [(f, a, n) for _, f, a, n in self.recent if column in f.columns]
        if not parts:
            return ()
        steps = pl.concat([f.get_column(STEP).slice(a, n) for f, a, n in parts])
        values = pl.concat([f.get_column(column).slice(a, n).cast(F64) for f, a, n in parts])
        keep = (steps <= step) & values.is_not_null()
        steps, values = steps.filter(keep).tail(PLOT_POINTS), values.filter(keep).tail(PLOT_POINTS)
        return tuple(zip(steps.to_list(), values.to_list()))


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

    def __init__(self, ruleset: RuleSet, cli_vars: dict | None = None, clock=_time.time,
                 long_every: float | None = None):
        """`long_every` (live use): rules whose windows look back LONG_WINDOW records or more
        are evaluated at most every `long_every` seconds instead of on every feed. Each pass
        re-reads a window's look-back for every run, so for a 300-record window and a few new
        records per run the re-reading is nearly all the work; waiting a second or two for more
        records divides it, and a trend over hundreds of records is not late by that. The events
        are the same (every record is still evaluated, in order); `flush` evaluates what waits."""
        self.long_every = long_every
        self.rules = [r for r in ruleset.rules if r.cond is not None]
        self.stale_rules = [r for r in ruleset.rules if r.stale_seconds is not None]
        self.cli_vars = {k: _number(v) for k, v in (cli_vars or {}).items()}
        self.clock = clock
        self.runs: dict[str, RunState] = {}
        self._refs = {r.name: references(r, set(r.vars)) for r in self.rules}
        self.tails: dict[tuple, Tails] = {}  # per group key: every run's last records
        self._plans: dict[tuple, Plan] = {}
        self.vars_epoch = 0  # bumped when a run's variables change (passes cache them until then)
        self._groups: dict[tuple, Group] = {}  # every group key any run has, with one run's group

    def plan(self, classes: list[tuple], instances: dict, per_run: bool) -> Plan:
        """The compiled classes of a group (compiling costs more than a small pass: done once)."""
        key = (tuple(classes), per_run)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = make_plan(classes, instances, per_run)
        return plan

    # -- variables -------------------------------------------------------------------------
    def run_vars(self, run: RunState) -> dict:
        """A run's variables from --var and its meta record (rule files supply the defaults)."""
        return {**run.meta, **{k: v for k, v in self.cli_vars.items() if v is not None}}

    def var(self, run: RunState, rule: Rule, name: str):
        """--var beats the stream's meta record, which beats the rule file's default."""
        value = self.run_vars(run).get(name)
        return value if value is not None else rule.vars.get(name)

    # -- instances -------------------------------------------------------------------------
    def _bind_new_columns(self, run: RunState, new_columns: list[str]) -> None:
        run.columns += new_columns
        run.known.update(new_columns)
        for rule in self.rules:
            refs = self._refs[rule.name]
            for binding in instances(refs, run.columns):
                key = (rule.name, tuple(sorted(binding.items())))
                if key in run.instances:
                    continue
                labels = {r.label: binding[r.ref] for r in refs if r.label}
                inst = Instance(rule, binding, labels)
                run.instances[key] = inst
                columns = tuple(sorted(inst.columns))
                long = rule.lookback >= LONG_WINDOW  # whatever long_every: snapshots name the same groups
                group = run.groups.setdefault((columns, long), Group(columns, long))
                self._groups.setdefault(group.key, group)  # the same rules in every run that has it
                group.members.append(inst)
                group.keep = max(group.keep, rule.lookback)

    # -- evaluation ------------------------------------------------------------------------
    def feed(self, run_name: str, parsed: Parsed, now: float | None = None) -> list[AlertEvent]:
        """Evaluate a batch of records of one run; returns the events in step order."""
        return self.feed_many({run_name: parsed}, now)

    def feed_many(self, batches: dict[str, Parsed], now: float | None = None) -> list[AlertEvent]:
        """Evaluate new records of any number of runs in one pass per set of series."""
        now = self.clock() if now is None else now
        # Records still waiting go first: a run's records are evaluated in the order they came.
        events = self._waited(now, force=not self.long_every)
        frames, by_id, untimed = [], {}, []
        hold = self._longest_wait()
        for run_name, parsed in batches.items():
            run = self.runs.get(run_name)
            if run is None:  # (not setdefault: it would build a RunState per run and pass)
                run = self.runs[run_name] = RunState()
            for k, v in parsed.meta.items():
                if _number(v) is not None and run.meta.get(k) != _number(v):
                    run.meta[k] = _number(v)
                    self.vars_epoch += 1
            frame = parsed.frame
            if frame.height == 0:
                continue
            columns = frame.columns
            if not run.records or not run.known.issuperset(columns):
                self._bind_new_columns(run, [c for c in columns if c not in RESERVED and c not in run.known])
            frames.append(frame)
            if TIME not in columns:  # records carry no time of their own: they arrived now
                untimed.append(run.id)
            by_id[run.id] = (run_name, run)
            events += self._stale_resolved(run_name, run, frame, now)
            run.records += frame.height
            run.last_time = now
        if frames:
            batch, order = stack(frames, list(by_id), untimed, now)
            ends = list(itertools.accumulate(frames[k].height for k in order))
            ids = list(by_id)
            for k, end, step in zip(order, ends, batch[STEP].gather([e - 1 for e in ends]).to_list()):
                run = by_id[ids[k]][1]
                run.last_step = step
                run.remember(batch, end - frames[k].height, frames[k].height, now, hold)
            quiet = self._quiet_groups(batch, by_id)
            for key, group in self._groups.items():  # a group absent from the batch has no rows
                if key in quiet:
                    continue
                rows = group_rows(group.columns, batch)
                if rows is None:
                    continue
                if group.long and self.long_every:
                    self.tails.setdefault(key, Tails()).wait(rows, now)
                else:
                    events += self._evaluate(group, rows, by_id, now)
        events.sort(key=lambda e: (e.run, e.step, e.state != RESOLVED, e.rule))
        return events

    def _quiet_groups(self, batch: pl.DataFrame, by_id: dict) -> set[tuple]:
        """Keys of the row-local groups (batch.any_true) that this batch leaves as they are: no
        record makes a condition true and no run of the batch has one of their instances
        pending or firing. One select over the batch for all of them (the pack's NonFiniteMetric
        alone is a group per metric: a pass each costs more than the check)."""
        busy = set().union(*(run.busy for _, run in by_id.values()))
        checks = {}
        for key, group in self._groups.items():
            if group.quick[0] != len(group.members):
                group.quick = (len(group.members), any_true(group.members, group.columns),
                               [i.key for i in group.members])
            _, check, keys = group.quick
            if (check is not None and not group.long and all(c in batch.columns for c in group.columns)
                    and busy.isdisjoint(keys)):
                checks[key] = check
        if len(checks) < 2:
            return set()  # one group: its own pass costs about what the check would
        flags = batch.select(e.alias(str(k)) for k, e in enumerate(checks.values())).row(0)
        return {key for key, hit in zip(checks, flags) if not hit}

    def _longest_wait(self) -> float:
        """A bound on how long records wait (long-window groups take turns, one per pass): what
        plots must keep to show the lead-up of an alert found late."""
        if not self.long_every:
            return 0.0
        return self.long_every * (1 + sum(g.long for g in self._groups.values())) + 1.0

    def flush(self, now: float | None = None) -> list[AlertEvent]:
        """Evaluate every record still waiting (long windows, see long_every): at the end of input."""
        return sorted(self._waited(self.clock() if now is None else now, force=True),
                      key=lambda e: (e.run, e.step, e.state != RESOLVED, e.rule))

    def _waited(self, now: float, force: bool = False) -> list[AlertEvent]:
        """Evaluate the waiting records of long-window groups whose oldest waited long_every:
        the most overdue group only (unless forced), so their passes spread over the daemon's
        passes instead of making every long_every-th one slow (and late for every rule)."""
        due = [(tails.since, key) for key, tails in self.tails.items() if tails.since is not None
               and (force or now - tails.since >= (self.long_every or 0.0))]
        if not force:
            due = sorted(due)[:1]
        events, by_id = [], {run.id: (name, run) for name, run in self.runs.items()} if due else {}
        for _, key in due:
            rows = self.tails[key].release()
            rows = rows.filter(pl.col(RUN).is_in(list(by_id)))  # a restored run may be gone
            if rows.height:
                group = by_id[rows[RUN][0]][1].groups[key]
                events += self._evaluate(group, rows, by_id, now)
        return events

    def _evaluate(self, group: Group, rows: pl.DataFrame, by_id: dict, now: float) -> list[AlertEvent]:
        """One pass of a group's rules over new rows (of one run or many, `_run`)."""
        ids = rows[RUN].unique(maintain_order=True).to_list()
        runs = {rid: by_id[rid][1] for rid in ids}
        classes = [i.key for i in group.members]
        plan = self.plan(classes, runs[ids[0]].instances, len(ids) > 1)
        tails = self.tails.setdefault(group.key, Tails())
        events = []
        for hit in run_pass(rows, runs, classes, plan, tails, group.keep, self):
            run_name, run = by_id[hit.entry]
            inst = run.instances[classes[hit.cls]]
            if hit.state == FIRING:
                inst.carry.fired_step = hit.step
            primary = next(iter(inst.binding.values()), None)
            points = run.lead_up(primary, hit.step) if primary else ()
            events.append(self._event(run_name, run, inst, hit.state, hit.step, hit.value,
                                      now, threshold=hit.threshold, points=points))
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
                limit = rule.stale_seconds
                if isinstance(limit, str):
                    limit = self.var(run, rule, limit)
                if limit is not None and not carry.firing and silent >= limit:
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
