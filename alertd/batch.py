"""One vectorised pass over the new records of many runs that share a set of series.

The daemon may follow hundreds of runs that each bring a few records per wake-up; evaluating
them one run at a time would cost a handful of polars calls per run. Instead the records of
every run with new data (each after its own tail of earlier records) are stacked into one frame
with a `_run` column, each rule class (a rule bound to these series) is compiled once, per-run
values (variables, carried state) come in as columns joined on `_run`, and every
order-dependent operation runs `.over("_run")`. With a single run (replay) nothing is grouped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from alertd.record import STEP, TIME
from alertd.rules import alert
from alertd.rules.compile import ROW, RUN, Stages, compile_rule
from alertd.rules.expr import Name
from alertd.tails import Tails

F64 = pl.Float64
# The plans are built already optimised (windows shared as stages): polars' optimiser would spend
# longer on these wide expression graphs than a small pass takes to run.
_AS_WRITTEN = pl.QueryOptFlags.none()
_ENGINE = "in-memory"
MEMO, MEMO_SEP = "_m\x1f", "\x1f"  # tail columns holding cumulative inputs as computed when new
CARRIED = "_c\x1f"  # Tails.carried columns: cumulative values over the records that left the tails
_NEW, _OLD = pl.lit(True).alias("_new"), pl.lit(False).alias("_new")  # built once: ~10 us each
_AGG = {"min": lambda c: c.fill_nan(None).min(), "max": lambda c: c.fill_nan(None).max(),
        "any": lambda c: c.fill_null(False).any(), "first": lambda c: c.fill_nan(None).drop_nulls().first()}


@dataclass
class Hit:
    """A transition found by the pass, for the engine to turn into an event."""

    entry: int
    cls: int
    state: str         # "firing" or "resolved"
    step: int
    value: float | None
    threshold: float | None


@dataclass
class Plan:
    """The rule classes of a group compiled once (a pass reuses them): shared window stages,
    each class's condition/value/threshold and cumulative inputs, and its state machine."""

    rules: list
    stages: Stages
    exprs: list[pl.Expr]
    cum_kinds: list[list[str]]
    machines: list[list[list[pl.Expr]]]
    memos: list[tuple[str, str, object]]  # (output column, memo column kept in tails, dtype)
    vars_cache: dict = field(default_factory=dict)  # the variables of the runs of the last pass
    # Built once from `memos` (a pl.col or pl.lit costs ~10 us; a pass would build them per group):
    memo_nulls: list[pl.Expr] = field(init=False)  # a null column per memo, for runs new to a tail
    memo_keep: list[pl.Expr] = field(init=False)   # each memo's output column as its tail column
    # (Tails.carried column, the column the plan reads it as, dtype, kind) per cumulative node
    carried: list[tuple[str, str, object, str]] = field(init=False)
    carried_aggs: list[pl.Expr] = field(init=False)  # the leaving records folded per run

    def __post_init__(self) -> None:
        self.memo_nulls = [pl.lit(None, dtype).alias(m) for _, m, dtype in self.memos]
        self.memo_keep = [pl.col(k).alias(m) for k, m, _ in self.memos]
        kinds = [kind for kinds in self.cum_kinds for kind in kinds]  # in the order of `memos`
        self.carried = [(CARRIED + m[len(MEMO):], "_" + out, dtype, kind)  # carried_prefix names
                        for (out, m, dtype), kind in zip(self.memos, kinds)]
        self.carried_aggs = [_AGG[kind](pl.col(out)).alias(name)
                             for (out, _, _), (name, _, _, kind) in zip(self.memos, self.carried)]


def _resolver(cls: int, binding: dict[str, str], var_names: set[str]):
    def resolve(node: Name) -> pl.Expr:
        if not node.quoted and node.name == "step":
            return pl.col(STEP).cast(F64)
        if not node.quoted and node.name in var_names:
            return pl.col(f"_v{cls}:{node.name}")
        return pl.col(binding[node.name]).cast(F64)
    return resolve


def any_true(members: list, columns: tuple[str, ...]) -> pl.Expr | None:
    """For a group whose rules read only the record at hand (no window, no cumulative value,
    no variable): whether any record of a batch holding its series makes a condition true, as
    one aggregate expression over the batch; None for any other group. With no true record and
    no instance pending or firing, a pass over the group changes nothing (run_pass's quiet
    case), so the engine checks many such groups in one select instead of a pass each."""
    conds = []
    for inst in members:
        rule, stages = inst.rule, Stages()
        comp = compile_rule(rule.cond, rule.value, _resolver(0, inst.binding, set(rule.vars)), "_q",
                            rule.threshold, stages)
        reads = comp.cond.meta.root_names()
        if stages.names or comp.cum_inputs or any(name.startswith("_v0:") for name in reads):
            return None  # a window, a cumulative value or a variable (its value is per run)
        conds.append(comp.cond)
    present = pl.all_horizontal(pl.col(c).is_not_null() for c in columns)
    return (pl.any_horizontal(conds) & present).fill_null(False).any()


