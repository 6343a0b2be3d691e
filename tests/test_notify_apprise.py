"""AppriseSink and Outbox against real receivers on 127.0.0.1: HTTP (json://) and SMTP (mailto://)."""
import json
import logging
import subprocess
import sys

import pytest

from alertd.notify.apprise_sink import AppriseSink
from alertd.notify.outbox import Outbox
from alertd.record import FIRING, RESOLVED, AlertEvent
from receivers import HTTPReceiver, SMTPReceiver

TOKEN = "tok9Xq72LmZ0aa"


@pytest.fixture(autouse=True, scope="module")
def apprise_worker_pool():
    """Start apprise's process-wide worker pool before the per-test thread-leak check looks.

    apprise runs each service call in one shared ThreadPoolExecutor (so it can enforce its service
    timeout); its thread lives as long as the process by design, like the daemon's.
    """
    from apprise.apprise import get_shared_executor
    get_shared_executor().submit(lambda: None).result()
    yield


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def ev(step: int = 312, state: str = FIRING) -> AlertEvent:
    return AlertEvent(rule="CEAtChance", state=state, run="/runs/exp7/train.jsonl", step=step,
                      value=2.302585, severity="critical", labels={"head": "cls"},
                      summary="CE stuck at log(10)")


def mailto(port: int) -> str:
    # Plain mailto:// = SMTP without TLS; no user/password, so no login.
    return f"mailto://127.0.0.1:{port}?from=alertd@example.com&to=ops@example.com"


def no_throttle(sink: AppriseSink) -> None:
    # apprise's email plugin sleeps 5.5 s between sends to one server; tests need no politeness.
    for service in sink.services:
        service.request_rate_per_sec = 0


def test_json_receiver_gets_title_and_body():
    with HTTPReceiver() as rx:
        sink = AppriseSink([f"json://{rx.url}/alerts"])
        assert sink.send(ev())
        assert sink.send(ev(400, RESOLVED))
        first, second = rx.messages()
    assert first["title"] == "[FIRING] CEAtChance · run train.jsonl · step 312"
    assert first["type"] == "failure"
    for part in ["/runs/exp7/train.jsonl", "CEAtChance", "312", "2.30259", "firing", "critical",
                 "head=cls", "CE stuck at log(10)"]:
        assert part in first["message"]
    assert second["title"].startswith("[RESOLVED]") and second["type"] == "success"
    assert "resolved" in second["message"]


def test_email_reaches_smtp_server():
    with SMTPReceiver() as smtp:
        sink = AppriseSink([mailto(smtp.port)])
        assert sink.send(ev())
        (msg,) = smtp.messages
    assert msg["Subject"] == "[FIRING] CEAtChance · run train.jsonl · step 312"
    assert msg["To"] == "ops@example.com"
    text = msg.get_body(("plain",)).get_content()
    assert "/runs/exp7/train.jsonl" in text and "step:     312" in text and "firing" in text


def test_smtp_refusing_then_accepting():
    clock = Clock()
    with SMTPReceiver() as smtp:
        sink = AppriseSink([mailto(smtp.port)])
        no_throttle(sink)
        box = Outbox(None, sink.send, clock=clock, base_backoff=1.0)
        smtp.refuse = True
        box.put(ev(1))
        box.put(ev(2, RESOLVED))
        assert box.pump() == 0 and box.pump() == 0  # second pump: not due yet
        clock.t += box.next_due()
        assert box.pump() == 0
        assert smtp.handler.refused == 2
        smtp.refuse = False
        clock.t += box.next_due()
        assert box.pump() == 2
        subjects = [m["Subject"] for m in smtp.messages]
    assert subjects == ["[FIRING] CEAtChance · run train.jsonl · step 1",
                        "[RESOLVED] CEAtChance · run train.jsonl · step 2"]


def test_receiver_down_then_back_all_in_order_none_twice(tmp_path):
    clock = Clock()
    with HTTPReceiver() as rx:
        sink = AppriseSink([f"json://{rx.url}/alerts"])
        box = Outbox(str(tmp_path), sink.send, clock=clock, base_backoff=0.5, max_backoff=2.0)
        box.put(ev(1))
        assert box.pump() == 1
        rx.stop()                      # connection refused
        for step in (2, 3):
            box.put(ev(step))
        for _ in range(3):
            assert box.pump() == 0
            clock.t += box.next_due()
        rx.start()                     # same port, now answering 500
        rx.fail = True
        for step in (4, 5):
            box.put(ev(step))
        for _ in range(3):
            assert box.pump() == 0
            clock.t += box.next_due()
        assert rx.failed == 3
        rx.fail = False
        assert box.pump() == 4
        steps = [int(m["title"].rsplit(" ", 1)[1]) for m in rx.messages()]
    assert steps == [1, 2, 3, 4, 5]


def test_outbox_survives_restart_with_real_receiver(tmp_path):
    with HTTPReceiver() as rx:
        sink = AppriseSink([f"json://{rx.url}/alerts"])
        box = Outbox(str(tmp_path), sink.send, clock=Clock())
        box.put(ev(1))
        box.pump()
        rx.fail = True
        box.put(ev(2))
        box.put(ev(3))
        box.pump()
        rx.fail = False
        restarted = Outbox(str(tmp_path), AppriseSink([f"json://{rx.url}/alerts"]).send)
        assert restarted.pending() == 2 and restarted.pump() == 2
        steps = [int(m["title"].rsplit(" ", 1)[1]) for m in rx.messages()]
    assert steps == [1, 2, 3]


