"""Scenario: records written in pieces, tqdm carriage returns, and chunk bounds."""
from __future__ import annotations

from alertd.sources.tail import Follower


def read_all(f: Follower) -> list[tuple[bytes, bool]]:
    """(data, reset) of every non-empty chunk available now."""
    out = []
    while True:
        c = f.read()
        if c.data:
            out.append((c.data, c.reset))
        if not c.more:
            return out


def test_partial_line_waits_for_its_terminator(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("step=1 loss=2.0")
    w.do("p", "step=2 lo")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"step=1 loss=2.0\n", False)]
        assert f.position().offset == len(b"step=1 loss=2.0\n")  # handed out, not read ahead
        w.do("p", "ss=1.")
        assert read_all(f) == []
        w.lines("9")
        assert read_all(f) == [(b"step=2 loss=1.9\n", False)]


def test_tqdm_carriage_returns_are_line_ends(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    with Follower(str(p)) as f:
        w.do("r", " 10%|#   | 10/100 [loss=2.3]")
        assert read_all(f) == [(b" 10%|#   | 10/100 [loss=2.3]\r", False)]
        w.do("p", " 20%|##  | 20/1")
        assert read_all(f) == []
        w.do("r", "00 [loss=2.1]")
        assert read_all(f) == [(b" 20%|##  | 20/100 [loss=2.1]\r", False)]


def test_max_chunk_splits_reads_at_line_ends(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    lines = [f"step={i} loss={1 / (i + 1):.6f}" for i in range(200)]
    w.lines(*lines)
    with Follower(str(p), max_chunk=100) as f:
        got = read_all(f)
    assert len(got) > 10
    assert all(len(d) <= 100 and d.endswith(b"\n") for d, _ in got)
    assert b"".join(d for d, _ in got) == "".join(x + "\n" for x in lines).encode()


def test_line_longer_than_max_chunk_is_dropped(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("ok 1", "x" * 500, "ok 2")
    with Follower(str(p), max_chunk=64) as f:
        assert b"".join(d for d, _ in read_all(f)) == b"ok 1\nok 2\n"
        assert f.dropped == 501


def test_from_end_skips_history_and_waits_for_a_line_start(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("old 1", "old 2")
    w.do("p", "step=3 lo")
    with Follower(str(p), from_start=False) as f:
        assert read_all(f) == []
        w.lines("ss=1.5")
        assert read_all(f) == [(b"step=3 loss=1.5\n", False)]