def memo_prefix(key: tuple) -> str:
    """Names of the memo columns of an instance (rule name, binding): stable across restarts, so
    they are saved with the tails, and name the rule, so a changed rule's are dropped."""
    rule, binding = key
    return MEMO + rule + MEMO_SEP + ",".join(f"{k}={v}" for k, v in binding) + MEMO_SEP


def carried_prefix(key: tuple) -> str:
    """Names of an instance's carried cumulative values in Tails.carried (`<prefix><j>`)."""
    return CARRIED + memo_prefix(key)[len(MEMO):]


def memo_rule(column: str) -> str | None:
    """The rule a tail column is a memo of, or None for a series."""
    return column[len(MEMO):].split(MEMO_SEP)[0] if column.startswith(MEMO) else None


def make_plan(classes: list[tuple], instances: dict, per_run: bool) -> Plan:
    """Compile the classes (instance keys) of a group; `instances` holds one run's instances."""
    rules = [instances[k].rule for k in classes]
    stages, exprs, cum_kinds, machines, memos = Stages(), [], [], [], []
    for c, key in enumerate(classes):
        rule, prefix = rules[c], memo_prefix(key)
        comp = compile_rule(rule.cond, rule.value, _resolver(c, instances[key].binding, set(rule.vars)),
                            f"_k{c}_", rule.threshold, stages, per_run, prefix)
        exprs += [comp.cond.alias(f"c{c}"), comp.value.alias(f"v{c}"), comp.threshold.alias(f"t{c}")]
        exprs += [e.alias(f"k{c}_{j}") for j, (_, e) in enumerate(comp.cum_inputs)]
        cum_kinds.append([kind for kind, _ in comp.cum_inputs])
        memos += [(f"k{c}_{j}", f"{prefix}{j}", pl.Boolean if kind == "any" else F64)
                  for j, (kind, _) in enumerate(comp.cum_inputs)]
        machines.append(alert.transitions(f"c{c}", f"m{c}_", rule.for_seconds, rule.keep_firing_steps, per_run))
    return Plan(rules, stages, exprs, cum_kinds, machines, memos)


