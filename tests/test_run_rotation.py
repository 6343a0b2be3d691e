"""`alertd run` across rotations: rename+create, then copytruncate; a failure in each segment fires once."""
from alertd_proc import TEST_RULES, AlertdRun, episodes_log, expected_firings, notified
from receivers import HTTPReceiver

SEGMENTS = [({20: "nan"}, 0), ({60: "high"}, 40), ({100: "nan"}, 80)]  # (onsets, first step)


def test_each_segment_fires_exactly_once(tmp_path, log_writer):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    log = tmp_path / "train.jsonl"
    writer = log_writer(log)
    with HTTPReceiver() as rx:
        d = AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), "--state-dir", str(tmp_path / "s"),
                      "--notify", f"json://{rx.url}/hook", str(log))
        try:
            for i, (onsets, first) in enumerate(SEGMENTS):
                if i == 1:
                    writer.do("rename", str(log) + ".1")   # logrotate's default: rename, then
                    writer.do("reopen")                    # the app reopens the path (a new file)
                if i == 2:
                    writer.do("copytruncate", str(log) + ".2")  # copy, then truncate in place
                writer.lines(*episodes_log(40, onsets, start=first))
                n = 2 * (i + 1)
                d.wait_for(lambda: len(d.events()) >= n and len(notified(rx.messages())) >= n,
                           f"the alert of segment {i + 1}, fired, resolved and notified")
        finally:
            assert d.stop() == 0
    fired = [(e["rule"], e["step"]) for e in d.events() if e["state"] == "firing"]
    assert sorted(fired) == sorted(expected_firings({k: v for o, _ in SEGMENTS for k, v in o.items()}))
    assert len(d.events()) == 6
    got = [(rule, step) for state, rule, step in notified(rx.messages()) if state == "firing"]
    assert sorted(got) == sorted(fired)
