"""Expression tree -> polars expression, evaluated over a run's window frame.

Names are bound by the caller (`resolve`): to `step`, to a variable's value, or to a metric
column. Window functions look back over the last N records of the series; cumulative ones
(`best`, `ever`, and `no_improve`'s best-so-far) also cover records that have left the window,
through a carried value (see `Cumulative`). Comparisons are false on NaN: non-finite values have
their own predicates (`not_finite`), so `loss > 10` never fires on a NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import polars as pl

from alertd.rules.expr import BinOp, Call, Name, Neg, Node, Not, Num, walk

F64 = pl.Float64

# name -> (min args, max args, kind); a window's 2nd argument is a literal record count.
FUNCTIONS: dict[str, tuple[int, int, str]] = {
    "mean": (2, 2, "window"), "min": (2, 2, "window"), "max": (2, 2, "window"),
    "std": (2, 2, "window"), "median": (2, 2, "window"), "sum": (2, 2, "window"),
    "slope": (2, 2, "window"), "pct_change": (2, 2, "window"), "delta": (2, 2, "window"),
    "lag": (2, 2, "window"), "rising": (2, 2, "window"), "falling": (2, 2, "window"),
    "no_improve": (2, 3, "window"),
    "abs": (1, 1, "map"), "log": (1, 1, "map"), "log10": (1, 1, "map"), "exp": (1, 1, "map"),
    "sqrt": (1, 1, "map"), "least": (2, 2, "map"), "greatest": (2, 2, "map"),
    "not_finite": (1, 1, "map"), "is_nan": (1, 1, "map"), "is_inf": (1, 1, "map"),
    "finite": (1, 1, "map"),
    "best": (1, 1, "cumulative"), "peak": (1, 1, "cumulative"), "ever": (1, 1, "cumulative"),
    "first": (1, 1, "cumulative"),
}
_CUM_KIND = {"best": "min", "peak": "max", "first": "first"}


RUN = "_run"  # the run a row belongs to, when one frame holds the records of many runs
ROW = "_i"    # a row's index within its run's contiguous rows, when one frame holds many runs
NEW = "_new"  # true on the records of this batch, false on the tail of earlier ones


def check_calls(node: Node) -> list[str]:
    """Every misuse of a function in the tree (unknown name, arity, non-literal window)."""
    problems = []
    for n in walk(node):
        if not isinstance(n, Call):
            continue
        spec = FUNCTIONS.get(n.func)
        if spec is None:
            problems.append(f"unknown function {n.func!r}")
            continue
        lo, hi, kind = spec
        if not lo <= len(n.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            problems.append(f"{n.func}() takes {want} arguments, got {len(n.args)}")
            continue
        if kind == "window":
            size = n.args[1]
            if not (isinstance(size, Num) and size.value >= 1 and size.value == int(size.value)):
                problems.append(f"{n.func}(): the window must be a whole number of records >= 1")
            if len(n.args) == 3 and not isinstance(n.args[2], (Num, Name)):
                problems.append(f"{n.func}(): the percentage must be a number or a variable")
    return problems


def lookback(node: Node) -> int:
    """How many earlier records a value at one record depends on (the window a run must keep)."""
    if isinstance(node, Call):
        inner = max((lookback(a) for a in node.args), default=0)
        if FUNCTIONS[node.func][2] == "window":
            n = int(node.args[1].value)
            extra = n - 1 if node.func in ("mean", "min", "max", "std", "median", "sum", "slope") else n
            return lookback(node.args[0]) + extra
        return inner
    if isinstance(node, BinOp):
        return max(lookback(node.left), lookback(node.right))
    if isinstance(node, (Not, Neg)):
        return lookback(node.arg)
    return 0


def _never_nan(node: Node) -> bool:
    """A literal or the step (an integer): no NaN guard needed (it costs a pass per comparison)."""
    return isinstance(node, Num) or (isinstance(node, Name) and not node.quoted and node.name == "step")


@dataclass
class Compiled:
    cond: pl.Expr
    value: pl.Expr
    threshold: pl.Expr
    cum_inputs: list[tuple[str, pl.Expr]]  # (kind, input as when new) per cumulative node: carries, memos


class Stages:
    """Window and cumulative results computed once as columns, shared by every rule of a group.

    Polars evaluates an expression tree as written: a window used three times in one rule, or by
    three rules, would be computed three times. Each distinct one becomes a column instead, in
    stages by nesting depth (a window of a window comes one stage later).
    """

    def __init__(self, prefix: str = "_w"):
        self.prefix = prefix
        self.names: dict[str, str] = {}     # serialised expression -> column
        self.depth: dict[str, int] = {}     # column -> stage
        self.exprs: dict[str, pl.Expr] = {}

    def add(self, expr: pl.Expr) -> pl.Expr:
        # The serialised tree, not str(expr): str() leaves out window sizes, so mean(x, 5) and
        # mean(x, 50) would share one column.
        key = expr.meta.serialize(format="json")
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = f"{self.prefix}{len(self.names)}"
            inputs = [self.depth[c] for c in expr.meta.root_names() if c in self.depth]
            self.depth[name] = 1 + max(inputs, default=0)
            self.exprs[name] = expr.alias(name)
        return pl.col(name)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame with every staged column added."""
        for level in range(1, max(self.depth.values(), default=0) + 1):
            frame = frame.with_columns(e for n, e in self.exprs.items() if self.depth[n] == level)
        return frame


