"""`alertd test FILE...`: rule unit tests in the spirit of `promtool test rules`.

    rule_files: [../loss.yaml]            # relative to the test file
    tests:
      - name: CE at log(400) fires after the hold
        vars: {num_classes: 400}
        interval: 1s                       # time between records (for `for:` holds)
        runs:
          train.jsonl:                     # series per run, in expanding notation
            loss: "4.0-0.01x100 5.99+0x300"
        alerts:                            # state of an alert after the record at `step`
          - {step: 299, rule: CrossEntropyAtChance, state: pending}
          - {step: 300, rule: CrossEntropyAtChance, state: firing, labels: {loss: loss}}
        events:                            # optional: the exact list of firing/resolved events
          - {step: 300, rule: CrossEntropyAtChance, state: firing}

Expanding notation: `a+bxn` is a, a+b, ..., a+n*b (n+1 values); `a-bxn` likewise downwards;
`_` is a missing value and `_xn` n of them; `nan`, `inf`, `-inf`; plain numbers. Record i of a
run has step `start + i * every` (defaults 0 and 1).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import polars as pl
import yaml

from alertd.evaluate import Engine
from alertd.record import LINE, STEP, TIME, Parsed
from alertd.rules.rulefile import RuleError, load_rules, parse_duration

_TERM = re.compile(r"^(?P<a>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|nan|inf))"
                   r"(?:(?P<op>[-+])(?P<b>\d+\.?\d*(?:[eE][-+]?\d+)?)x(?P<n>\d+))?$")
_MISSING = re.compile(r"^_(?:x(?P<n>\d+))?$")


def expand(text: str) -> list[float | None]:
    """Expanding notation -> values (None for missing)."""
    out: list[float | None] = []
    for term in str(text).split():
        m = _MISSING.match(term)
        if m:
            out += [None] * (int(m.group("n")) if m.group("n") else 1)
            continue
        m = _TERM.match(term.lower())
        if not m:
            raise ValueError(f"bad series term {term!r} (use e.g. 1, 5.99+0x200, 3-0.1x10, _x50)")
        a = float(m.group("a"))
        if m.group("op") is None:
            out.append(a)
            continue
        b = float(m.group("b")) * (1 if m.group("op") == "+" else -1)
        out += [a + i * b for i in range(int(m.group("n")) + 1)]
    return out


def _frame(series: dict, start: int, every: int, interval: float) -> pl.DataFrame:
    values = {name: expand(text) for name, text in series.items()}
    n = max((len(v) for v in values.values()), default=0)
    cols = {STEP: [start + i * every for i in range(n)], LINE: list(range(1, n + 1)),
            TIME: [i * interval for i in range(n)]}
    for name, v in values.items():
        cols[name] = v + [None] * (n - len(v))
    schema = {STEP: pl.Int64, LINE: pl.Int64, TIME: pl.Float64, **{k: pl.Float64 for k in values}}
    return pl.DataFrame(cols, schema=schema)


def _matches(expected: dict, event) -> bool:
    return (expected.get("rule") == event.rule and expected.get("state", "firing") == event.state
            and int(expected.get("step", event.step)) == event.step
            and str(expected.get("run", event.run)) == event.run
            and {str(k): str(v) for k, v in (expected.get("labels") or {}).items()}.items()
            <= event.labels.items())


def run_case(ruleset, case: dict) -> list[str]:
    """Run one test case; returns its mismatches."""
    problems = []
    engine = Engine(ruleset, case.get("vars") or {})
    interval = parse_duration(case.get("interval", 1))
    start, every = int(case.get("start_step", 0)), int(case.get("every", 1))
    checks = sorted(case.get("alerts") or [], key=lambda a: int(a["step"]))
    events = []
    for run_name, series in (case.get("runs") or {}).items():
        frame = _frame(series or {}, start, every, interval)
        mine = [c for c in checks if str(c.get("run", run_name)) == run_name]
        cuts = sorted({int(c["step"]) for c in mine})
        done = 0
        for cut in cuts + [None]:
            upto = frame.height if cut is None else frame.filter(pl.col(STEP) <= cut).height
            if upto > done:
                events += engine.feed(run_name, Parsed(frame.slice(done, upto - done)))
                done = upto
            for c in (x for x in mine if cut is not None and int(x["step"]) == cut):
                labels = {str(k): str(v) for k, v in (c.get("labels") or {}).items()}
                got = engine.state_of(run_name, c["rule"], labels)
                if got != c.get("state", "firing"):
                    shown = "{" + ",".join(f"{k}={v}" for k, v in labels.items()) + "}" if labels else ""
                    problems.append(f"at step {cut}: {c['rule']}{shown} in {run_name}: "
                                    f"expected {c.get('state', 'firing')}, got {got}")
    if "events" in case:
        expected = list(case["events"] or [])
        for e in expected:
            if not any(_matches(e, ev) for ev in events):
                problems.append(f"missing event: {e}")
        for ev in events:
            if not any(_matches(e, ev) for e in expected):
                problems.append(f"unexpected event: {ev.rule} {ev.state} at step {ev.step} "
                                f"in {ev.run} {ev.labels}")
    return problems


def run_file(path: str) -> tuple[int, int, list[str]]:
    """(passed, failed, messages) for one test file; raises ValueError if it is unusable."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}:1: cannot read test file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise ValueError(f"{path}:1: a test file has 'rule_files' and a list of 'tests'")
    base = Path(path).parent
    files = [str((base / f).resolve()) if not Path(f).is_absolute() else f for f in doc.get("rule_files", [])]
    ruleset = load_rules(files)
    passed, failed, messages = 0, 0, []
    for i, case in enumerate(doc["tests"]):
        name = case.get("name", f"#{i + 1}")
        try:
            problems = run_case(ruleset, case)
        except (ValueError, KeyError, TypeError) as e:
            problems = [f"unusable test: {e}"]
        if problems:
            failed += 1
            messages += [f"{path}: {name}: {p}" for p in problems]
        else:
            passed += 1
    return passed, failed, messages


def test_files(paths: list[str]) -> list[str]:
    """Expand directories to the test files they hold."""
    out = []
    for p in paths:
        path = Path(p)
        out += sorted(str(f) for f in path.rglob("*.yaml")) if path.is_dir() else [p]
    return out


def cmd_test(args) -> int:
    passed = failed = 0
    for path in test_files(args.files):
        try:
            p, f, messages = run_file(path)
        except RuleError as e:
            for problem in e.problems:
                print(problem, file=sys.stderr)
            return 2
        except ValueError as e:
            print(f"alertd: {e}", file=sys.stderr)
            return 2
        passed, failed = passed + p, failed + f
        for m in messages:
            print(m)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("test", help="run rule unit tests (expected alerts for given series)")
    p.add_argument("files", nargs="+", metavar="FILE", help="test files or directories")
    p.set_defaults(func=cmd_test)
