"""Delivery through `alertd run` that loses nothing: receiver down or failing, daemon restarts, exit flush."""
import signal

from alertd_proc import TEST_RULES, AlertdRun, episodes_log, notified, spawn_writer
from receivers import HTTPReceiver

ONSETS = {10: "nan", 30: "high", 60: "nan", 90: "high", 120: "nan"}
FAST_RETRY = ["--retry-base", "0.1", "--retry-max", "0.5"]


def start(tmp_path, rx, log, *extra):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    return AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), "--no-group",
                     "--notify", f"json://{rx.url}/hook", *extra, str(log))


def printed(runs) -> list[tuple[str, str, int]]:
    return [(e["state"], e["rule"], e["step"]) for d in runs for e in d.events()]


def test_receiver_down_then_back_gets_everything_in_order_once(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("")
    with HTTPReceiver() as rx:
        rx.stop()  # connections refused from the start
        d = start(tmp_path, rx, log, *FAST_RETRY)
        try:
            writer = spawn_writer(tmp_path, log, episodes_log(150, ONSETS), batch=10, pause=0.05)
            assert writer.wait(timeout=60) == 0
            d.wait_for(lambda: len(d.events()) == 2 * len(ONSETS), "all events printed")
            assert rx.posts == []
            rx.start()
            d.wait_for(lambda: len(rx.posts) >= len(d.events()), "delivery after the receiver is back")
        finally:
            assert d.stop() == 0
    assert notified(rx.messages()) == printed([d])  # in order, none twice


def test_failing_receiver_across_restart_loses_nothing(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("")
    state = ["--state-dir", str(tmp_path / "state"), "--drain-timeout", "0.5", *FAST_RETRY]
    lines = episodes_log(150, ONSETS)
    with HTTPReceiver() as rx:
        rx.fail = True  # every POST answered 500
        first = start(tmp_path, rx, log, *state)
        try:
            log.write_text("\n".join(lines[:50]) + "\n")
            first.wait_for(lambda: len(first.events()) == 4, "events of the first half")
            first.wait_for(lambda: rx.failed >= 2, "failed deliveries")
        finally:
            assert first.stop() == 0
        second = start(tmp_path, rx, log, *state)
        try:
            with open(log, "a") as f:
                f.write("\n".join(lines[50:]) + "\n")
            second.wait_for(lambda: len(second.events()) == 6, "events of the second half")
            rx.fail = False
            second.wait_for(lambda: len(rx.posts) >= 10, "delivery of both halves")
        finally:
            assert second.stop() == 0
    assert notified(rx.messages()) == printed([first, second])
    assert len(set(notified(rx.messages()))) == 10


def test_sigint_flushes_pending_notifications(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("")
    with HTTPReceiver() as rx:
        rx.fail = True
        # A long backoff: without the flush at exit nothing would be retried before it.
        d = start(tmp_path, rx, log, "--retry-base", "300", "--retry-max", "300")
        try:
            log.write_text("\n".join(episodes_log(50, {10: "nan", 20: "nan"})) + "\n")
            d.wait_for(lambda: len(d.events()) == 4 and rx.failed >= 1, "events and a failed delivery")
            rx.fail = False
        finally:
            assert d.stop(signal.SIGINT) == 0
    assert notified(rx.messages()) == printed([d])