class _Compiler:
    def __init__(self, resolve: Callable[[Name], pl.Expr], carry_prefix: str, stages: Stages | None,
                 per_run: bool, memo_prefix: str):
        self.resolve = resolve
        self.carry_prefix = carry_prefix
        self.memo_prefix = memo_prefix
        self.cum_index: dict[tuple[str, str], int] = {}  # (kind, serialised input) -> i
        self.stages = stages
        self.per_run = per_run
        self.cum_inputs: list[tuple[str, pl.Expr]] = []

    def staged(self, expr: pl.Expr, cumulative: bool = False) -> pl.Expr:
        """A window's result, computed once when staged. When the frame holds several runs, a
        cumulative one runs per run (`.over`); windows do not need to (see `reach`)."""
        if self.per_run and cumulative:
            expr = expr.over(RUN)
        return self.stages.add(expr) if self.stages is not None else expr

    def reach(self, expr: pl.Expr, back: int) -> pl.Expr:
        """An operation reading `back` records before each row. With several runs in one frame
        (contiguous, in order) it runs over the whole frame, which is several times cheaper
        than per run, and the rows whose reach would cross into the previous run are blanked:
        exactly the rows that a per-run evaluation leaves null (its window is not full yet)."""
        if not self.per_run or back == 0:
            return expr
        return pl.when(pl.col(ROW) >= back).then(expr).otherwise(None)

    def num(self, node: Node) -> pl.Expr:
        if isinstance(node, Num):
            return pl.lit(node.value, dtype=F64)
        if isinstance(node, Name):
            return self.resolve(node)
        if isinstance(node, Neg):
            return -self.num(node.arg)
        if isinstance(node, BinOp):
            if node.op in "+-*/":
                left, right = self.num(node.left), self.num(node.right)
                return {"+": left + right, "-": left - right,
                        "*": left * right, "/": left / right}[node.op]
            return self.pred(node).cast(F64)
        if isinstance(node, Not):
            return self.pred(node).cast(F64)
        if isinstance(node, Call):
            return self.call(node).cast(F64)
        raise TypeError(node)

    def pred(self, node: Node) -> pl.Expr:
        if isinstance(node, BinOp) and node.op in ("and", "or"):
            left, right = self.pred(node.left), self.pred(node.right)
            return left & right if node.op == "and" else left | right
        if isinstance(node, Not):
            return ~self.pred(node.arg)
        if isinstance(node, BinOp) and node.op in ("<", "<=", ">", ">=", "==", "!="):
            # NaN -> null, so that a comparison with NaN is never true.
            left, right = (self.num(n) if _never_nan(n) else self.num(n).fill_nan(None)
                           for n in (node.left, node.right))
            return {"<": left < right, "<=": left <= right, ">": left > right,
                    ">=": left >= right, "==": left == right, "!=": left != right}[node.op]
        if isinstance(node, Call) and node.func in ("not_finite", "is_nan", "is_inf", "finite",
                                                     "rising", "falling", "no_improve", "ever"):
            return self.call(node).cast(pl.Boolean)
        return self.num(node) != 0  # a number used as a condition: non-zero is true

    def carried(self, kind: str, inner: pl.Expr) -> pl.Expr:
        """Running min/max/any/first over the whole series: what is in the frame, combined with a
        per-row column carrying the value over the records that have left the window.

        The input is read as it was when its record was new (column `<memo_prefix><i>`, kept
        with the records of the tail): at the head of a tail a window's input is cut short and
        would read null, and a best-so-far or a first value must not depend on how the stream
        was cut into batches."""
        j = self.cum_index.setdefault((kind, inner.meta.serialize(format="json")), len(self.cum_index))
        carry = pl.col(f"{self.carry_prefix}{j}")
        as_new = pl.coalesce(pl.col(f"{self.memo_prefix}{j}"), inner)
        inner = pl.when(pl.col(NEW)).then(inner).otherwise(as_new)
        inner = inner.cast(pl.Boolean) if kind == "any" else inner.cast(F64)
        if j == len(self.cum_inputs):
            self.cum_inputs.append((kind, inner))
        if kind == "any":
            return inner.fill_null(False).cum_max() | carry.cast(pl.Boolean).fill_null(False)
        clean = inner.fill_nan(None)
        if kind == "first":
            seen = clean.is_not_null().cum_sum() > 0
            return pl.when(carry.is_not_null()).then(carry) \
                .otherwise(pl.when(seen).then(clean.drop_nulls().first()).otherwise(None))
        running = (clean.cum_min() if kind == "min" else clean.cum_max()).forward_fill()
        return pl.min_horizontal(carry, running) if kind == "min" else pl.max_horizontal(carry, running)

    def call(self, node: Call) -> pl.Expr:
        f, args = node.func, node.args
        kind = FUNCTIONS[f][2]
        if kind == "window":
            x = self.num(args[0])
            n = int(args[1].value)
            return self.staged(self.window(f, x, n, args))
        if f == "ever":
            return self.staged(self.carried("any", self.pred(args[0])), cumulative=True)
        if f in ("best", "peak", "first"):
            return self.staged(self.carried(_CUM_KIND[f], self.num(args[0])), cumulative=True)
        if f in ("least", "greatest"):
            a, b = self.num(args[0]), self.num(args[1])
            return pl.min_horizontal(a, b) if f == "least" else pl.max_horizontal(a, b)
        x = self.num(args[0])
        return {
            "abs": lambda: x.abs(), "log": lambda: x.log(), "log10": lambda: x.log(10),
            "exp": lambda: x.exp(), "sqrt": lambda: x.sqrt(),
            "not_finite": lambda: x.is_nan() | x.is_infinite(), "is_nan": lambda: x.is_nan(),
            "is_inf": lambda: x.is_infinite(), "finite": lambda: x.is_finite(),
        }[f]()

    def window(self, f: str, x: pl.Expr, n: int, args: tuple) -> pl.Expr:
        if f in ("mean", "min", "max", "std", "median", "sum"):
            x = x.fill_nan(None)
            return self.reach(getattr(x, f"rolling_{f}")(window_size=n, min_samples=n), n - 1)
        if f == "slope":
            # Least-squares slope per record over the last n records (shift-invariant in r).
            r = pl.int_range(pl.len()).cast(F64)
            x = x.fill_nan(None)
            sx, sr = x.rolling_sum(n, min_samples=n), r.rolling_sum(n, min_samples=n)
            srx = (r * x).rolling_sum(n, min_samples=n)
            srr = (r * r).rolling_sum(n, min_samples=n)
            return self.reach((n * srx - sr * sx) / (n * srr - sr * sr), n - 1)
        if f == "delta":
            return x - self.reach(x.shift(n), n)
        if f == "lag":
            return self.reach(x.shift(n), n)
        if f == "pct_change":
            before = self.reach(x.shift(n), n)
            return 100.0 * (x - before) / before.abs()
        if f in ("rising", "falling"):
            step = self.reach(x.diff(), 1)
            moved = (step > 0) if f == "rising" else (step < 0)
            return self.reach(moved.fill_null(False).cast(pl.Int32).rolling_sum(n, min_samples=n) == n, n - 1)
        if f == "no_improve":
            # No new best by pct% within the last n records: the window's minimum is not
            # pct% below the best of everything before the window (lower is better).
            pct = self.num(args[2]) if len(args) == 3 else pl.lit(0.0, dtype=F64)
            clean = x.fill_nan(None)
            best = self.carried("min", clean)
            best = best.over(RUN) if self.per_run else best
            best_before = self.reach(best.shift(n), n)
            recent = self.reach(clean.rolling_min(window_size=n, min_samples=n), n - 1)
            return recent > best_before - best_before.abs() * pct / 100.0
        raise TypeError(f)


def compile_rule(cond: Node, value: Node, resolve: Callable[[Name], pl.Expr], carry_prefix: str,
                 threshold: Node | None = None, stages: Stages | None = None,
                 per_run: bool = False, memo_prefix: str = "_m") -> Compiled:
    """Compile a condition, its reported value and its threshold.

    `resolve` turns a name into an expression (a column, a variable's column, the step).
    Cumulative functions read their carried values from columns `<carry_prefix><i>`, i in compile
    order (the same on every call), and their inputs as computed when each record was new from
    `<memo_prefix><i>` on the rows where `_new` is false (null or missing: computed again). With `stages`, windows become shared columns that
    `stages.apply(frame)` adds before the select; with `per_run`, the frame holds several runs,
    each in contiguous rows in order with its index in `_i`: cumulative operations are evaluated
    per run (`.over("_run")`), windows over the frame with their first rows in each run blanked.
    """
    c = _Compiler(resolve, carry_prefix, stages, per_run, memo_prefix)
    cond_expr, value_expr = c.pred(cond), c.num(value)
    limit = c.num(threshold) if threshold is not None else pl.lit(None, dtype=F64)
    return Compiled(cond_expr, value_expr, limit, c.cum_inputs)
