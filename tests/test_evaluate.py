"""The engine: same events however a stream is cut into batches, bounded memory, variables."""
import math
import textwrap

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from alertd.evaluate import Engine
from alertd.record import LINE, STEP, Parsed
from alertd.rules.rulefile import load_rules

RULES = """\
vars:
  num_classes: null
  tol: 0.02
  warmup: 20
series:
  loss: [loss, train/loss]
  grad: ["dbg/grad_*"]
groups:
  - name: t
    rules:
      - alert: AtChance
        expr: step >= warmup and abs(loss - log(num_classes)) < tol * log(num_classes)
        value: loss
        for_steps: 30
      - alert: NotFinite
        expr: not_finite(`*`)
      - alert: Plateau
        expr: no_improve(loss, 40, 1)
      - alert: GradSmall
        expr: mean(grad, 10) < 0.01
        for_steps: 5
      - alert: NeverOn
        expr: step >= 50 and not ever(loss > 100)
"""


def ruleset(tmp_path, text=RULES):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rules([str(path)])


def frame(n=400, onset=150, nan_at=(250,)):
    loss = [3.0 * math.exp(-i / 60) + 1.0 if i < onset else math.log(50) + 0.01 * ((i * 7) % 5 - 2)
            for i in range(n)]
    for i in nan_at:
        loss[i] = float("nan")
    grad = [1.0 if i < 300 else 0.001 for i in range(n)]
    return pl.DataFrame({STEP: list(range(n)), LINE: list(range(1, n + 1)), "loss": loss,
                         "dbg/grad_flow": grad})


def events(rs, df, cuts, cli_vars=None):
    engine = Engine(rs, cli_vars if cli_vars is not None else {"num_classes": 50})
    out, start = [], 0
    for end in list(cuts) + [df.height]:
        if end > start:
            out += engine.feed("run", Parsed(df.slice(start, end - start)), now=0.0)
            start = end
    return [(e.rule, e.state, e.step, None if e.value is None or math.isnan(e.value) else round(e.value, 9),
             tuple(sorted(e.labels.items()))) for e in out], engine


def test_whole_stream_events(tmp_path):
    got, _ = events(ruleset(tmp_path), frame(), [])
    firing = [(r, s) for r, st_, s, *_ in got if st_ == "firing"]
    assert ("AtChance", 179) in firing          # onset 150 + hold 30
    assert ("NotFinite", 250) in firing
    assert ("GradSmall", 313) in firing          # mean of 10 below 0.01 from 309, 5 records
    assert ("NeverOn", 50) in firing
    # The NaN at 250 is "unknown" for AtChance: it does not resolve (and later re-page) the alert.
    assert [e for e in got if e[0] == "AtChance"] == [e for e in got if e[0] == "AtChance" and e[1] == "firing"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=399), max_size=30))
def test_batch_boundaries_do_not_change_events(tmp_path_factory, cuts):
    rs = ruleset(tmp_path_factory.mktemp("r"))
    df = frame()
    whole, _ = events(rs, df, [])
    assert events(rs, df, sorted(set(cuts)))[0] == whole


def test_memory_is_bounded_by_the_longest_window(tmp_path):
    from alertd.evaluate import PLOT_POINTS
    rs = ruleset(tmp_path)
    _, engine = events(rs, frame(n=2000, onset=5000, nan_at=()), list(range(0, 2000, 97)))
    run = engine.runs["run"]
    assert max(t.by_run()[run.id].height for t in engine.tails.values() if run.id in t.by_run()) == 40  # no_improve(loss, 40)
    assert sum(rows for *_, rows in run.recent) < PLOT_POINTS + 97  # plot lead-up: whole batches


def test_events_carry_threshold_and_lead_up_points(tmp_path):
    rs = ruleset(tmp_path)
    got, engine = events(rs, frame(), [200, 301])
    engine = Engine(rs, {"num_classes": 50})
    out = []
    for a, b in ((0, 305), (305, 400)):
        out += engine.feed("run", Parsed(frame().slice(a, b - a)), now=0.0)
    grad = [e for e in out if e.rule == "GradSmall" and e.state == "firing"][0]
    assert grad.threshold == 0.01
    assert grad.points[-1][0] == grad.step and len(grad.points) == 100
    assert grad.points[0][1] == 1.0 and grad.points[-1][1] < 0.01  # the raw series, before and after


