"""`alertd watch` end to end: real child processes, real signals, real files, a real webhook receiver."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from receivers import HTTPReceiver

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ALERTD = [sys.executable, "-m", "alertd"]
TIMEOUT = 240  # seconds: a bound on a hung test, not an assertion

STOP_RULES = """
series:
  loss: [loss]
groups:
  - name: watch
    rules:
      - alert: LossDiverged
        expr: not_finite(loss) or loss > 100
        severity: critical
        action: stop
        annotations:
          summary: "loss {{ value }} at step {{ step }}"
"""

QUIET_RULES = """
groups:
  - name: quiet
    rules:
      - alert: NeverThere
        expr: no_such_metric > 1
"""


def rules(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def script(tmp_path: Path, body: str, name: str = "child.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def watch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ALERTD, "watch", *args], cwd=cwd, env=ENV, capture_output=True, timeout=TIMEOUT)


def test_broken_train_is_stopped_by_the_stop_rule(tmp_path):
    tee = tmp_path / "tee.log"
    r = watch("--rules", rules(tmp_path, STOP_RULES), "--tee", str(tee), "--grace", "60",
              "--", sys.executable, str(ROOT / "samples" / "broken_train.py"), cwd=tmp_path)
    err = r.stderr.decode()
    # The child handles SIGINT (KeyboardInterrupt) and exits 130: watch exits with that code.
    assert r.returncode == 130, err
    assert "FIRING   LossDiverged" in err and "action: stop; sending SIGINT" in err
    assert "interrupted at step" in err and "sending SIGTERM" not in err
    assert "RunDied" in err and "exited with code 130 after alertd stopped it (LossDiverged)" in err
    # stdout is the child's own, untouched: its lines and nothing of ours.
    out = r.stdout.decode().splitlines()
    assert out[0].startswith("training:") and all(line.startswith("step ") for line in out[1:])
    fired_at = int(err.split("FIRING   LossDiverged")[1].split("step=")[1].split()[0])
    assert int(out[-1].split()[1]) >= fired_at  # it trained on until the signal came
    # The tee holds both streams of the child, byte for byte, and none of alertd's lines. Its one
    # stderr line lands where the two pipes happened to be read: after the last stdout line,
    # between two (the stdout pipe's last lines read after it), or inside one (print() may write
    # the text and its newline apart).
    teed = tee.read_bytes()
    stop_line = re.search(rb"interrupted at step \d+: saving nothing, exiting\n", teed).group(0)
    assert b"alertd" not in teed and stop_line.decode() in err
    assert teed.replace(stop_line, b"", 1) == r.stdout


def test_exit_code_and_last_lines_are_reported(tmp_path):
    child = script(tmp_path, """
        import logging, sys
        logging.basicConfig(format="%(message)s")  # stderr, as most training logs are
        print("stdout says hello", flush=True)
        for i in range(30):
            logging.warning(f"line {i}")
        logging.error("CUDA error: out of memory")
        sys.exit(3)
    """)
    r = watch("--rules", rules(tmp_path, QUIET_RULES), "--", sys.executable, child, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 3
    assert "RunDied" in err and "exit_code=3" in err and "exited with code 3" in err
    report = err.split("alertd: last lines:\n")[1].splitlines()
    assert "CUDA error: out of memory" in report and "line 29" in report
    assert "line 10" not in report and len(report) == 20  # the last 20 lines, no more
    # (lines of the two streams are kept in the order they reached alertd)


def test_output_passes_through_byte_exact(tmp_path):
    # tqdm-style \r updates, invalid UTF-8, a last line without newline, a long line: all unchanged.
    child = script(tmp_path, r"""
        import os
        os.write(1, b"epoch 1\n")
        for i in range(1, 6):
            os.write(2, b"\r 40%%|####      | %d/10 [00:01<00:02,  3.1it/s, loss=0.5]" % i)
        os.write(2, b" end-of-bar\n")
        os.write(1, b"\xff\xfe raw \x00 bytes\n" + b"x" * 200000 + b"\nno newline at the end")
    """)
    tee = tmp_path / "tee.log"
    r = watch("--rules", rules(tmp_path, QUIET_RULES), "--tee", str(tee), "--", sys.executable, child,
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    expect_out = b"epoch 1\n\xff\xfe raw \x00 bytes\n" + b"x" * 200000 + b"\nno newline at the end"
    expect_err = b"".join(b"\r 40%%|####      | %d/10 [00:01<00:02,  3.1it/s, loss=0.5]" % i
                          for i in range(1, 6)) + b" end-of-bar\n"
    assert r.stdout == expect_out
    assert r.stderr == expect_err  # nothing fired, the child exited 0: alertd adds nothing
    # The tee interleaves the two streams as they came; without the stderr pieces it is stdout.
    teed = tee.read_bytes()
    assert len(teed) == len(expect_out) + len(expect_err)
    for i in range(1, 6):
        teed = teed.replace(b"\r 40%%|####      | %d/10 [00:01<00:02,  3.1it/s, loss=0.5]" % i, b"", 1)
    assert teed.replace(b" end-of-bar\n", b"", 1) == expect_out


def test_tqdm_updates_on_stderr_are_evaluated(tmp_path):
    child = script(tmp_path, r"""
        import sys, time
        for i in range(1, 40):
            loss = "nan" if i >= 30 else f"{1 / i:.3f}"
            sys.stderr.write(f"\r{i}/100 [00:0{i % 10}<00:10, 9.9it/s, loss={loss}, lr=1e-03]")
            sys.stderr.flush()
        sys.stderr.write("\n")
    """)
    r = watch("--rules", rules(tmp_path, STOP_RULES), "--", sys.executable, child, cwd=tmp_path)
    err = r.stderr.decode()
    assert "FIRING   LossDiverged  run=child.py:stderr step=30" in err
    assert r.returncode in (0, 130)  # it may finish before the SIGINT lands


def test_sigterm_when_sigint_is_ignored_then_sigkill(tmp_path):
    child = script(tmp_path, """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if sys.argv[1] == "also-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("loss=nan", flush=True)
        while True:
            time.sleep(0.05)
    """)
    r = watch("--rules", rules(tmp_path, STOP_RULES), "--grace", "0.5", "--",
              sys.executable, child, "term", cwd=tmp_path)
    assert r.returncode == 128 + signal.SIGTERM
    assert "sending SIGTERM" in r.stderr.decode() and "killed by SIGTERM" in r.stderr.decode()
    r = watch("--rules", rules(tmp_path, STOP_RULES), "--grace", "0.5", "--",
              sys.executable, child, "also-term", cwd=tmp_path)
    assert r.returncode == 128 + signal.SIGKILL
    assert "sending SIGKILL" in r.stderr.decode() and "killed by SIGKILL" in r.stderr.decode()


def test_sigterm_to_watch_is_forwarded_to_the_child(tmp_path):
    child = script(tmp_path, """
        import signal, sys, time
        def bye(*_):
            print("child got SIGTERM", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
    """)
    p = subprocess.Popen([*ALERTD, "watch", "--rules", rules(tmp_path, QUIET_RULES), "--", sys.executable, child],
                         cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)  # to watch alone: the child is in its own process group
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 7
    assert out == b"child got SIGTERM\n"
    assert b"exited with code 7" in err


def test_also_files_are_tailed_and_died_run_is_notified(tmp_path):
    child = script(tmp_path, """
        import json, sys, time
        with open("metrics.jsonl", "w") as f:
            for step in range(1, 50):
                f.write(json.dumps({"step": step, "loss": float("nan") if step > 20 else 1.0}) + "\\n")
                f.flush()
                print(f"wrote step {step}", flush=True)
                time.sleep(0.02)
        sys.exit(5)
    """)
    with HTTPReceiver() as rx:
        r = watch("--rules", rules(tmp_path, STOP_RULES), "--also", str(tmp_path / "*.jsonl"),
                  "--notify", f"json://{rx.url}/hook", "--", sys.executable, child, cwd=tmp_path)
        posts = list(rx.posts)
    err = r.stderr.decode()
    assert f"FIRING   LossDiverged  run={tmp_path / 'metrics.jsonl'} step=21" in err
    assert r.returncode in (5, 130)  # stopped by SIGINT, or done before it landed
    titles = [p["json"]["title"] + p["json"]["message"] for p in posts]
    assert any("LossDiverged" in t for t in titles) and any("RunDied" in t for t in titles)


def test_no_command_is_a_usage_error(tmp_path):
    r = watch("--rules", rules(tmp_path, QUIET_RULES), cwd=tmp_path)
    assert r.returncode == 2 and b"no command given" in r.stderr


@pytest.mark.parametrize("missing", ["/nonexistent/train-binary"])
def test_command_not_found_exits_127(tmp_path, missing):
    r = watch("--rules", rules(tmp_path, QUIET_RULES), "--", missing, cwd=tmp_path)
    assert r.returncode == 127 and b"cannot run" in r.stderr