def run_pass(rows: pl.DataFrame, runs: dict[int, object], classes: list[tuple], plan: Plan,
             tails: Tails, keep: int, engine) -> list[Hit]:
    """Evaluate every class over the new `rows` (of `runs`, evaluate.RunState by `_run`), each
    after its run's tail; update carries, cumulative values and tails; return the transitions.
    `classes` are instance keys (rule name, binding), the same for every run of the group."""
    per_run = len(runs) > 1
    rules = plan.rules
    ids = list(runs)
    new_rows = rows.lazy().with_columns(_NEW)
    prior = tails.take(ids)
    full = new_rows if prior is None else pl.concat(
        [prior.lazy().with_columns(_OLD), new_rows], how="diagonal_relaxed")
    have = set(prior.columns) if prior is not None else set()
    missing = [e for (_, m, _), e in zip(plan.memos, plan.memo_nulls) if m not in have]
    if missing:
        full = full.with_columns(missing)
    if per_run:  # each run's rows contiguous, its tail before its new rows (a stable sort)
        full = full.sort(RUN, maintain_order=True)
    full = full.with_columns(_positions(per_run))
    literals, varying = _params(runs, plan, engine)
    if varying is not None:
        full = full.join(varying.lazy(), on=RUN, how="left", maintain_order="left")
    if plan.carried:
        full = _with_carried(full, plan, tails, ids, per_run)
    if literals:
        full = full.with_columns(literals)
    computed = plan.stages.apply(full).with_columns(plan.exprs).collect(engine=_ENGINE, optimizations=_AS_WRITTEN)
    cum_cols = [out for out, _, _ in plan.memos]
    outputs = [f"{x}{c}" for c in range(len(classes)) for x in "cvt"]
    if per_run:
        # Narrow before filtering: the computed frame holds every stage, and a filter copies them all.
        if keep:
            tails.put(ids, computed.select(*rows.columns, *plan.memo_keep, "_r").filter(pl.col("_r") < keep).drop("_r"))
        if cum_cols:
            _fold_carried(computed.select(RUN, *cum_cols, "_r").filter(pl.col("_r") >= keep), plan, tails, None)
        new = computed.select(RUN, STEP, TIME, *outputs, "_new").filter(pl.col("_new")) if prior is not None \
            else _columns(computed, [(c, c) for c in (RUN, STEP, TIME, *outputs)], 0)  # no tail: all new
    else:
        # One run (replay, one file): its tail is the last `keep` rows and its new rows the last
        # rows.height, so the frames are cut by slicing Series: an eager select or filter plans
        # a query of its own (~0.1-0.3 ms), the most of a small pass's cost.
        n, cut = computed.height, max(0, computed.height - keep)
        if keep:
            tails.put(ids, _columns(computed, [*((c, c) for c in rows.columns),
                                               *((k, m) for k, m, _ in plan.memos)], cut))
        if cum_cols and cut:
            _fold_carried(_columns(computed, [(c, c) for c in cum_cols], 0, cut), plan, tails, ids[0])
        new = _columns(computed, [(c, c) for c in (RUN, STEP, TIME, *outputs)], n - rows.height)

    # Most alerts are quiet: no true record and nothing carried means no transition, so the
    # state machine runs only for the classes that can change in some run.
    any_true = [_any(new.get_column(f"c{c}")) for c in range(len(classes))]
    busy = set().union(*(run.busy for run in runs.values()))
    live = [c for c in range(len(classes)) if any_true[c] or classes[c] in busy]
    if not live:
        return []
    if per_run:
        # Likewise per run: a run with no true record and no pending or firing instance of these
        # classes keeps its carry (only its count of false records would move, which matters
        # only while firing, and a true record restarts it). One NaN in one of 500 files then
        # runs the machine over that file's rows, not over every file's.
        keys = {classes[c] for c in live}
        moving = set(new.filter(pl.any_horizontal(pl.col(f"c{c}") for c in live))[RUN].to_list())
        moving |= {rid for rid, run in runs.items() if run.busy & keys}
        if len(moving) < len(runs):
            runs = {rid: run for rid, run in runs.items() if rid in moving}
            new = new.filter(pl.col(RUN).is_in(list(moving)))
    states = new.lazy().join(_carries(runs, classes, rules, live, engine).lazy(), on=RUN, how="left",
                             maintain_order="left")
    for level in range(len(plan.machines[live[0]])):
        states = states.with_columns(e for c in live for e in plan.machines[c][level])
    states = states.collect(engine=_ENGINE, optimizations=_AS_WRITTEN)
    hits = _hits(states, live)
    last = states.group_by(RUN, maintain_order=True).last() if per_run else states.tail(1)
    for row in last.iter_rows(named=True):
        run = runs[row[RUN]]
        for c in live:
            run.set_carry(classes[c], alert.advance(run.instances[classes[c]].carry, row, f"m{c}_"))
    return hits


def _columns(frame: pl.DataFrame, names: list[tuple[str, str]], start: int,
             end: int | None = None) -> pl.DataFrame:
    """Rows start:end of the columns (name, as name) of a frame, built from Series slices."""
    length = (frame.height if end is None else end) - start
    return pl.DataFrame([frame.get_column(c).slice(start, length).alias(a) for c, a in names])


