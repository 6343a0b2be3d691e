"""The /metrics endpoint: a real engine's state served over HTTP and read back as Prometheus text."""
import json
import math
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from alertd.evaluate import Engine
from alertd.export.metrics import CONTENT_TYPE, LatestValues, MetricsServer, exposition, snapshot
from alertd.parse import make_parser
from alertd.rules.rulefile import load_rules

RULES = """
series:
  loss: [loss, "train/loss"]
groups:
  - name: t
    rules:
      - alert: LossHigh
        expr: loss > 1
        for_steps: 3
        severity: critical
        labels: {team: "ml \\"core\\""}
        annotations: {summary: "high"}
      - alert: LossHighForLong
        expr: loss > 1
        for_steps: 1000
        annotations: {summary: "very long"}
"""

# One sample line of the text format: name{labels} value
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_exposition(text: str) -> dict[str, list[tuple[dict, float]]]:
    """Text format -> {metric: [(labels, value)]}; fails on any line that is not valid."""
    out: dict[str, list] = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = {}
        body = (m.group(2) or "{}")[1:-1]
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            assert lm, f"bad labels in {line!r}"
            labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
            pos = lm.end()
        assert m.group(1) in types, f"{m.group(1)} has no TYPE line"
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def feed(engine: Engine, latest: LatestValues, run: str, lines: list[dict]) -> None:
    # What the daemon does per batch: parse, keep the last values, evaluate.
    parsed = make_parser("jsonl").feed("".join(json.dumps(r) + "\n" for r in lines).encode())
    latest.update(run, parsed.frame)
    engine.feed(run, parsed, now=0.0)


@pytest.fixture
def state(tmp_path):
    (tmp_path / "r.yaml").write_text(RULES)
    engine = Engine(load_rules([str(tmp_path / "r.yaml")]))
    latest = LatestValues()
    feed(engine, latest, "runs/a/train.jsonl",
         [{"step": s, "train/loss": 2.0 + s, "lr": 1e-4} for s in range(5)])
    feed(engine, latest, "runs/a/train.jsonl", [{"step": 5, "lr": 5e-5}])  # loss absent: kept
    feed(engine, latest, 'runs/b "x"/log.jsonl',
         [{"step": s, "loss": 0.5, "acc@1": float("nan") if s == 0 else 0.1,
          "gn": 1.0 if s == 0 else float("nan")} for s in range(2)])
    return engine, latest


def get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers["Content-Type"], r.read().decode()


def test_served_metrics_match_the_engine(state):
    engine, latest = state
    snap = snapshot(engine, latest)
    with MetricsServer(lambda: snap) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        ctype, text = get(server.url)
    assert ctype == CONTENT_TYPE
    m = parse_exposition(text)
    values = {(lb["run"], lb["series"]): v for lb, v in m["alertd_series_value"]}
    assert values[("runs/a/train.jsonl", "train/loss")] == 6.0
    assert values[("runs/a/train.jsonl", "lr")] == 5e-5
    assert values[("runs/b \"x\"/log.jsonl", "loss")] == 0.5
    assert values[("runs/b \"x\"/log.jsonl", "acc@1")] == 0.1
    assert math.isnan(values[("runs/b \"x\"/log.jsonl", "gn")])  # NaN is a value, shown as such
    records = {lb["run"]: v for lb, v in m["alertd_records_total"]}
    assert records == {"runs/a/train.jsonl": 6, 'runs/b "x"/log.jsonl': 2}
    alerts = sorted((lb["run"], lb["rule"], lb["state"]) for lb, v in m["alertd_alert_state"])
    assert alerts == [("runs/a/train.jsonl", "LossHigh", "firing"),
                      ("runs/a/train.jsonl", "LossHighForLong", "pending")]
    firing = next(lb for lb, _ in m["alertd_alert_state"] if lb["rule"] == "LossHigh")
    assert firing["team"] == 'ml "core"' and firing["loss"] == "train/loss"
    assert firing["severity"] == "critical"


def test_nan_and_awkward_label_names():
    snap = {"r": {"records": 1, "values": {"x": math.nan, "y": math.inf},
                  "alerts": [{"rule": "R", "state": "firing",
                              "labels": {"run": "clash", "9lives": "a\nb", "__x": "1"}}]}}
    text = exposition(snap)
    assert 'alertd_series_value{run="r",series="x"} NaN' in text
    assert 'alertd_series_value{run="r",series="y"} +Inf' in text
    (labels, _), = parse_exposition(text)["alertd_alert_state"]
    assert labels["run"] == "r" and labels["label_run"] == "clash"
    assert labels["_9lives"] == "a\nb" and labels["label__x"] == "1"


def test_promtool_accepts_the_exposition(state):
    engine, latest = state
    text = exposition(snapshot(engine, latest))
    # promtool is in Debian's `prometheus` package (the Makefile's test target installs it).
    result = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_path_is_404_and_a_failing_snapshot_is_500():
    def broken():
        raise RuntimeError("engine busy")
    with MetricsServer(broken) as server:
        for path, code in (("/nope", 404), ("/metrics", 500)):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10)
            assert e.value.code == code
            e.value.close()
