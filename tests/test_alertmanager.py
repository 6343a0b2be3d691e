"""AlertmanagerSink against a real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1.

Two sinks stand for two daemons posting alerts of different runs; Alertmanager groups by alertname
and notifies a real webhook receiver.
"""
import json
import socket
import subprocess
import time
import urllib.request
from datetime import datetime

import pytest

from alertd.export.alertmanager import AlertmanagerSink, alert_labels
from alertd.record import FIRING, RESOLVED, AlertEvent
from receivers import HTTPReceiver

CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 2s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "http://127.0.0.1:{port}/hook"
        send_resolved: true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds: float = 30.0, what: str = "condition"):
    # Bounded polling for something another process does; not a timing assertion.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on 127.0.0.1 (no cluster gossip) notifying an HTTPReceiver."""
    with HTTPReceiver() as hook:
        cfg = tmp_path / "am.yml"
        cfg.write_text(CONFIG.format(port=hook.port))
        port = free_port()
        proc = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp_path}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "am.log", "wb"))
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert proc.poll() is None, (tmp_path / "am.log").read_text()
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        try:
            wait_for(ready, what="alertmanager ready")
            yield url, hook
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def ev(run: str, rule: str = "CrossEntropyAtChance", state: str = FIRING, step: int = 676,
       t: float | None = None) -> AlertEvent:
    return AlertEvent(rule=rule, state=state, run=run, step=step, value=5.99, severity="critical",
                      labels={"loss": "loss_ce", "severity": "critical", "bad key": "x"},
                      summary=f"loss_ce at chance in {run}", description="check the labels",
                      time=time.time() if t is None else t)


def notifications(hook: HTTPReceiver) -> list[dict]:
    return [m for m in hook.messages() if m]


def test_two_daemons_one_grouped_notification_then_resolved(alertmanager):
    url, hook = alertmanager
    daemon_a = AlertmanagerSink(url, generator_url="http://alertd.local/a")
    daemon_b = AlertmanagerSink(url)
    assert daemon_a.send(ev("runs/a/train.log"))
    assert daemon_b.send(ev("runs/b/train.log"))
    assert daemon_b.send(ev("runs/b/train.log", rule="LRCollapsed"))

    # group_by [alertname]: both runs' CrossEntropyAtChance in one notification, LRCollapsed alone.
    first = wait_for(lambda: len(notifications(hook)) >= 2 and notifications(hook),
                     what="two webhook notifications")
    by_group = {n["groupLabels"]["alertname"]: n for n in first}
    assert set(by_group) == {"CrossEntropyAtChance", "LRCollapsed"}
    ce = by_group["CrossEntropyAtChance"]
    assert ce["status"] == "firing"
    assert sorted(a["labels"]["run"] for a in ce["alerts"]) == ["runs/a/train.log", "runs/b/train.log"]
    a = next(x for x in ce["alerts"] if x["labels"]["run"] == "runs/a/train.log")
    assert a["labels"] == {"alertname": "CrossEntropyAtChance", "run": "runs/a/train.log",
                           "severity": "critical", "loss": "loss_ce", "bad_key": "x"}
    assert a["annotations"]["summary"] == "loss_ce at chance in runs/a/train.log"
    assert a["annotations"]["description"] == "check the labels"
    assert a["generatorURL"] == "http://alertd.local/a"
    assert [x["labels"]["run"] for x in by_group["LRCollapsed"]["alerts"]] == ["runs/b/train.log"]
    assert daemon_a.firing() == 1 and daemon_b.firing() == 2

    # Run a resolves: the group's next notification has it resolved and b still firing.
    assert daemon_a.send(ev("runs/a/train.log", state=RESOLVED, step=900))
    assert daemon_a.firing() == 0

    def resolved_seen():
        for n in notifications(hook)[2:]:
            states = {x["labels"]["run"]: x["status"] for x in n["alerts"]}
            if states.get("runs/a/train.log") == "resolved":
                return states
    assert wait_for(resolved_seen, what="a resolved notification") == {
        "runs/a/train.log": "resolved", "runs/b/train.log": "firing"}


def test_refresh_pushes_endsat_out_and_alerts_are_listed(alertmanager):
    url, _ = alertmanager
    clock = [time.time()]
    sink = AlertmanagerSink(url, ttl=120, clock=lambda: clock[0])
    assert sink.send(ev("runs/c/train.log", t=clock[0]))
    clock[0] += 60
    assert sink.refresh()
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=10) as r:
        listed = json.load(r)
    (alert,) = listed
    assert alert["labels"]["run"] == "runs/c/train.log" and alert["status"]["state"] == "active"
    ends = datetime.fromisoformat(alert["endsAt"]).timestamp()
    assert ends > clock[0] + 100  # 60 s later + ttl 120 s, not the first post's +120 s


def test_unreachable_alertmanager_means_retry_and_bad_alert_means_drop(alertmanager):
    url, _ = alertmanager
    port = free_port()  # nothing listens there
    assert AlertmanagerSink(f"http://127.0.0.1:{port}", timeout=5).send(ev("r")) is False
    nameless = AlertEvent(rule="", state=FIRING, run="", step=1, value=None, severity="",
                          labels={}, summary="")
    sink = AlertmanagerSink(url)
    assert sink.send(nameless) is True  # refused (400: no labels): retrying cannot help
    assert sink.firing() == 0


def test_labels_never_override_ours():
    e = AlertEvent(rule="R", state=FIRING, run="x", step=1, value=None, severity="info",
                   labels={"alertname": "other", "run": "y", "9": "nine", "empty": ""}, summary="")
    assert alert_labels(e) == {"alertname": "R", "run": "x", "severity": "info", "_9": "nine"}