def test_one_failing_url_does_not_duplicate_the_other():
    clock = Clock()
    with HTTPReceiver() as good, HTTPReceiver() as bad:
        sink = AppriseSink([f"json://{good.url}/a", f"json://{bad.url}/b"])
        box = Outbox(None, sink.send, clock=clock)
        bad.fail = True
        box.put(ev(1))
        assert box.pump() == 0
        bad.fail = False
        clock.t += box.next_due()
        assert box.pump() == 1
        assert len(good.messages()) == 1 and len(bad.messages()) == 1


def test_tags_route_and_unknown_tag_is_dropped(caplog):
    with HTTPReceiver() as ops, HTTPReceiver() as ml:
        sink = AppriseSink([f"ops=json://{ops.url}/x", f"ml,research=json://{ml.url}/y"])
        assert sink.send(ev(), tag="research")
        assert sink.send(ev(), tag="nobody")   # no URL can ever take it: retrying cannot help
        assert len(ops.messages()) == 0 and len(ml.messages()) == 1
    assert "no notification URL has tag 'nobody'" in caplog.text


def test_config_file_with_tags(tmp_path):
    with HTTPReceiver() as rx:
        cfg = tmp_path / "apprise.txt"
        cfg.write_text(f"oncall=json://{rx.url}/cfg\n")
        sink = AppriseSink([], config=str(cfg))
        assert sink.send(ev(), tag="oncall")
        assert rx.posts[0]["path"] == "/cfg"


def test_env_token_never_in_output(capsys, caplog, monkeypatch):
    monkeypatch.setenv("ALERTD_TEST_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)  # apprise and urllib3 log the full request URL at DEBUG
    with HTTPReceiver() as rx:
        sink = AppriseSink([f"json://{rx.url}/hook/${{ALERTD_TEST_TOKEN}}?token=${{ALERTD_TEST_TOKEN}}"])
        assert sink.send(ev())
        assert rx.posts[0]["path"].startswith(f"/hook/{TOKEN}")  # the real token went out
        rx.stop()                      # connection errors quote the URL
        assert not sink.send(ev(2))
        rx.start()
        rx.fail = True
        assert not sink.send(ev(2))
        shown = "\n".join(sink.describe())
    out, err = capsys.readouterr()
    assert "hook/***" in caplog.text
    for text in (out, err, caplog.text, shown):
        assert TOKEN not in text


def test_bad_config_errors_are_clear_and_redacted():
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE"):
        AppriseSink(["json://127.0.0.1:1/${NOT_SET_ANYWHERE}"], environ={})
    with pytest.raises(ValueError) as info:
        AppriseSink(["nosuchscheme://user:pw9secret@host/x"])
    assert "pw9secret" not in str(info.value)
    with pytest.raises(ValueError, match="no notification URL"):
        AppriseSink([])
    with pytest.raises(ValueError, match="not found"):
        AppriseSink([], config="/nonexistent/apprise.yml")


# In a fresh interpreter (apprise's plugin manager is one per process): build a sink, send one
# event, report the plugin modules loaded and the services' classes; then apprise's full load.
FRESH_SINK = """
import json, sys
from alertd.notify import apprise_plugins
from alertd.notify.apprise_sink import AppriseSink
from alertd.record import AlertEvent
urls, config, executable = json.loads(sys.argv[1])
sys.executable = executable or sys.executable  # one that cannot start: the child fails
def loaded():
    return sum(name.startswith("apprise.plugins.") for name in sys.modules)
sink = AppriseSink(urls, config)
event = AlertEvent(rule="R", state="firing", run="r", step=1, value=1.0, severity="info",
                   labels={}, summary="")
out = {"loaded": loaded(), "sent": sink.send(event, tag="ops"),
       "types": sorted(type(s).__name__ for s in sink.services)}
apprise_plugins.load_all()
out["all"] = loaded()
out["after_all"] = AppriseSink(urls, config).send(event, tag="ops")
print(json.dumps(out))
"""


def fresh_sink(urls: list[str], config: str | None = None, executable: str | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", FRESH_SINK, json.dumps([urls, config, executable])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_only_the_plugins_in_use_are_loaded():
    with HTTPReceiver() as rx:
        got = fresh_sink([f"ops=json://{rx.url}/one"])
        assert rx.posts[0]["path"] == "/one" and len(rx.posts) == 2  # narrow, then after the full load
    assert got["types"] == ["NotifyJSON"] and got["sent"] and got["after_all"]
    assert got["loaded"] <= 5 and got["all"] > 50


def test_config_file_and_native_urls_load_their_plugins(tmp_path):
    # A pasted Discord webhook (https://discord.com/...) is parsed by the plugin that claims it.
    cfg = tmp_path / "apprise.txt"
    with HTTPReceiver() as rx:
        cfg.write_text(f"ops=json://{rx.url}/cfg\n"
                       "mailto://127.0.0.1:1?from=alertd@example.com&to=a@example.com\n")
        got = fresh_sink(["https://discord.com/api/webhooks/1234567/abcdefghTOKEN"], str(cfg))
        assert rx.posts[0]["path"] == "/cfg"
    assert got["types"] == ["NotifyDiscord", "NotifyEmail", "NotifyJSON"]
    assert got["sent"] and got["loaded"] <= 15 and got["all"] > 50


def test_a_failing_child_falls_back_to_the_full_load(tmp_path):
    with HTTPReceiver() as rx:
        got = fresh_sink([f"ops=json://{rx.url}/one"], executable=str(tmp_path / "no-python"))
        assert rx.posts[0]["path"] == "/one"
    assert got["types"] == ["NotifyJSON"] and got["sent"] and got["loaded"] > 50
