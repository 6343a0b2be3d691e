"""Checkpoints: atomic 0600 JSON, and resuming a Follower with no line read twice or missed."""
from __future__ import annotations

import json
import os
import stat

import pytest

from alertd.sources.checkpoint import Checkpoints, Position
from alertd.sources.tail import Follower


def read_all(f: Follower) -> bytes:
    out = b""
    while True:
        c = f.read()
        out += c.data
        if not c.more:
            return out


def test_roundtrip_mode_0600_and_readable_json(tmp_path):
    state = tmp_path / "state" / "checkpoints.json"
    cps = Checkpoints(str(state))
    assert cps.get("a.log") is None
    cps.set("a.log", Position(1, 2, 30, "16:abc", 3))
    cps.save()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert json.loads(state.read_text())["files"]["a.log"]["offset"] == 30
    assert Checkpoints(str(state)).get("a.log") == Position(1, 2, 30, "16:abc", 3)
    assert [p.name for p in state.parent.iterdir()] == ["checkpoints.json"]  # no temp file left


def test_save_is_skipped_when_nothing_changed(tmp_path):
    state = tmp_path / "checkpoints.json"
    cps = Checkpoints(str(state))
    cps.set("a.log", Position(1, 2, 30, "x"))
    cps.save()
    ino = os.stat(state).st_ino
    cps.set("a.log", Position(1, 2, 30, "x"))
    cps.save()
    assert os.stat(state).st_ino == ino  # not rewritten (a rewrite renames a new inode in)
    cps.set("a.log", Position(1, 2, 31, "x"))
    cps.save()
    assert os.stat(state).st_ino != ino
    cps.forget("a.log")
    cps.save()
    assert Checkpoints(str(state)).files() == []


def test_corrupt_file_fails_loudly(tmp_path):
    state = tmp_path / "checkpoints.json"
    state.write_text("{not json")
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoints(str(state))


def test_resume_reads_every_line_exactly_once(tmp_path, log_writer):
    p, state = tmp_path / "train.log", str(tmp_path / "cp.json")
    w = log_writer(p)
    w.lines("l1", "l2", "l3")
    w.do("p", "l4-part")
    f = Follower(str(p))
    first = read_all(f)
    cps = Checkpoints(state)
    cps.set(str(p), f.position())
    cps.save()
    f.close()                                   # the daemon stops
    w.lines("-end", "l5")                       # written while it is down
    f = Follower(str(p), position=Checkpoints(state).get(str(p)))
    w.lines("l6")
    second = read_all(f)
    assert first + second == b"l1\nl2\nl3\nl4-part-end\nl5\nl6\n"
    assert f.position().lines == 6
    f.close()


def test_resume_after_rotation_while_down_starts_the_new_file(tmp_path, log_writer):
    p, state = tmp_path / "train.log", str(tmp_path / "cp.json")
    w = log_writer(p)
    w.lines("a1", "a2")
    with Follower(str(p)) as f:
        read_all(f)
        pos = f.position()
    w.do("rename", str(p) + ".1")
    w.do("reopen")
    w.lines("b1")
    with Follower(str(p), position=pos) as f:
        assert read_all(f) == b"b1\n"


def test_resume_after_truncation_while_down_starts_at_zero(tmp_path, log_writer):
    p = tmp_path / "train.log"
    w = log_writer(p)
    w.lines("a1", "a2")
    with Follower(str(p)) as f:
        read_all(f)
        pos = f.position()
    w.do("copytruncate", str(p) + ".1")
    w.lines("b1")                                # same inode, smaller than our offset
    with Follower(str(p), position=pos) as f:
        assert read_all(f) == b"b1\n"
    w.lines("a different first line that is longer than before")
    with Follower(str(p), position=pos) as f:    # same inode, big enough, other first bytes
        assert read_all(f).startswith(b"b1\n")


def test_position_of_a_missing_file_resumes_from_the_start(tmp_path, log_writer):
    p = tmp_path / "late.log"
    with Follower(str(p)) as f:
        pos = f.position()
    w = log_writer(p)
    w.lines("x")
    with Follower(str(p), position=pos) as f:
        assert read_all(f) == b"x\n"
