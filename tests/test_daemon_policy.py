"""The notification policy wired into `alertd run`: silences from the CLI (picked up live), storm
digest, repeats, routes to apprise tags; and the route parser."""
import pytest
from alertd_proc import TEST_RULES, AlertdRun, episodes_log, jsonl_line, notified, run_cli
from receivers import HTTPReceiver

from alertd.notify.routes import Routes
from alertd.record import FIRING, AlertEvent


def start(tmp_path, *args):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    return AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), *args)


def append(log, lines):
    with open(log, "a") as f:
        f.write("\n".join(lines) + "\n")


def test_silence_cli_muted_live_then_removed(tmp_path):
    state = str(tmp_path / "state")
    log = tmp_path / "a.jsonl"
    log.write_text("")
    with HTTPReceiver() as rx:
        d = start(tmp_path, "--state-dir", state, "--no-group", "--notify", f"json://{rx.url}/h", str(log))
        try:
            add = run_cli("silence", "add", "--state-dir", state, "--rule", "LossNaN", "--for", "1h",
                          "--comment", "known NaNs")
            assert add.returncode == 0, add.stderr
            sid = add.stdout.strip()
            listed = run_cli("silence", "list", "--state-dir", state).stdout
            assert sid in listed and "rule=LossNaN" in listed and "known NaNs" in listed
            append(log, episodes_log(40, {10: "nan", 20: "high"}))
            d.wait_for(lambda: len(d.events()) == 4, "NaN and LossHigh events")
            d.wait_for(lambda: len(rx.posts) == 2, "the LossHigh notifications")
            assert run_cli("silence", "remove", "--state-dir", state, sid).returncode == 0
            assert sid not in run_cli("silence", "list", "--state-dir", state).stdout
            append(log, episodes_log(20, {45: "nan"}, start=40))
            d.wait_for(lambda: len(rx.posts) == 4, "the NaN notifications after the silence went")
        finally:
            assert d.stop() == 0
    got = notified(rx.messages())
    assert [(s, r) for s, r, _ in got] == [("firing", "LossHigh"), ("resolved", "LossHigh"),
                                           ("firing", "LossNaN"), ("resolved", "LossNaN")]
    assert got[2][2] == 45  # the silenced NaN at step 10 was never sent, not even late
    assert run_cli("silence", "remove", "--state-dir", state, "nosuch").returncode == 1


def test_a_thousand_alerts_in_a_minute_become_one_digest(tmp_path):
    log = tmp_path / "a.jsonl"
    # 500 NaN episodes: 1000 alert events in one read.
    log.write_text("\n".join(jsonl_line(s, float("nan") if s % 2 else 1.0) for s in range(1001)) + "\n")
    with HTTPReceiver() as rx:
        d = start(tmp_path, "--no-group", "--storm-limit", "20", "--storm-window", "1s",
                  "--notify", f"json://{rx.url}/h", str(log))
        try:
            d.wait_for(lambda: len(rx.posts) == 21, "20 notifications and one digest")
        finally:
            assert d.stop() == 0
    assert len(d.events()) == 1000
    titles = [m["title"] for m in rx.messages()]
    assert sum("storm digest (980 alerts)" in t for t in titles) == 1
    assert sorted(notified(rx.messages())) == sorted((e["state"], e["rule"], e["step"]) for e in d.events())


def test_repeat_interval_repeats_a_firing_alert(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("\n".join(episodes_log(20, {}) + [jsonl_line(s, 20.0) for s in range(20, 30)]) + "\n")
    with HTTPReceiver() as rx:
        d = start(tmp_path, "--repeat-interval", "1s", "--notify", f"json://{rx.url}/h", str(log))
        try:
            d.wait_for(lambda: len(rx.posts) >= 3, "two repeats")
        finally:
            assert d.stop() == 0
    assert [e["rule"] for e in d.events()] == ["LossHigh"]  # one event, repeated notifications
    assert set(notified(rx.messages())) == {("firing", "LossHigh", 24)}


def test_routes_send_by_severity_to_tagged_urls(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("\n".join(episodes_log(40, {10: "nan", 20: "high"})) + "\n")
    with HTTPReceiver() as oncall, HTTPReceiver() as team:
        d = start(tmp_path, "--no-group", "--no-resolved", "--notify", f"oncall=json://{oncall.url}/h",
                  "--notify", f"team=json://{team.url}/h", "--route", "severity=critical:oncall",
                  "--route", "*:team", str(log))
        try:
            d.wait_for(lambda: oncall.posts and team.posts, "both routes")
        finally:
            assert d.stop() == 0
    assert notified(oncall.messages()) == [("firing", "LossNaN", 10)]
    assert notified(team.messages()) == [("firing", "LossHigh", 24)]


def ev(rule="R", severity="warning", **labels):
    return AlertEvent(rule=rule, state=FIRING, run="/r/a.jsonl", step=1, value=1.0, severity=severity,
                      labels=labels, summary="")


def test_route_parsing_and_first_match():
    r = Routes.parse(["severity=critical,team=vis*:oncall,vision", "rule=Loss*:ml", "*:default"])
    assert r.tag(ev(severity="critical", team="vision")) == "oncall,vision"
    assert r.tag(ev(severity="critical", team="nlp")) == "default"
    assert r.tag(ev(rule="LossSpike")) == "ml"
    assert Routes.parse([]).tag(ev()) is None
    for bad in ["oncall", "severity=critical:", "severity:oncall"]:
        with pytest.raises(ValueError):
            Routes.parse([bad])
