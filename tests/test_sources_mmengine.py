"""MMEngine vis_data/scalars.json: train records (with `iter`) and evaluation records (step = epoch).

Lines are written as mmengine's LocalVisBackend.add_scalars writes them: json.dumps(dict) + "\\n",
with the LoggerHook's tags (train: lr, data_time, loss, time, epoch, iter, memory, step=iter+1;
val: the metrics, data_time, time, step=epoch).
"""
from __future__ import annotations

import json

import polars as pl

from alertd.parse import make_parser
from alertd.record import STEP

TRAIN = [{"base_lr": 0.01, "lr": 0.01, "data_time": 0.01, "loss": 2.0 - i / 10, "time": 0.2, "epoch": 1,
          "iter": i * 10 - 1, "memory": 300, "step": i * 10} for i in range(1, 6)]
VAL = {"accuracy/top1": 41.5, "data_time": 0.5, "time": 0.9, "step": 1}


def lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_val_records_join_the_train_step_axis(tmp_path):
    path = tmp_path / "20240101_000000" / "vis_data" / "scalars.json"
    p = make_parser("auto", str(path))
    assert p.format == "scalars_json"
    first = p.feed(lines(*TRAIN[:3])).frame
    second = p.feed(lines(VAL, *TRAIN[3:])).frame  # the evaluation after step 30, then training goes on
    assert first[STEP].to_list() == [10, 20, 30]
    assert second[STEP].to_list() == [30, 40, 50]
    val = second.filter(pl.col("val/step").is_not_null())
    assert val.select("accuracy/top1", "val/time", "val/data_time", "val/step").row(0) == (41.5, 0.9, 0.5, 1.0)
    assert val["time"].to_list() == [None] and second["time"].drop_nulls().to_list() == [0.2, 0.2]
    assert second["loss"].drop_nulls().to_list() == [1.6, 1.5]


def test_same_lines_as_plain_jsonl_keep_their_own_steps():
    p = make_parser("auto")  # no name: content says JSONL, and JSONL keeps `step` as written
    df = p.feed(lines(*TRAIN[:2], VAL)).frame
    assert p.format == "jsonl" and df[STEP].to_list() == [10, 20, 1]
