"""Scenario: rotation by rename + create, with lines just before and just after it."""
from __future__ import annotations

import os

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


def test_rename_create_reads_old_tail_then_new_file(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1", "a2")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\na2\n", False)]
        w.lines("a3")                       # just before the rotation
        w.do("rename", str(p) + ".1")
        w.lines("a4")                       # writer still on the old fd, new file not there yet
        assert read_all(f) == [(b"a3\na4\n", False)]
        w.lines("a5")
        w.do("reopen")                      # the new file appears
        w.lines("b1", "b2")                 # just after
        assert read_all(f) == [(b"a5\n", False), (b"b1\nb2\n", True)]
        w.lines("b3")
        assert read_all(f) == [(b"b3\n", False)]
        pos = f.position()
        st = os.stat(p)
        assert (pos.dev, pos.ino, pos.offset) == (st.st_dev, st.st_ino, 9)


def test_rotation_between_reads_keeps_both_sides(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        w.lines("a2")
        w.do("rename", str(p) + ".1")
        w.do("reopen")
        w.lines("b1")
        assert read_all(f) == [(b"a2\n", False), (b"b1\n", True)]


def test_unterminated_last_line_of_rotated_file_is_handed_out(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    w.do("p", "crashed mid-li")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        w.do("rename", str(p) + ".1")
        w.do("reopen")
        w.lines("b1")
        assert read_all(f) == [(b"crashed mid-li\n", False), (b"b1\n", True)]


def test_rotation_while_released_starts_new_file(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        f.release()
        assert not f.is_open
        w.do("rename", str(p) + ".1")
        w.do("reopen")
        w.lines("b1")
        assert read_all(f) == [(b"b1\n", True)]
        assert f.is_open


def test_release_without_change_resumes_without_repeats(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        f.release()
        w.lines("a2")
        assert read_all(f) == [(b"a2\n", False)]


def test_unread_lines_and_unterminated_tail_both_survive_rotation(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1")
    with Follower(str(p)) as f:
        assert read_all(f) == [(b"a1\n", False)]
        w.lines("a2")
        w.do("p", "a3-cut")
        w.do("rename", str(p) + ".1")
        w.do("reopen")
        w.lines("b1")
        assert read_all(f) == [(b"a2\n", False), (b"a3-cut\n", False), (b"b1\n", True)]