def test_variables_cli_beats_meta_beats_default(tmp_path):
    rs = ruleset(tmp_path)
    df = frame()
    engine = Engine(rs, {})
    assert not [e for e in engine.feed("a", Parsed(df), now=0.0) if e.rule == "AtChance"]  # no num_classes
    engine = Engine(rs, {})
    got = engine.feed("b", Parsed(df, meta={"num_classes": 50}), now=0.0)
    assert [e.step for e in got if e.rule == "AtChance" and e.state == "firing"] == [179]
    engine = Engine(rs, {"num_classes": 1000})
    got = engine.feed("c", Parsed(df, meta={"num_classes": 50}), now=0.0)
    assert not [e for e in got if e.rule == "AtChance"]


def test_each_matched_series_is_its_own_alert(tmp_path):
    rs = ruleset(tmp_path)
    df = pl.DataFrame({STEP: [0, 1, 2], LINE: [1, 2, 3], "loss": [1.0, float("nan"), 1.0],
                       "train/loss": [float("inf"), 1.0, 1.0]})
    got = Engine(rs, {}).feed("r", Parsed(df), now=0.0)
    fired = {(e.step, e.labels["metric"]) for e in got if e.rule == "NotFinite" and e.state == "firing"}
    assert fired == {(0, "train/loss"), (1, "loss")}


def test_sparse_series_windows_skip_missing_records(tmp_path):
    # val_loss logged every 10th record: its window is over its own records, not over the gaps.
    text = "groups:\n  - name: g\n    rules:\n      - alert: ValHigh\n        expr: mean(val_loss, 3) > 5\n"
    rs = ruleset(tmp_path, text)
    n = 100
    df = pl.DataFrame({STEP: list(range(n)), LINE: list(range(1, n + 1)),
                       "loss": [1.0] * n,
                       "val_loss": [(10.0 if i >= 50 else 1.0) if i % 10 == 0 else None for i in range(n)]})
    got = Engine(rs, {}).feed("r", Parsed(df), now=0.0)
    assert [(e.rule, e.step) for e in got] == [("ValHigh", 60)]  # 1, 10, 10 at steps 40, 50, 60


def test_a_series_that_appears_mid_run(tmp_path):
    rs = ruleset(tmp_path)
    engine = Engine(rs, {})
    first = pl.DataFrame({STEP: [0, 1], LINE: [1, 2], "loss": [1.0, 1.0]})
    later = pl.DataFrame({STEP: [2, 3], LINE: [3, 4], "loss": [1.0, 1.0], "aux": [1.0, float("nan")]})
    assert engine.feed("r", Parsed(first), now=0.0) == []
    got = engine.feed("r", Parsed(later), now=0.0)
    assert [(e.rule, e.step, e.labels["metric"]) for e in got] == [("NotFinite", 3, "aux")]


def test_snapshot_restore_resumes_exactly(tmp_path):
    import json

    from alertd import state
    rs = ruleset(tmp_path)
    df = frame()
    whole, _ = events(rs, df, [])
    for cut in (25, 160, 251, 305):
        first = Engine(rs, {"num_classes": 50})
        got = first.feed("run", Parsed(df.head(cut)), now=0.0)
        saved = json.loads(json.dumps(state.snapshot(first)))
        second = Engine(rs, {"num_classes": 50})
        state.restore(second, saved)
        got += second.feed("run", Parsed(df.slice(cut)), now=0.0)
        rows = [(e.rule, e.state, e.step, None if e.value is None or math.isnan(e.value) else round(e.value, 9),
                 tuple(sorted(e.labels.items()))) for e in got]
        assert rows == whole, f"cut at {cut}"


def test_changed_rule_starts_afresh_unchanged_keep_state(tmp_path):
    from alertd import state
    rs = ruleset(tmp_path)
    n = 60
    df = pl.DataFrame({STEP: list(range(n)), LINE: list(range(1, n + 1)), "loss": [math.log(50)] * n})
    first = Engine(rs, {"num_classes": 50})
    first.feed("run", Parsed(df), now=0.0)
    assert first.state_of("run", "AtChance", {}) == "firing"
    changed = ruleset(tmp_path, RULES.replace("tol: 0.02", "tol: 0.03").replace("for_steps: 5", "for_steps: 6"))
    second = Engine(changed, {"num_classes": 50})
    state.restore(second, state.snapshot(first))
    # vars changed -> every rule of the file has a new fingerprint; nothing carried over.
    assert second.state_of("run", "AtChance", {}) == "inactive"
    third = Engine(rs, {"num_classes": 50})
    state.restore(third, state.snapshot(first))
    assert third.state_of("run", "AtChance", {}) == "firing"
    assert third.feed("run", Parsed(df.with_columns(pl.col(STEP) + n)), now=0.0) == []  # no second page


