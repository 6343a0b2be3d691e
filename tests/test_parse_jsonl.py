"""JSONL parser: real files, any chunking, NaN/Inf, nesting, meta records, bad lines, any bytes."""
from __future__ import annotations

import json
import math
import random
import time

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import parsing
from alertd.parse import make_parser
from alertd.parse.jsonl_scan import MAX_OPENERS, Scan
from alertd.record import LINE, STEP


def feed_chunks(fmt: str, data: bytes, cuts: list[int]):
    """Feed data split at the given line-terminator offsets; return (frame, meta, bad, first_bad)."""
    return parsing.feed_chunks(data, cuts, fmt)


def line_ends(data: bytes) -> list[int]:
    """Offsets just after each line terminator."""
    return [i + 1 for i, b in enumerate(data) if b in (10, 13)]


def assert_chunking_invariant(fmt: str, data: bytes, seed: int = 0):
    """Whole, line by line and random cuts give the same frame, meta and bad-line tally."""
    whole = feed_chunks(fmt, data, [])
    ends = line_ends(data)
    rnd = random.Random(seed)
    for cuts in (ends, sorted(rnd.sample(ends, len(ends) // 3))):
        got = feed_chunks(fmt, data, cuts)
        assert_frame_equal(got[0], whole[0])
        assert got[1:] == whole[1:]
    return whole


def write_run(path, n: int) -> None:
    """A run log as Python's json module writes it: nested, sparse, with NaN and Infinity."""
    with open(path, "w") as f:
        f.write(json.dumps({"meta": {"num_classes": 400, "grad_accum": 8, "model": {"name": "r50"}}}) + "\n")
        for i in range(1, n + 1):
            rec = {"step": i, "train": {"loss": 2.0 / i, "acc": i / n}, "lr": 1e-4, "phase": "train"}
            if i % 7 == 0:
                rec["val_loss"] = 1.5
            if i == 50:
                rec["train"]["loss"] = float("nan")
            if i == 60:
                rec["grad_norm"] = float("inf")
            if i == 61:
                rec["grad_norm"] = float("-inf")
            f.write(json.dumps(rec) + "\n")


def test_real_file_nested_sparse_nonfinite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_run(path, 300)  # > 100 rows: keys first seen late (grad_norm) must survive inference
    df, meta, bad, first = assert_chunking_invariant("jsonl", path.read_bytes())
    assert bad == 0 and first is None
    assert meta == {"num_classes": 400, "grad_accum": 8, "model/name": "r50"}
    assert df.height == 300
    assert df[STEP].to_list() == list(range(1, 301))
    assert df[LINE].to_list() == list(range(2, 302))  # line 1 is the meta record
    assert set(df.columns) == {STEP, LINE, "train/loss", "train/acc", "lr", "val_loss", "grad_norm"}
    assert all(dt == pl.Float64 for c, dt in df.schema.items() if c not in (STEP, LINE))
    row = dict(zip(df.columns, df.row(49)))
    assert math.isnan(row["train/loss"])
    assert df.filter(pl.col(STEP) == 60)["grad_norm"].item() == math.inf
    assert df.filter(pl.col(STEP) == 61)["grad_norm"].item() == -math.inf
    assert df["val_loss"].drop_nulls().len() == 300 // 7


def test_malformed_lines_counted_with_first_line(tmp_path):
    lines = [json.dumps({"step": i, "loss": 1.0}) for i in range(1, 2001)]
    lines[499] = '{"step": 500, "loss": 1.0'      # truncated object: line 500
    lines[1199] = "[1, 2, 3]"                     # not an object
    lines[1499] = "Traceback (most recent call last):"
    data = ("\n".join(lines) + "\n").encode()
    (tmp_path / "m.jsonl").write_bytes(data)
    df, _, bad, first = assert_chunking_invariant("jsonl", (tmp_path / "m.jsonl").read_bytes())
    assert (bad, first) == (3, 500)
    assert df.height == 1997
    assert 500 not in df[STEP].to_list() and 1201 in df[LINE].to_list()
    r = make_parser("jsonl").feed(data)
    assert "JSON" in r.first_bad_reason


def test_ordinal_step_blank_lines_and_crlf():
    data = b'{"loss": 1}\r\n\r\n{"loss": 2}\n\n\n{"loss": NaN, "epoch": 1}\n'
    df, _, bad, _ = assert_chunking_invariant("jsonl", data)
    assert bad == 0
    assert df[STEP].to_list() == [1, 2, 3]
    assert df[LINE].to_list() == [1, 3, 6]
    p = make_parser("jsonl")
    p.feed(data)
    assert p.feed(b'{"loss": 3}\n').frame.row(0)[:2] == (4, 7)  # ordinal and line continue
    p.reset()
    assert p.feed(b'{"loss": 3}\n').frame.row(0)[:2] == (1, 1)


def test_step_keys_strings_bools_lists():
    data = (b'{"global_step": 10, "loss": "2.5", "name": "x", "ok": true, "hist": [1, 2], "n": null}\n'
            b'{"iteration": 11.0, "loss": 1}\n')
    df = make_parser("jsonl").feed(data).frame
    assert df[STEP].to_list() == [10, 11]
    assert "global_step" not in df.columns and "name" not in df.columns and "hist" not in df.columns
    assert df["loss"].to_list() == [2.5, 1.0]
    assert df["ok"].to_list() == [1.0, None]


def test_deeply_nested_and_huge_lines_do_not_crash():
    deep = b'{"a":' * 800 + b"1" + b"}" * 800           # polars would overflow its stack here
    deeper = b'{"a":' * 5000 + b"1" + b"}" * 5000       # json.loads raises RecursionError here
    huge = b'{"loss": 1, "pad": "' + b"x" * 5_000_000 + b'"}'
    data = b"\n".join([b'{"loss": 0}', deep, deeper, huge, b'{"loss": 2}']) + b"\n"
    r = make_parser("jsonl").feed(data)
    assert r.frame["loss"].to_list() == [0.0, 1.0, 2.0]
    assert r.bad_lines == 1 and r.first_bad_line == 3


def test_binary_garbage_and_invalid_utf8():
    data = b'{"loss": 1}\n\x00\xff\xfe\x80garbage\n{"lo\xffss": 2}\n'
    r = make_parser("jsonl").feed(data)
    assert r.bad_lines == 1 and r.first_bad_line == 2
    assert r.frame.height == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.sampled_from(["auto", "jsonl", "text", "csv"]))
def test_feed_never_raises(chunks, fmt):
    p = make_parser(fmt)
    for c in chunks:
        r = p.feed(c + b"\n")
        assert r.bad_lines >= 0
        assert r.frame.schema[STEP] == pl.Int64 and r.frame.schema[LINE] == pl.Int64


@settings(max_examples=200, deadline=None)
@given(st.lists(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                             lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                             max_leaves=10), max_size=8))
def test_json_values_any_shape(values):
    data = b"".join(json.dumps(v).encode() + b"\n" for v in values)
    p = make_parser("jsonl")
    r = p.feed(data)
    objects = sum(isinstance(v, dict) for v in values)
    assert r.bad_lines == len(values) - objects
    assert r.frame.height <= objects


def test_deep_arrays_and_many_openers_stay_out_of_polars():
    # polars 2.1 takes seconds (arrays 500 deep) to minutes (1000) to infer the type of a deeply
    # nested value, ~2 s for objects 100 deep; json.loads reads these lines at once.
    arrays = b'{"loss": 1, "h": ' + b"[" * 800 + b"1" + b"]" * 800 + b"}"
    objects = b'{"loss": 2, "a": ' + b'{"a": ' * 100 + b"1" + b"}" * 101
    data = b"\n".join([b'{"loss": 0}', arrays, objects, b'{"loss": 3}']) + b"\n"
    t = time.monotonic()
    r = make_parser("jsonl").feed(data)
    assert time.monotonic() - t < 10
    assert r.frame["loss"].to_list() == [0.0, 1.0, 2.0, 3.0]
    assert r.bad_lines == 0


@pytest.mark.parametrize("late", [
    '{"step": %d, "loss": 1.0, "late_key": 5.0}',                     # a new key
    '{"step": %d, "loss": 1.0, "note": "t:nope", "late_key": 5.0}',  # ... beside a string with ':n'
    '{"step": %d, "loss": 1.0, "nested": {"late_key": 5.0}}',         # ... inside a new object
])
def test_keys_first_seen_after_schema_inference_are_read(late):
    rows = [json.dumps({"step": i, "loss": 1.0, "val": None, "at": "12:30:00", "phase": "train"})
            for i in range(1, 500)]  # json.dumps writes nulls as ': null', strings hold colons
    data = ("\n".join(rows + [late % 500]) + "\n").encode()
    df, _, bad, _ = assert_chunking_invariant("jsonl", data)
    name = "nested/late_key" if "nested" in late else "late_key"
    assert bad == 0 and df.filter(pl.col(STEP) == 500)[name].to_list() == [5.0]


@pytest.mark.parametrize("late", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_past_schema_inference_is_read_without_json_loads(late, monkeypatch):
    # Python's json writes NaN/Infinity bare; past the 100 rows polars infers from, a quoted one
    # failed the read of a column inferred as numbers, and the piece (250 lines: one leaf) went
    # to json.loads line by line (~10x the cost). Its key is now read as String from the start.
    rows = [{"step": i, "loss": 1.0 + i / 1000, "lr": 0.1} for i in range(1, 251)]
    rows[200]["loss"] = late
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    from alertd.parse import jsonl
    reads, slow = [], []
    real_read, real_slow = jsonl.pl.read_ndjson, jsonl._slow
    monkeypatch.setattr(jsonl.pl, "read_ndjson", lambda *a, **k: reads.append(k) or real_read(*a, **k))
    monkeypatch.setattr(jsonl, "_slow", lambda *a: slow.append(a) or real_slow(*a))
    r = make_parser("jsonl").feed(data)
    assert len(reads) == 1 and slow == [] and r.bad_lines == 0
    want = [float(x["loss"]) for x in rows]
    got = r.frame["loss"].to_list()
    assert [repr(x) for x in got] == [repr(x) for x in want]  # NaN == NaN by repr, inf exact
    monkeypatch.undo()
    df, _, bad, _ = assert_chunking_invariant("jsonl", data)
    assert bad == 0 and df.height == 250


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400).map(lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02\x03", b"\n{[:"))))
def test_scan_counts_newlines_colons_and_openers_per_line(data):
    scan = Scan(data)
    assert scan.newlines == data.count(b"\n")
    assert scan.colons() == data.count(b":")
    most = max(line.count(b"{") + line.count(b"[") for line in data.split(b"\n"))
    assert scan.nesting_ok() == (most < MAX_OPENERS)


def test_scan_counts_nulls_as_python_and_polars_write_them():
    values = [None, 1.5, "null", "n", True, False, float("nan"), float("-inf"), [None], {"x": None}]
    for sep in ((", ", ": "), (",", ":")):
        line = json.dumps({f"k{i}": v for i, v in enumerate(values)}, separators=sep).encode()
        assert Scan(line).nulls() == 2  # k0 and x; the null in [None] follows no colon


def test_keys_polars_reads_as_patterns_are_left_out():
    # `*` and `^...$` name no column in a polars query (a wildcard, a regex): kept, they would
    # select other columns; no rule could name them either. Found by test_json_values_any_shape.
    data = b'{}\n{"*": false}\n{"^a$": 1, "a": 2}\n{"b": "x"}\n{"*": 3, "step": 9}\n{"a": 5, "step": 12}\n'
    r = make_parser("jsonl").feed(data)
    assert r.frame.columns == [STEP, LINE, "a"]
    assert r.frame.rows() == [(1, 3, 2.0), (12, 6, 5.0)]
