"""deploy/: the systemd unit, the sbatch snippet (run with a fake srun) and the tmux one-liner."""
from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from receivers import HTTPReceiver

from alertd.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
RULES = "groups:\n  - name: g\n    rules:\n      - alert: LossNaN\n        expr: not_finite(loss)\n"
# The "training": writes print lines; NaN from step 5; then keeps running until alertd has caught it
# (or, with "forever", until it is killed), so the test waits on facts, not on time.
TRAIN = r"""
import math, os, sys, time
log = os.path.join(os.environ["RUN_DIR"], "alertd.log")
for step in range(1, 8):
    print(f"step {step} | loss {math.nan if step >= 5 else 1 / step}", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if "forever" not in sys.argv and os.path.exists(log) and "FIRING" in open(log).read():
        break
    time.sleep(0.1)
print("training done", flush=True)
"""


def wait_for(predicate, what: str, limit: float = 120.0) -> None:
    """Wait (bounded) for a fact; the limit only turns a hang into a failure."""
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_scripts_parse():
    for script in ("sbatch_snippet.sh", "tmux.sh"):
        subprocess.run(["bash", "-n", str(DEPLOY / script)], check=True)
    subprocess.run(["sh", "-n", str(DEPLOY / "tmux.sh")], check=True)


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read(DEPLOY / "alertd.service")
    return cp


def test_unit_keys_and_command_line():
    cp = unit()
    assert cp.sections() == ["Unit", "Service", "Install"]
    svc = cp["Service"]
    assert svc["StateDirectory"] == "alertd" and svc["EnvironmentFile"].startswith("/etc/alertd/")
    argv = shlex.split(svc["ExecStart"].replace("$$", "$"))
    assert argv[0].endswith("/alertd") and "${SLACK_TOKEN}" in " ".join(argv)  # alertd expands it, not systemd
    args = build_parser().parse_args(argv[1:])  # every option is one alertd has
    assert args.command == "run" and args.state_dir == "${STATE_DIRECTORY}" and len(args.paths) == 2
    assert cp["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart's program exists: point it at this venv's alertd.
    text = (DEPLOY / "alertd.service").read_text().replace("/usr/local/bin/alertd", str(BIN / "alertd"))
    (tmp_path / "alertd.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "alertd.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def batch_env(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/sh\nexec "$@"\n')  # srun runs the step here, on this node
    (fake / "srun").chmod(0o755)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "r.yaml").write_text(RULES)
    return {**os.environ, "PATH": f"{fake}:{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "RUN_DIR": str(tmp_path / "run"), "ALERTD_ARGS": f"--rules {tmp_path / 'r.yaml'}",
            "SLURM_JOB_ID": "4242"}


def started_pid(stderr: str) -> int:
    return int(stderr.split("alertd: started (pid ")[1].split(")")[0])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sbatch_snippet_alerts_and_stops_with_the_job(tmp_path):
    env = batch_env(tmp_path)
    r = subprocess.run(["bash", str(DEPLOY / "sbatch_snippet.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    assert "FIRING   LossNaN" in (run / "alertd.log").read_text()
    assert (run / "train.log").read_text().endswith("training done\n")
    assert "alertd: stopped" in r.stderr and gone(started_pid(r.stderr))
    assert (run / "alertd-state" / "state.json").is_file()  # saved on SIGTERM


def test_scancel_stops_training_and_alertd(tmp_path):
    env = batch_env(tmp_path)
    job = subprocess.Popen(["bash", str(DEPLOY / "sbatch_snippet.sh"), "forever"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = tmp_path / "run" / "alertd.log"
        wait_for(lambda: log.exists() and "FIRING" in log.read_text(), "the alert")
        job.send_signal(signal.SIGTERM)  # what scancel and the time limit do to the batch script
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 143
    assert "alertd: stopped" in err and gone(started_pid(err))
    assert "training done" not in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_tmux_one_liner_runs_alertd(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": NaN}\n')
    with HTTPReceiver() as rx:
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
               "HOME": str(tmp_path), "TMUX_TMPDIR": str(tmp_path), "ALERTD_NOTIFY": f"json://{rx.url}/hook"}
        env.pop("TMUX", None)
        try:
            subprocess.run(["sh", str(DEPLOY / "tmux.sh"), "log.jsonl"], cwd=tmp_path, env=env, check=True,
                           timeout=60)
            wait_for(lambda: rx.posts, "a notification from alertd in tmux")
            assert "NonFinite" in rx.posts[0]["json"]["title"] + rx.posts[0]["json"]["message"]
            assert (tmp_path / ".alertd").is_dir()
        finally:
            subprocess.run(["tmux", "kill-server"], env=env, capture_output=True, timeout=60)