def test_many_runs_in_one_pass_equal_each_run_alone(tmp_path):
    # The daemon evaluates all runs with new records together (one frame, `.over("_run")`);
    # each run must get exactly the events it gets alone, with its own variables and carries.
    rs = ruleset(tmp_path)
    frames = {"a": frame(onset=150), "b": frame(onset=220, nan_at=(100, 300)), "c": frame(onset=999, nan_at=())}
    metas = {"a": {"num_classes": 50}, "b": {"num_classes": 50}, "c": {}}
    alone = []
    for name, df in frames.items():
        engine = Engine(rs, {})
        for a in range(0, 400, 37):
            alone += engine.feed(name, Parsed(df.slice(a, 37), meta=metas[name]), now=0.0)
    together, engine = [], Engine(rs, {})
    for a in range(0, 400, 37):
        together += engine.feed_many({n: Parsed(df.slice(a, 37), meta=metas[n]) for n, df in frames.items()}, now=0.0)
    key = lambda e: (e.run, e.step, e.rule, e.state, tuple(sorted(e.labels.items())))  # noqa: E731
    assert sorted(map(key, together)) == sorted(map(key, alone))
    assert {"a", "b"} <= {e.run for e in alone} and any(e.rule == "AtChance" and e.run == "b" for e in alone)


def test_a_run_that_stops_logging_fires_and_resolves_when_records_return(tmp_path):
    text = ("vars:\n  quiet: 30\ngroups:\n  - name: g\n    rules:\n"
            "      - alert: Stalled\n        stale: quiet\n      - alert: StalledLong\n        stale: 2m\n")
    engine = Engine(ruleset(tmp_path, text), {})
    df = pl.DataFrame({STEP: [0, 1], LINE: [1, 2], "loss": [1.0, 1.0]})
    assert engine.feed("r", Parsed(df), now=100.0) == []
    assert engine.tick(now=129.0) == []
    fired = engine.tick(now=131.0)
    assert [(e.rule, e.state, e.step, e.value) for e in fired] == [("Stalled", "firing", 1, 31.0)]
    assert engine.tick(now=140.0) == []                      # one event per episode
    assert [e.rule for e in engine.tick(now=221.0)] == ["StalledLong"]
    back = engine.feed("r", Parsed(df.with_columns(pl.col(STEP) + 2)), now=230.0)
    assert sorted((e.rule, e.state, e.step) for e in back) == [("Stalled", "resolved", 2), ("StalledLong", "resolved", 2)]
    assert Engine(ruleset(tmp_path, text), {"quiet": 5}).tick(now=1.0) == []  # no run yet: nothing to miss


@pytest.mark.parametrize("long_every", [None, 1.0])
def test_the_pack_over_many_runs_in_uneven_passes_equals_each_run_alone(long_every):
    # Every sample log (21 runs: young and old, different series, every window function of the
    # pack) fed together in small uneven passes, as the daemon does, gives each run exactly the
    # events (step, value) it gets when replayed alone in one batch: windows must not reach
    # across runs, and tails, carries and cumulative values must carry over between passes.
    # With long_every, long-window rules wait up to a second of passes (0.3 s apart) and the
    # rest at the end (flush): the same events.
    from pathlib import Path

    from alertd.parse import make_parser
    root = Path(__file__).resolve().parent.parent
    pack = load_rules([str(root / "rules")])
    logs = sorted((root / "samples" / "logs").glob("[bh]*.*"))
    frames, metas = {}, {}
    for path in logs:
        parsed = make_parser("auto", str(path)).feed(path.read_bytes())
        frames[path.name], metas[path.name] = parsed.frame, parsed.meta
    assert len(frames) >= 20

    def key(e):
        return (e.run, e.step, e.rule, e.state, tuple(sorted(e.labels.items())),
                None if e.value is None else "nan" if math.isnan(e.value) else round(e.value, 9))

    alone = []
    for name, df in frames.items():
        alone += Engine(pack, {}).feed(name, Parsed(df, meta=metas[name]), now=0.0)
    together, engine, at, cut = [], Engine(pack, {}, long_every=long_every), {n: 0 for n in frames}, 0
    while any(at[n] < df.height for n, df in frames.items()):
        batch = {}
        for i, (name, df) in enumerate(frames.items()):
            size = (7, 1, 23, 61, 3)[(i + cut) % 5]  # uneven: some runs bring 1 record, some 61
            if at[name] < df.height:
                batch[name] = Parsed(df.slice(at[name], size), meta=metas[name] if at[name] == 0 else {})
                at[name] += size
        together += engine.feed_many(batch, now=0.3 * cut)
        cut += 1
    together += engine.flush(now=0.3 * cut)
    assert len(alone) > 20
    assert sorted(map(key, together)) == sorted(map(key, alone))
    # Events found late (records that waited) still plot the records before them.
    assert all(e.points and e.points[-1][0] <= e.step for e in together if e.state == "firing" and e.value is not None
               and not math.isnan(e.value))


