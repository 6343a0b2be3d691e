"""`alertd status` over the state dir a real `alertd run` left, and replay's progress bar on a real pty."""
from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from alertd.status import collect, format_text, progress

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
RULES = """
groups:
  - name: g
    rules:
      - alert: LossNaN
        expr: not_finite(loss)
        annotations:
          summary: "loss is {{ value }} at step {{ step }}"
"""


def alertd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alertd", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)


def test_status_of_a_daemon_that_ran(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n"
                                              for s, v in ((1, 1.0), (2, 0.5), (3, float("nan")))))
    (tmp_path / "b.jsonl").write_text('{"step": 7, "loss": 0.3}\n')
    (tmp_path / "r.yaml").write_text(RULES)
    state = tmp_path / "state"
    daemon = subprocess.Popen([sys.executable, "-m", "alertd", "run", "--rules", "r.yaml", "--state-dir",
                               str(state), "--output", "json", "*.jsonl"], cwd=tmp_path, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        event = json.loads(daemon.stdout.readline())  # the pass that printed it also saves the state
        assert event["rule"] == "LossNaN"
        daemon.send_signal(signal.SIGINT)
        daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    before = sorted(p.name for p in state.iterdir())
    r = alertd("status", "--state-dir", str(state), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    runs = {run["run"]: run for run in info["runs"]}
    assert runs["a.jsonl"]["last_step"] == 3 and runs["b.jsonl"]["last_step"] == 7
    assert runs["a.jsonl"]["behind_bytes"] == 0 and runs["a.jsonl"]["records"] == 3
    assert [(a["run"], a["rule"], a["since_step"]) for a in info["alerts"]] == [("a.jsonl", "LossNaN", 3)]
    # b.jsonl grows after the daemon stopped: status shows how far behind the state is.
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write('{"step": 8, "loss": 0.2}\n')
    text = alertd("status", "--state-dir", str(state), cwd=tmp_path).stdout
    assert "runs (2):" in text and "firing (1):" in text
    line_b = next(line for line in text.splitlines() if line.startswith("b.jsonl"))
    assert line_b.split()[1] == "7" and line_b.endswith("25 B")
    assert "a.jsonl  LossNaN  loss=loss  3" in text
    assert sorted(p.name for p in state.iterdir()) == before  # read-only: nothing written


def test_offsets_only_state_dir_lists_files(tmp_path):
    state = tmp_path / "s"
    state.mkdir()
    (tmp_path / "x.log").write_text("loss=1\n")
    (state / "offsets.json").write_text(json.dumps(
        {"version": 1, "files": {str(tmp_path / "x.log"): {"dev": 1, "ino": 2, "offset": 3, "fingerprint": ""}}}))
    info = collect(str(state), now=0.0)
    assert info["runs"][0]["behind_bytes"] == 4 and info["runs"][0]["last_step"] is None and info["alerts"] == []
    assert "(none)" in format_text(info, now=0.0)


def test_no_state_is_exit_2(tmp_path):
    r = alertd("status", "--state-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert r.returncode == 2 and "no state.json" in r.stderr


def _read_until(fd: int, end: str, timeout: float = 10.0) -> str:
    """What a pty's master side gets up to `end`: one read may return before the last write
    arrives (CI once saw three of four draws)."""
    got, deadline = "", time.monotonic() + timeout
    while end not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, 4096).decode()
    return got


def test_progress_draws_on_a_terminal_only():
    assert progress(100, stream=io.StringIO()) is None  # piped: nothing extra
    master, slave = os.openpty()
    with open(slave, "w") as tty:
        step = progress(4 << 20, stream=tty, min_interval=0.0)
        for _ in range(4):
            step(1 << 20)
        tty.flush()
        drawn = _read_until(master, "\n")  # the last draw ends the line
    os.close(master)
    assert drawn.count("\r[") == 4 and " 25.0% 1/4 MiB" in drawn and "100.0% 4/4 MiB" in drawn


def test_replay_piped_prints_no_bar(tmp_path):
    (tmp_path / "l.log").write_text("".join(f"step {s} | loss {1 / s}\n" for s in range(1, 100)))
    (tmp_path / "r.yaml").write_text(RULES)
    r = alertd("replay", "--rules", "r.yaml", "l.log", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
