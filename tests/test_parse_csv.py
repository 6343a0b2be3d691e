"""CSV parser: Lightning CSVLogger's metrics.csv, header across feeds, sparse rows, bad rows."""
from __future__ import annotations

import csv
import math
import random

import polars as pl
from polars.testing import assert_frame_equal

import parsing
from alertd.parse import make_parser
from alertd.record import LINE, STEP


def write_metrics_csv(path, steps: int) -> None:
    """Write metrics.csv the way Lightning's CSVLogger does (csv.DictWriter, sparse rows)."""
    keys = ["epoch", "lr-Adam", "step", "train_loss", "val_loss"]
    rows = []
    for s in range(1, steps + 1):
        rows.append({"epoch": s // 10, "step": 10 * s - 1, "train_loss": 2.0 / s})
        rows.append({"lr-Adam": 1e-3, "step": 10 * s - 1})  # a LearningRateMonitor row, same step
        if s % 5 == 0:
            rows.append({"epoch": s // 10, "step": 10 * s - 1, "val_loss": 1.0 / s})
    rows[3]["train_loss"] = float("nan")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def feed_chunks(data: bytes, cuts: list[int], fmt: str = "csv"):
    """Feed data split at the given offsets; return (frame, bad, first)."""
    frame, _, bad, first = parsing.feed_chunks(data, cuts, fmt)
    return frame, bad, first


def test_lightning_metrics_csv_any_chunking(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, 20)
    data = path.read_bytes()
    whole = feed_chunks(data, [])
    ends = [i + 1 for i, b in enumerate(data) if b == 10]
    for cuts in (ends, [ends[0]], sorted(random.Random(3).sample(ends, 10))):
        got = feed_chunks(data, cuts)
        assert_frame_equal(got[0], whole[0])
        assert got[1:] == whole[1:]
    df, bad, _ = whole
    assert bad == 0
    assert df.columns == [STEP, LINE, "epoch", "lr-Adam", "train_loss", "val_loss"]
    assert df.height == 20 * 2 + 4
    assert df[STEP].to_list()[:3] == [9, 9, 19]             # several rows per step kept apart
    assert df[LINE].to_list()[:3] == [2, 3, 4]
    assert math.isnan(df.filter(pl.col(LINE) == 5)["train_loss"].item())
    assert df["val_loss"].drop_nulls().to_list() == [1 / 5, 1 / 10, 1 / 15, 1 / 20]


def test_header_then_data_in_later_feed_and_reset():
    p = make_parser("csv")
    assert p.feed(b"epoch,step,train_loss\n").frame.height == 0
    assert p.feed(b"0,7,2.5\n").frame.row(0) == (7, 2, 0.0, 2.5)
    p.reset()  # rotated: the new file has its own header
    r = p.feed(b"step,val_acc\n3,0.75\n")
    assert r.frame.row(0) == (3, 2, 0.75)


def test_wrong_field_count_is_malformed():
    data = b"epoch,step,loss\n0,1,2.0\n0,2\n0,3,1.0,9\n0,4,\"1.5\"\n\"a,b\",5\n0,6,0.5\n"
    r = make_parser("csv").feed(data)
    assert (r.bad_lines, r.first_bad_line) == (3, 3)
    assert "fields" in r.first_bad_reason
    assert r.frame[STEP].to_list() == [1, 4, 6]
    assert r.frame["loss"].to_list() == [2.0, 1.5, 0.5]


def test_no_step_column_uses_ordinal_and_crlf():
    r = make_parser("csv").feed(b"loss,acc\r\n1.0,\r\n,0.5\r\n\r\nx,y\r\n")
    assert r.frame[STEP].to_list() == [1, 2]
    assert r.frame[LINE].to_list() == [2, 3]
    assert r.bad_lines == 0  # a row of non-numbers is not malformed, it just has no metric
