"""`alertd run` end to end: a writer process appends, the daemon prints and notifies real receivers."""
import math
import signal

from alertd_proc import (TEST_RULES, AlertdRun, ce_chance_log, episodes_log, ident, jsonl_line,
                         notified, replay_events, run_cli, spawn_writer)
from receivers import HTTPReceiver, SMTPReceiver


def mailto(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=alertd@example.com&to=ops@example.com"


def test_ce_at_chance_live_equals_replay_and_notifies(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text("")
    lines = ce_chance_log(n=600, onset=300) + [jsonl_line(s, 2.0) for s in range(600, 650)]
    with HTTPReceiver() as rx, SMTPReceiver() as smtp:
        d = AlertdRun(tmp_path, "--output", "json", "--var", "num_classes=400", "--state-dir",
                      str(tmp_path / "state"), "--no-group",
                      # Every alert to the webhook; the critical ones also by mail (apprise throttles
                      # mail to one per 5.5 s, so the test sends few).
                      "--notify", f"hook,page=json://{rx.url}/hook", "--notify", "page=" + mailto(smtp.port),
                      "--route", "severity=critical:page", "--route", "*:hook", str(log))
        writer = spawn_writer(tmp_path, log, lines, batch=40, pause=0.05)
        try:
            assert writer.wait(timeout=60) == 0
            d.wait_for(lambda: any(e["rule"] == "CrossEntropyAtChance" and e["state"] == "resolved"
                                   for e in d.events()), "CE resolved event")
        finally:
            rc = d.stop(signal.SIGTERM)
        assert rc == 0, d.stderr()
        events = d.events()
        fire = [e for e in events if e["rule"] == "CrossEntropyAtChance" and e["state"] == "firing"]
        assert len(fire) == 1 and fire[0]["step"] > 300
        assert abs(fire[0]["value"] - math.log(400)) < 0.05
        # The same log replayed gives the same events (live, long-window rules are evaluated up
        # to --long-window-every later than the others: compared in step order).
        by_step = lambda es: sorted((ident(e) for e in es), key=lambda i: (i[2], i[0], i[1]))  # noqa: E731
        assert by_step(events) == by_step(replay_events(log, "--var", "num_classes=400"))
        # Pending notifications were flushed before exit: every event reached both receivers.
        got = notified(rx.messages())
        assert sorted(got) == sorted((e["state"], e["rule"], e["step"]) for e in events)
        ce = [m for m in rx.messages() if "CrossEntropyAtChance" in m["title"]]
        assert [m["title"].split("]")[0] for m in ce] == ["[FIRING", "[RESOLVED"]
        for m in ce:
            assert str(log) in m["message"] and "step:" in m["message"] and "value:" in m["message"]
        assert "5.99" in ce[0]["message"]
        mails = smtp.messages
        assert len(mails) == 2  # routed: only the critical alert's firing and resolved and "[FIRING]" in mails[0]["subject"] and "[RESOLVED]" in mails[1]["subject"]
        body = mails[0].get_body(("plain",)).get_content()
        assert str(log) in body and f"step:     {fire[0]['step']}" in body and "5.99" in body


def test_bad_rule_file_exits_2_naming_file_and_line(tmp_path):
    rules = tmp_path / "bad.yaml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: loss >\n")
    log = tmp_path / "a.jsonl"
    log.write_text(jsonl_line(0, 1.0) + "\n")
    out = run_cli("run", "--rules", str(rules), str(log))
    assert out.returncode == 2
    assert f"{rules}:5" in out.stderr


def test_malformed_lines_counted_rest_evaluated(tmp_path, log_writer):
    log = tmp_path / "a.jsonl"
    rules = tmp_path / "r.yaml"
    rules.write_text(TEST_RULES)
    writer = log_writer(log)
    writer.lines(*episodes_log(10, {}), "this is not json", "{broken", *episodes_log(10, {15: "nan"}, start=10))
    d = AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), str(log))
    try:
        d.wait_for(lambda: any(e["rule"] == "LossNaN" for e in d.events()), "LossNaN after bad lines")
        d.wait_for(lambda: "malformed" in d.stderr(), "malformed-line report")
    finally:
        assert d.stop() == 0
    assert [e["step"] for e in d.events() if e["state"] == "firing"] == [15]
    assert "line 11" in d.stderr()         # the first bad line, by its line number in the file
    assert "skipped 2 malformed" in d.stderr()  # the summary at exit counts both
