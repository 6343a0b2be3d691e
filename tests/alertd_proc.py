"""`alertd run` as a real subprocess for the end-to-end tests, and the logs they feed it.

    d = AlertdRun(tmp_path, "--output", "json", "--rules", rules, str(log))
    d.wait_for(lambda evs: any(e["rule"] == "LossNaN" for e in evs))
    assert d.stop() == 0
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
# Bounded waits: a condition not met by then is a failure (with the daemon's stderr in the message).
DEADLINE = 60.0

# Short holds so that a whole scenario runs in seconds: a NaN fires at once and resolves on the next
# finite record; a loss above 10 fires after 5 records in a row.
TEST_RULES = """\
groups:
  - name: test
    rules:
      - alert: LossNaN
        expr: is_nan(loss)
        value: loss
        severity: critical
        annotations:
          summary: "loss is NaN at step {{ step }}"
      - alert: LossHigh
        expr: loss > 10
        value: loss
        for_steps: 5
        severity: warning
        annotations:
          summary: "loss {{ value }} > 10 at step {{ step }}"
"""


def alertd_cmd() -> list[str]:
    """The command that runs the CLI (the installed package, from this checkout)."""
    return [sys.executable, "-m", "alertd"]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run an alertd command to completion (replay, silence ...)."""
    return subprocess.run(alertd_cmd() + list(args), capture_output=True, text=True, env=env(),
                          timeout=DEADLINE, **kw)


def replay_events(log: Path, *args: str) -> list[dict]:
    """The events of `alertd replay --output json` on a finished log."""
    out = run_cli("replay", "--output", "json", *args, str(log))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def ident(e: dict) -> tuple:
    """What must agree between live and replay: rule, state, step, value, labels."""
    return (e["rule"], e["state"], e["step"], e["value"], tuple(sorted(e["labels"].items())))


class AlertdRun:
    """`alertd run ARGS` with stdout/stderr in files under tmp (so a killed one keeps its output)."""

    count = 0

    def __init__(self, tmp: Path, *args: str, extra_env: dict | None = None):
        AlertdRun.count += 1
        self.out = Path(tmp) / f"run{AlertdRun.count}.out"
        self.err = Path(tmp) / f"run{AlertdRun.count}.err"
        e = env()
        e.update(extra_env or {})
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(alertd_cmd() + ["run", *args], stdout=out, stderr=err, env=e,
                                         start_new_session=True)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def events(self) -> list[dict]:
        """The JSON events printed so far (a torn last line of a killed process is left out)."""
        out = []
        for line in self.stdout().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_for(self, cond: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
        """Wait until cond() holds; fail naming `what` if the daemon exits or the deadline passes."""
        end = time.monotonic() + deadline
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"alertd exited ({self.proc.returncode}) before {what}:\n{self.stderr()}")
            if time.monotonic() > end:
                raise AssertionError(f"no {what} within {deadline}s:\n{self.stderr()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send sig and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"alertd did not stop on signal {sig}:\n{self.stderr()}")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()


def jsonl_line(step: int, loss: float, **more: float) -> str:
    """One JSONL record as a training script writes it (NaN as Python's json writes it)."""
    return json.dumps({"step": step, "loss": loss, **more})


def ce_chance_log(n: int = 700, onset: int = 300, seed: int = 0) -> list[str]:
    """A 400-class run: the loss falls, then from `onset` on sits at log(400) (labels shuffled)."""
    r = random.Random(seed)
    lines = []
    for s in range(n):
        if s < onset:
            loss = 4.5 * math.exp(-s / 400) + r.uniform(-0.02, 0.02)
        else:
            loss = math.log(400) + r.uniform(-0.01, 0.01)
        lines.append(jsonl_line(s, round(loss, 5), lr=1e-3))
    return lines


def episodes_log(n: int, onsets: dict[int, str], length: int = 8, start: int = 0) -> list[str]:
    """Healthy records with failure episodes: onset step -> "nan" (one NaN) or "high" (loss 20 for
    `length` records)."""
    lines = []
    for s in range(start, start + n):
        loss = 2.0 - s * 1e-4
        for at, kind in onsets.items():
            if kind == "nan" and s == at:
                loss = float("nan")
            if kind == "high" and at <= s < at + length:
                loss = 20.0
        lines.append(jsonl_line(s, loss))
    return lines


def expected_firings(onsets: dict[int, str]) -> set[tuple[str, int]]:
    """(rule, step) of the firing event each episode of episodes_log must give with TEST_RULES."""
    return {("LossNaN", at) if kind == "nan" else ("LossHigh", at + 4) for at, kind in onsets.items()}


def notified(messages: list[dict]) -> list[tuple[str, str, int]]:
    """(state, rule, step) of every alert in json:// notification bodies, digests expanded."""
    out = []
    for m in messages:
        title = m.get("title", "")
        if "alerts)" in title:  # a group or storm digest: one line per alert in the body
            for line in m.get("message", "").splitlines():
                if line.startswith("[") and " · step " in line:
                    state, rest = line[1:].split("] ", 1)
                    rule = rest.split(" · ")[0]
                    step = int(rest.split(" · step ")[1].split(" · ")[0])
                    out.append((state.lower(), rule, step))
            continue
        state, rest = title[1:].split("] ", 1)
        out.append((state.lower(), rest.split(" · ")[0], int(title.rsplit(" · step ", 1)[1])))
    return out


# Appends the lines of a source file to a log in batches, as a training script flushing its log
# every few records does; a line "#PAUSE" in the source makes it wait a moment instead.
_BATCH_WRITER = r"""
import os, sys, time
src, dst, batch, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lines = open(src).read().splitlines()
fd = os.open(dst, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(0, len(lines), batch):
    os.write(fd, "".join(l + "\n" for l in lines[i:i + batch]).encode())
    time.sleep(pause)
os.close(fd)
"""


def spawn_writer(tmp: Path, log: Path, lines: list[str], batch: int = 50,
                 pause: float = 0.02) -> subprocess.Popen:
    """Start a process appending `lines` to `log`, `batch` lines per write, `pause` s apart."""
    src = Path(tmp) / f"{log.name}.source"
    src.write_text("\n".join(lines) + "\n")
    return subprocess.Popen([sys.executable, "-c", _BATCH_WRITER, str(src), str(log), str(batch),
                             str(pause)])