def _positions(per_run: bool) -> list[pl.Expr]:
    """`_i`, a row's index within its run, and `_r`, the rows after it in its run, for a frame
    whose runs are contiguous; from where each run starts and ends, not per-run grouping."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    if not per_run:
        return [index.alias(ROW), (pl.len() - 1 - index).alias("_r")]
    starts = (pl.col(RUN) != pl.col(RUN).shift(1)).fill_null(True)
    ends = (pl.col(RUN) != pl.col(RUN).shift(-1)).fill_null(True)
    return [(index - pl.when(starts).then(index).otherwise(None).forward_fill()).alias(ROW),
            (pl.when(ends).then(index).otherwise(None).backward_fill() - index).alias("_r")]


def _params(runs: dict, plan: Plan, engine) -> tuple[list[pl.Expr], pl.DataFrame | None]:
    """Per run, its variables, per class: as literals where every run has the same value (most
    variables), else in a frame to join on `_run` (joining copies a value into every row:
    costly for dozens of variables)."""
    key = (tuple(runs), engine.vars_epoch)
    if plan.vars_cache.get("key") != key:  # variables change rarely: built once for these runs
        merged = [engine.run_vars(run) for run in runs.values()]
        cols = {f"_v{c}:{name}": [v.get(name, default) if v.get(name) is not None else default for v in merged]
                for c, rule in enumerate(plan.rules) for name, default in rule.vars.items()}
        same = {k for k, values in cols.items() if len(set(values)) == 1}
        # The literals and the frame too (a pl.lit costs ~10 us: dozens of them per group and pass).
        varying = {k: v for k, v in cols.items() if k not in same}
        plan.vars_cache = {"key": key, "lits": [pl.lit(cols[k][0], dtype=F64).alias(k) for k in same],
                           "varying": pl.DataFrame({RUN: list(runs), **varying},
                                                   schema={RUN: pl.Int64, **{k: F64 for k in varying}})
                           if varying else None}
    return plan.vars_cache["lits"], plan.vars_cache["varying"]


def _with_carried(full: pl.LazyFrame, plan: Plan, tails: Tails, ids: list[int], per_run: bool) -> pl.LazyFrame:
    """The pass's frame with each cumulative node's value over the records that left the tails
    (null where none has yet), per run, as the plan reads them (`_k<c>_<j>`)."""
    held = tails.carried
    have = set(held.columns) if held is not None else set()
    nulls = [pl.lit(None, dtype).alias(col) for name, col, dtype, _ in plan.carried if name not in have]
    found = [(name, col, dtype) for name, col, dtype, _ in plan.carried if name in have]
    if found and not per_run:  # one run: its values as literals, no join
        row = held.filter(pl.col(RUN) == ids[0])
        values = row.row(0, named=True) if row.height else {}
        nulls += [pl.lit(values.get(name), dtype).alias(col) for name, col, dtype in found]
    elif found:
        full = full.join(held.lazy().select(RUN, *(pl.col(name).alias(col) for name, col, _ in found)),
                         on=RUN, how="left", maintain_order="left")
    return full.with_columns(nulls) if nulls else full


def _carries(runs: dict, classes: list, rules: list, live: list[int], engine) -> pl.DataFrame:
    """One row per run: the alert state carried in, for the classes the machine runs."""
    cols: dict[str, list] = {RUN: list(runs)}
    schema: dict = {RUN: pl.Int64}
    for c in live:
        rule, rows = rules[c], []
        for run in runs.values():
            need, span = (_count(engine, run, rule, hold) for hold in (rule.for_steps, rule.for_step_span))
            rows.append(alert.carry_row(run.instances[classes[c]].carry, need, f"m{c}_", span))
        for name, dtype in zip(alert.CARRY_COLUMNS, alert.CARRY_TYPES):
            key = f"m{c}_{name}"
            schema[key] = dtype
            cols[key] = [r[key] for r in rows]
    return pl.DataFrame(cols, schema=schema)


def _count(engine, run, rule, hold) -> int:
    """A hold given as a number, or as the name of a variable holding it."""
    return hold if isinstance(hold, int) else int(engine.var(run, rule, hold) or 0)


def _fold_carried(leaving: pl.DataFrame, plan: Plan, tails: Tails, rid: int | None) -> None:
    """Fold the records leaving the tails (cumulative inputs as computed when new: the plan's
    `k<c>_<j>` outputs; with `_run`, or all of run `rid`) into Tails.carried, one frame
    operation for all runs (a Python loop over hundreds of runs cost more than the pass)."""
    if leaving.height == 0:
        return
    if rid is None:
        folded = leaving.group_by(RUN).agg(plan.carried_aggs)
    else:
        folded = leaving.select(plan.carried_aggs).with_columns(pl.lit(rid, dtype=pl.Int64).alias(RUN))
    folded = folded.select(RUN, *(pl.col(name).cast(dtype) for name, _, dtype, _ in plan.carried))
    held = tails.carried
    if held is None:
        tails.carried = folded
        return
    missing = [pl.lit(None, dtype).alias(name) for name, _, dtype, _ in plan.carried if name not in held.columns]
    if missing:
        held = held.with_columns(missing)
    both = held.join(folded, on=RUN, how="full", coalesce=True, suffix=_NEWER)
    tails.carried = both.with_columns(_COMBINE[kind](pl.col(name), pl.col(name + _NEWER)).alias(name)
                                      for name, _, _, kind in plan.carried).select(held.columns)


_NEWER = "\x1fnewer"
# How a carried value takes in the newer one (a null on either side is no value).
_COMBINE = {"min": lambda old, new: pl.min_horizontal(old, new),
            "max": lambda old, new: pl.max_horizontal(old, new),
            "any": lambda old, new: pl.when(new.is_null()).then(old).when(old.is_null()).then(new).otherwise(old | new),
            "first": lambda old, new: pl.coalesce(old, new)}


def _any(flags: pl.Series) -> bool:
    """Whether a condition column holds a true record (nulls are not; an all-null literal
    condition has dtype Null). Series.any is direct; fill_null would plan a query."""
    return flags.dtype == pl.Boolean and flags.any() is True


def _hits(states: pl.DataFrame, live: list[int]) -> list[Hit]:
    flags = [pl.col(f"m{c}_fire") | pl.col(f"m{c}_resolve") for c in live]
    out = []
    for row in states.filter(pl.any_horizontal(flags)).iter_rows(named=True):
        for c in live:
            state = "firing" if row[f"m{c}_fire"] else "resolved" if row[f"m{c}_resolve"] else None
            if state is not None:
                out.append(Hit(row[RUN], c, state, row[STEP], row[f"v{c}"], row[f"t{c}"]))
    return out
