"""Scenario: a file that appears later, and a file deleted and re-created."""
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


def test_file_appearing_later_is_read_from_its_start(tmp_path, log_writer):
    p = tmp_path / "later.log"
    with Follower(str(p), from_start=False) as f:
        assert read_all(f) == []
        assert not f.is_open
        w = log_writer(p)
        w.lines("first", "second")
        # from_start=False applies to a file that existed at start; a new one is all news.
        assert read_all(f) == [(b"first\nsecond\n", False)]


def test_delete_and_recreate_reads_new_file_with_reset(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1", "a2")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\na2\n", False)]
        w.do("rm")
        assert read_all(f) == []
        w.do("reopen")
        w.lines("b1")
        assert read_all(f) == [(b"b1\n", True)]


def test_deleted_file_still_written_through_its_fd_is_followed(tmp_path, log_writer):
    # `rm train.log` while training keeps writing: the lines still arrive until a new file appears.
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        p.unlink()
        w.lines("a2")
        assert read_all(f) == [(b"a2\n", False)]


def test_a_directory_at_the_path_is_not_read(tmp_path, log_writer):
    p = tmp_path / "train.log"
    p.mkdir()
    with Follower(str(p)) as f:
        assert read_all(f) == [] and not f.is_open
        p.rmdir()
        w = log_writer(p)
        w.lines("a1")
        assert read_all(f) == [(b"a1\n", False)]
