"""Scenario: copytruncate and plain truncation of a followed file."""
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


def test_copytruncate_restarts_at_zero_with_reset(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("step=1 loss=2.0", "step=2 loss=1.9")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"step=1 loss=2.0\nstep=2 loss=1.9\n", False)]
        w.do("copytruncate", str(p) + ".1")
        assert read_all(f) == []
        w.lines("step=3 loss=1.8")
        assert read_all(f) == [(b"step=3 loss=1.8\n", True)]
        w.lines("step=4 loss=1.7")
        assert read_all(f) == [(b"step=4 loss=1.7\n", False)]
        assert (tmp_path / "train.log.1").read_bytes().count(b"\n") == 2


def test_truncated_and_rewritten_past_offset_is_noticed(tmp_path, log_writer):
    # The writer refills the file beyond our offset before we look: size alone cannot tell,
    # the changed first bytes do.
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("old 1", "old 2")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"old 1\nold 2\n", False)]
        w.do("copytruncate", str(p) + ".1")
        w.lines("new run line 1", "new run line 2")
        assert read_all(f) == [(b"new run line 1\nnew run line 2\n", True)]


def test_truncate_in_place_by_another_process(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1", "a2", "a3")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\na2\na3\n", False)]
        with open(p, "wb"):  # `> train.log` from a shell
            pass
        assert read_all(f) == []
        assert f.position().offset == 0
        w.lines("b1")
        assert read_all(f) == [(b"b1\n", True)]
