"""Hot reload of rule files in a running `alertd run`: valid changes apply and keep the state of
unchanged rules; invalid ones are refused with every file:line problem, and the running rules stay."""
import json

from alertd_proc import TEST_RULES, AlertdRun, jsonl_line

NEW_RULE = """\
      - alert: LossNegative
        expr: loss < 0
        value: loss
        severity: info
"""


def read_up_to(state_dir, log) -> bool:
    try:
        saved = json.loads((state_dir / "state.json").read_text())
    except FileNotFoundError:
        return False
    pos = saved["offsets"]["files"].get(str(log))
    return bool(pos) and pos["offset"] == log.stat().st_size


def append(log, *lines):
    with open(log, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def test_valid_change_applies_and_keeps_pending_state(tmp_path):
    rules, log, state = tmp_path / "rules.yaml", tmp_path / "a.jsonl", tmp_path / "state"
    rules.write_text(TEST_RULES)
    log.write_text("")
    d = AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), "--state-dir", str(state), str(log))
    try:
        append(log, *[jsonl_line(s, 1.0) for s in range(5)], *[jsonl_line(s, 20.0) for s in range(5, 8)])
        d.wait_for(lambda: read_up_to(state, log), "the first records read")  # LossHigh pending, 3 of 5
        rules.write_text(TEST_RULES + NEW_RULE)
        d.wait_for(lambda: "reloaded 3 rules" in d.stderr(), "the reload")
        append(log, jsonl_line(8, 20.0), jsonl_line(9, 20.0), jsonl_line(10, -1.0))
        d.wait_for(lambda: len(d.events()) >= 3, "LossHigh and the new rule's events")
    finally:
        assert d.stop() == 0
    fired = [(e["rule"], e["state"], e["step"]) for e in d.events()]
    # LossHigh fired at the 5th high record: the 3 seen before the reload still counted.
    assert fired == [("LossHigh", "firing", 9), ("LossHigh", "resolved", 10), ("LossNegative", "firing", 10)]


def test_invalid_change_is_refused_and_running_rules_stay(tmp_path):
    rules, log, state = tmp_path / "rules.yaml", tmp_path / "a.jsonl", tmp_path / "state"
    rules.write_text(TEST_RULES)
    log.write_text("")
    d = AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), "--state-dir", str(state), str(log))
    try:
        append(log, jsonl_line(0, 1.0))
        d.wait_for(lambda: read_up_to(state, log), "the first record read")  # the rules are loaded
        broken = TEST_RULES.replace("is_nan(loss)", "is_nan(loss") + NEW_RULE.replace("loss < 0", "loss <")
        rules.write_text(broken)
        d.wait_for(lambda: "rules not reloaded" in d.stderr(), "the refusal")
        append(log, jsonl_line(1, float("nan")), jsonl_line(2, 1.0))
        d.wait_for(lambda: len(d.events()) == 2, "LossNaN from the running rules")
    finally:
        assert d.stop() == 0
    err = d.stderr()
    assert f"{rules}:5:" in err and f"{rules}:18:" in err  # both problems, each with its line
    assert "2 problem(s)" in err
    assert [(e["rule"], e["state"]) for e in d.events()] == [("LossNaN", "firing"), ("LossNaN", "resolved")]


def test_watcher_waits_for_the_file_to_settle_and_refuses_an_empty_one(tmp_path):
    import io

    from alertd.evaluate import Engine
    from alertd.reload import RuleWatcher
    from alertd.rules.rulefile import load_rules
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    engine = Engine(load_rules([str(rules)]))
    now = [0.0]
    err = io.StringIO()
    w = RuleWatcher([str(rules)], {}, err=err, settle=0.3, clock=lambda: now[0])
    rules.write_text("")  # an editor saving in place: truncated first ...
    assert w.check(engine) is engine and w.pending()
    now[0] = 0.5
    assert w.check(engine) is engine and "no rules" in err.getvalue()  # ... settled empty: refused
    rules.write_text(TEST_RULES + NEW_RULE)
    assert w.check(engine) is engine  # changed again: wait for it to settle
    now[0] = 0.6
    assert w.check(engine) is engine
    now[0] = 0.9
    new = w.check(engine)
    assert new is not engine and {r.name for r in new.rules} == {"LossNaN", "LossHigh", "LossNegative"}
    assert not w.pending() and w.check(new) is new
