"""--format regex:PATTERN: named groups -> step and metrics; real files through `alertd replay`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.parse import make_parser
from alertd.record import LINE, STEP

ROOT = Path(__file__).resolve().parents[1]
PATTERN = r"it=(?P<step>\d+) .*?loss\[(?P<loss>[^\]]+)\] acc\[(?P<acc>[^\]]+)\]"


def test_named_groups_become_step_and_metrics():
    p = make_parser("regex:" + PATTERN)
    out = p.feed(b"header line\nit=10 x loss[2.5] acc[0.1]\nit=20 x loss[nan] acc[oops]\r"
                 b"it=21 x loss[1.5] acc[0.3]\n")
    assert out.frame.columns == [STEP, LINE, "loss", "acc"]
    rows = out.frame.rows()
    assert rows[0] == (10, 2, 2.5, 0.1) and rows[2] == (21, 3, 1.5, 0.3)
    assert rows[1][0:2] == (20, 3) and rows[1][3] is None  # "oops" is no number: no value
    assert p.feed(b"it=30 x loss[1.0] acc[0.5]\n").frame.row(0) == (30, 4, 1.0, 0.5)


def test_no_step_group_numbers_records():
    p = make_parser(r"regex:loss (?P<loss>\S+)")
    assert p.feed(b"loss 3\nloss 2\n").frame.rows() == [(1, 1, 3.0), (2, 2, 2.0)]


@pytest.mark.parametrize("pattern, message", [("(?P<loss>[", "bad pattern"), (r"(\d+)", "named group"),
                                              (r"(?P<step>\d+)", "named group")])
def test_bad_patterns_are_usage_errors(tmp_path, pattern, message):
    log = tmp_path / "x.log"
    log.write_text("it=1\n")
    r = subprocess.run([sys.executable, "-m", "alertd", "replay", "--format", "regex:" + pattern, str(log)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 2 and message in r.stderr


def test_replay_with_a_regex_fires(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("".join(f"[{s:05d}] it={s} lr=1e-3 loss[{'inf' if s > 40 else 1 / s}] acc[0.5]\n"
                           for s in range(1, 60)))
    rules = tmp_path / "r.yaml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: Inf\n        expr: not_finite(loss)\n")
    r = subprocess.run([sys.executable, "-m", "alertd", "replay", "--rules", str(rules), "--format",
                        "regex:" + PATTERN, str(log)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "FIRING   Inf  run=" in r.stdout and "step=41" in r.stdout
