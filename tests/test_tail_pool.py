"""Scenario: a Tailer over 300 growing files with few fds, restarted from its checkpoints."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from alertd.sources.checkpoint import Checkpoints
from alertd.sources.discover import Discovery
from alertd.sources.pool import Tailer

N = 300


def collect(tailer: Tailer) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path, chunk in tailer.poll():
        out[path] = out.get(path, b"") + chunk.data
    return out


def test_300_files_bounded_fds_and_restart_from_checkpoints(tmp_path):
    logs = tmp_path / "runs"
    logs.mkdir()
    writers = {str(logs / f"r{i:03d}.log"): open(logs / f"r{i:03d}.log", "ab", buffering=0)
               for i in range(N)}
    state = str(tmp_path / "state" / "checkpoints.json")
    now = [0.0]
    try:
        for p, w in writers.items():
            w.write(b"step=0\n")
        with Tailer(Discovery([str(logs / "*.log")]), Checkpoints(state), max_open=50,
                    quiet_after=10.0, clock=lambda: now[0]) as t:
            assert collect(t) == {p: b"step=0\n" for p in writers}
            assert t.open_files() <= 50
            for p, w in writers.items():
                w.write(b"step=1\n")
            now[0] = 1.0
            assert collect(t) == {p: b"step=1\n" for p in writers}
            assert t.open_files() <= 50
            now[0] = 20.0                          # everyone quiet for longer than quiet_after
            assert collect(t) == {}
            assert t.open_files() == 0
            t.commit()
        for p, w in writers.items():               # written while the daemon is down
            w.write(b"step=2\n")
        with Tailer(Discovery([str(logs / "*.log")]), Checkpoints(state), from_start=False) as t:
            assert collect(t) == {p: b"step=2\n" for p in writers}
            (logs / "late.log").write_bytes(b"new run\n")
            assert collect(t) == {str(logs / "late.log"): b"new run\n"}
    finally:
        for w in writers.values():
            w.close()


FD_LIMITS = """
import resource, sys
from alertd.sources.pool import Tailer, raise_fd_limit
from alertd.sources.discover import Discovery
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
before = Tailer(Discovery([])).max_open
got = raise_fd_limit()
after = Tailer(Discovery([])).max_open
print(before, got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], after, hard)
"""


def test_fd_limit_raised_to_the_hard_one_and_half_of_it_kept_for_files(tmp_path):
    # A subprocess: the limit is the process's own.
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", FD_LIMITS], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout.split()
    before, got, soft, after, hard = map(int, out)
    assert before == 100  # half of 200
    want = min(hard, 65536) if hard != -1 else 65536
    assert got == soft == want and after == want // 2
