"""Scenario: 300 files followed at once from one thread, with open fds bounded by release()."""
from __future__ import annotations

import os

from alertd.sources.discover import Discovery
from alertd.sources.tail import Follower

N = 300


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_300_files_no_threads_bounded_fds(tmp_path):
    for i in range(N):
        (tmp_path / f"run{i:03d}.log").write_bytes(b"")
    paths = Discovery([str(tmp_path / "run*.log")]).scan()
    assert len(paths) == N
    base = open_fds()
    followers = [Follower(p) for p in paths]
    writers = [open(p, "ab", buffering=0) for p in paths]
    try:
        for rnd in range(3):
            for i, w in enumerate(writers):
                w.write(f"step={rnd} run={i}\n".encode())
            for i, f in enumerate(followers):
                c = f.read()
                assert (c.data, c.reset, c.more) == (f"step={rnd} run={i}\n".encode(), False, False)
                f.release()  # a quiet file: give its fd back
            assert open_fds() == base + N  # only the writers' fds remain
        assert all(f.position().lines == 3 for f in followers)
    finally:
        for w in writers:
            w.close()
        for f in followers:
            f.close()
    assert open_fds() == base
