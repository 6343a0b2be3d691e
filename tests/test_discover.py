"""Discovery: globs that grow, paths that appear later, rotated copies, watch dirs."""
from __future__ import annotations

import os

from alertd.sources.discover import Discovery


def test_glob_that_grows_returns_each_file_once(tmp_path):
    d = Discovery([str(tmp_path / "runs" / "*" / "train.log")])
    assert d.scan() == []
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "r1" / "train.log").write_text("x\n")
    assert d.scan() == [str(tmp_path / "runs" / "r1" / "train.log")]
    (tmp_path / "runs" / "r2").mkdir()
    (tmp_path / "runs" / "r2" / "train.log").write_text("")
    assert d.scan() == [str(tmp_path / "runs" / "r2" / "train.log")]
    assert d.scan() == []


def test_plain_path_is_returned_once_it_appears(tmp_path):
    p = tmp_path / "metrics.jsonl"
    d = Discovery([str(p)])
    assert d.scan() == []
    p.write_text("")
    assert d.scan() == [str(p)]
    assert d.scan() == []
    d.forget(str(p))
    assert d.scan() == [str(p)]


def test_directories_and_excluded_names_are_not_files_to_follow(tmp_path):
    (tmp_path / "sub.log").mkdir()
    (tmp_path / "a.log").write_text("")
    (tmp_path / "a.log.gz").write_text("")
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "deep" / "x" / "b.log").write_text("")
    d = Discovery([str(tmp_path / "*"), str(tmp_path / "**" / "*.log")], exclude=["*.gz"])
    assert d.scan() == [str(tmp_path / "a.log"), str(tmp_path / "deep" / "x" / "b.log")]


def test_rotated_copy_of_a_followed_file_is_not_a_new_source(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("a1\n")
    d = Discovery([str(tmp_path / "*")])
    assert d.scan() == [str(log)]
    os.rename(log, str(log) + ".1")
    log.write_text("b1\n")
    assert d.scan() == []                   # train.log.1 is the old train.log
    os.rename(str(log) + ".1", str(log) + ".2")
    os.rename(log, str(log) + ".1")
    log.write_text("c1\n")
    assert d.scan() == []
    (tmp_path / "other.log").write_text("")
    assert d.scan() == [str(tmp_path / "other.log")]


def test_injected_glob_and_watch_dirs(tmp_path):
    (tmp_path / "r1").mkdir()
    f = tmp_path / "r1" / "train.log"
    f.write_text("")
    seen = []

    def glob(pattern):
        seen.append(pattern)
        return [str(f)]
    d = Discovery([str(tmp_path / "*" / "train.log"), str(tmp_path / "nope" / "x.log")], glob=glob)
    assert d.scan() == [str(f)]
    assert seen == [str(tmp_path / "*" / "train.log"), str(tmp_path / "nope" / "x.log")]
    assert d.watch_dirs() == [str(tmp_path), str(tmp_path / "r1")]  # "nope" does not exist yet
