"""`alertd run` end to end with the cluster outputs and pictures:
two daemons post to one real Alertmanager, which groups their alerts as configured; /metrics is
served on 127.0.0.1; an email notification carries a PNG of the tripping series."""
import urllib.request

from alertd_proc import AlertdRun, jsonl_line
from receivers import SMTPReceiver
from test_alertmanager import alertmanager, free_port, wait_for  # noqa: F401  (fixture)

NAN_RULE = """groups:
  - name: g
    rules:
      - alert: LossNotFinite
        expr: not_finite(loss)
        severity: critical
"""


def write_log(path, n: int, nan_at: int) -> None:
    path.write_text("".join(jsonl_line(i, float("nan") if i == nan_at else 2.0 - i / 100) + "\n"
                            for i in range(n)))


def test_two_daemons_reach_one_alertmanager_grouped(tmp_path, alertmanager):  # noqa: F811
    url, hook = alertmanager
    rules = tmp_path / "rules.yaml"
    rules.write_text(NAN_RULE)
    runs = []
    for name in ("node1", "node2"):
        log = tmp_path / f"{name}.jsonl"
        write_log(log, 40, nan_at=39)  # the last record: the alert stays firing
        runs.append(AlertdRun(tmp_path, "--rules", str(rules), "--alertmanager", url, "--output", "json", str(log)))
    try:
        for r in runs:
            r.wait_for(lambda r=r: any(e["rule"] == "LossNotFinite" for e in r.events()), "firing event")
        # group_by [alertname]: the two nodes' alerts arrive in one webhook notification.
        def grouped():
            for m in hook.messages():
                body = m
                runs_in = {a["labels"].get("run", "").rsplit("/", 1)[-1] for a in body.get("alerts", [])
                           if a["labels"].get("alertname") == "LossNotFinite"}
                if {"node1.jsonl", "node2.jsonl"} <= runs_in:
                    return body
            return None
        try:
            body = wait_for(grouped, 30, "one grouped notification with both runs")
        except AssertionError:
            raise AssertionError(f"{hook.messages()}\n{runs[0].stderr()}\n{runs[0].stdout()}") from None
        assert body["groupLabels"] == {"alertname": "LossNotFinite"}
        assert all(a["labels"]["severity"] == "critical" for a in body["alerts"])
    finally:
        for r in runs:
            assert r.stop() == 0


def test_metrics_endpoint_serves_latest_values_and_alert_states(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(NAN_RULE)
    log = tmp_path / "train.jsonl"
    write_log(log, 40, nan_at=39)
    port = free_port()
    run = AlertdRun(tmp_path, "--rules", str(rules), "--metrics-listen", f"127.0.0.1:{port}", "--output", "json", str(log))
    try:
        run.wait_for(lambda: run.events(), "firing event")

        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return None
            return text if "alertd_alert_state" in text else None
        text = wait_for(scrape, 20, "a scrape with the alert state")
        lines = text.splitlines()
        assert any(l.startswith("alertd_alert_state{") and 'rule="LossNotFinite"' in l and 'state="firing"' in l
                   for l in lines)
        assert any(l.startswith("alertd_series_value{") and 'series="loss"' in l and l.endswith(" NaN")
                   for l in lines)
        assert any(l.startswith("alertd_records_total{") and l.endswith(" 40") for l in lines)
        # It listens on loopback only (asked for 127.0.0.1).
        assert "127.0.0.1" in open(f"/proc/{run.proc.pid}/cmdline").read().replace("\0", " ")
    finally:
        assert run.stop() == 0


def test_email_notification_carries_a_png_of_the_tripping_series(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(NAN_RULE)
    log = tmp_path / "train.jsonl"
    write_log(log, 60, nan_at=59)
    with SMTPReceiver() as smtp:
        url = f"mailto://127.0.0.1:{smtp.port}?from=alertd@example.com&to=ops@example.com"
        run = AlertdRun(tmp_path, "--rules", str(rules), "--notify", url, "--state-dir", str(tmp_path / "state"),
                        "--output", "json", str(log))
        try:
            try:
                msg = wait_for(lambda: next((m for m in smtp.messages if "LossNotFinite" in m["Subject"]), None),
                               60, "an email for the alert")
            except AssertionError:
                raise AssertionError(run.stderr() + run.stdout()) from None
            pngs = [p for p in msg.walk() if p.get_content_type() == "image/png"]
            assert len(pngs) == 1
            data = pngs[0].get_payload(decode=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
        finally:
            assert run.stop() == 0