@pytest.mark.parametrize("after", [1.0, None])
def test_records_waiting_for_a_long_window_survive_a_restart(after):
    # A daemon holding long-window records back (long_every) saves them with its state; the
    # engine restored from it (holding back, or not: `after`) evaluates them: the events of the
    # whole stream come out once, the same as one replay. The pack over a sample log.
    import json
    from pathlib import Path

    from alertd import state
    from alertd.parse import make_parser
    root = Path(__file__).resolve().parent.parent
    pack = load_rules([str(root / "rules")])
    log = root / "samples" / "logs" / "b05_exploding_lr_hf.log"
    parsed = make_parser("auto", str(log)).feed(log.read_bytes())
    df = parsed.frame

    def key(e):
        return (e.step, e.rule, e.state, None if e.value is None else round(e.value, 9))

    whole = sorted(map(key, Engine(pack, {}).feed("run", parsed, now=0.0)))
    assert {"LossSpike", "LossOscillationGrowing"} <= {e[1] for e in whole}  # long windows fire
    first = Engine(pack, {}, long_every=5.0)
    got = first.feed("run", Parsed(df.head(230)), now=0.0)
    got += first.feed("run", Parsed(df.slice(230, 60)), now=1.0)  # waits: 1 s < 5 s
    saved = json.loads(json.dumps(state.snapshot(first)))
    assert saved["runs"]["run"]["waiting"]
    second = Engine(pack, {}, long_every=after)
    state.restore(second, saved)
    got += second.feed("run", Parsed(df.slice(290)), now=2.0)
    got += second.flush(now=3.0)
    assert sorted(map(key, got)) == whole


def test_row_local_groups_skipped_when_quiet_give_the_events_of_each_run_alone(tmp_path, monkeypatch):
    # Groups whose rules read only the record at hand are checked for a true record in one
    # select over the batch and skipped when quiet; a run firing (keep_firing) or going back to
    # finite values must still get each event it gets alone.
    text = """\
    series:
      metric: ["*"]
    groups:
      - name: g
        rules:
          - alert: NonFinite
            expr: not_finite(metric)
            keep_firing_for_steps: 3
          - alert: Big
            expr: metric > 100
    """
    rs = ruleset(tmp_path, text)
    frames = {}
    for r, bad in enumerate([(), (5,), (6, 14), ()]):
        x = [math.nan if s in bad else float(s) for s in range(24)]
        y = [1000.0 if (r, s) == (3, 20) else 1.0 for s in range(24)]
        frames[f"run{r}"] = pl.DataFrame({STEP: list(range(24)), LINE: list(range(1, 25)), "x": x, "y": y})
    alone = []
    for name, df in frames.items():
        engine = Engine(rs, {})
        for a in range(0, 24, 3):
            alone += engine.feed(name, Parsed(df.slice(a, 3)), now=0.0)
    skipped = []
    original = Engine._quiet_groups

    def quiet_groups(self, batch, by_id):
        got = original(self, batch, by_id)
        skipped.append(got)
        return got
    monkeypatch.setattr(Engine, "_quiet_groups", quiet_groups)
    together, engine = [], Engine(rs, {})
    for a in range(0, 24, 3):
        together += engine.feed_many({n: Parsed(df.slice(a, 3)) for n, df in frames.items()}, now=0.0)
    # The plots too: each run's lead-up comes from row ranges of the shared pass frames.
    key = lambda e: (e.run, e.step, e.rule, e.state, tuple(sorted(e.labels.items())), repr(e.points))  # noqa: E731
    assert sorted(map(key, together)) == sorted(map(key, alone))
    assert {(e.run, e.rule, e.state) for e in alone} >= {("run1", "NonFinite", "firing"), ("run1", "NonFinite", "resolved"),
                                                          ("run2", "NonFinite", "firing"), ("run3", "Big", "firing")}
    assert any(skipped) and not all(skipped)  # quiet passes skipped, busy ones evaluated
