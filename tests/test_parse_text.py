"""Text logs: tqdm bars, print lines, MMEngine and HF Trainer lines; any chunking; no false metrics."""
from __future__ import annotations

import math
import random

import polars as pl
from polars.testing import assert_frame_equal

import parsing
from alertd.parse import make_parser
from alertd.record import LINE, STEP


def feed_chunks(data: bytes, cuts: list[int], fmt: str = "text"):
    """Feed data split at the given offsets; return (frame with sorted metric columns, bad, first)."""
    frame, _, bad, first = parsing.feed_chunks(data, cuts, fmt)
    return frame, bad, first


def parse_any_chunking(data: bytes, fmt: str = "text") -> pl.DataFrame:
    """Parse whole, at every terminator and at random terminators; all must agree."""
    whole, bad, _ = feed_chunks(data, [], fmt)
    assert bad == 0
    ends = [i + 1 for i, b in enumerate(data) if b in (10, 13)]
    for cuts in (ends, sorted(random.Random(1).sample(ends, len(ends) // 2))):
        assert_frame_equal(feed_chunks(data, cuts, fmt)[0], whole)
    return whole


def tqdm_output(desc: str, total: int, losses: dict[int, float], ascii_bar: bool = True) -> str:
    """What tqdm writes to stderr: '\\r'-separated updates of one line, postfix from set_postfix."""
    out = []
    for n in [0, *losses]:
        frac = n / total
        if ascii_bar:
            filled = int(frac * 10)
            bar = "#" * filled + (str(int(frac * 100) % 10) if filled < 10 else "") + " " * (9 - filled)
        else:
            bar = "\u2588" * int(frac * 10) + " " * (10 - int(frac * 10))
        post = "" if n == 0 else f", loss={losses[n]:.3g}, lr=1e-04"
        rate = "?it/s" if n == 0 else "12.1it/s"
        out.append(f"\r{desc}: {int(frac * 100):3d}%|{bar[:10]}| {n}/{total} [00:03<00:04, {rate}{post}]")
    return "".join(out) + "\n"


def test_tqdm_updates_are_records_with_counter_step(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("starting run\n" + tqdm_output("Epoch 1", 100, {45: 1.234, 46: 1.2, 100: 0.9})
                   + tqdm_output("Epoch 2", 100, {10: float("nan")}, ascii_bar=False))
    df = parse_any_chunking(log.read_bytes())
    assert df.columns == [STEP, LINE, "loss", "lr"]  # no 'it/s', no 'Epoch', no 'lr' for the 0% update
    assert df[STEP].to_list() == [45, 46, 100, 10]
    assert df[LINE].to_list() == [2, 2, 2, 3]
    assert df["loss"].to_list()[:3] == [1.23, 1.2, 0.9] and math.isnan(df["loss"][3])


def test_print_styles(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "Namespace(lr=0.001, epochs=3)\n"           # args dump: lr=0.001 is a pair (no step yet: ordinal)
        "step 120 | loss 2.3412 | grad_norm 0.8123 | lr 1.00e-04\n"
        "Saving checkpoint to out/ckpt_3.pt\n"
        "train/loss_text=0.649 dbg/grad_flow=1e-9\n"
        "iter: 30, loss: 0.5\n"
        "loss=nan\n"
        "loss: inf, grad_norm: -inf\n"
        "connecting to localhost:8080/api at 12:00:01\n"
    )
    df = parse_any_chunking(log.read_bytes())
    rows = {r[LINE]: r for r in df.to_dicts()}
    assert sorted(rows) == [1, 2, 4, 5, 6, 7]
    assert rows[1][STEP] == 1 and rows[1]["lr"] == 0.001
    assert rows[2][STEP] == 120 and rows[2]["loss"] == 2.3412 and rows[2]["grad_norm"] == 0.8123
    assert rows[4]["train/loss_text"] == 0.649 and rows[4]["dbg/grad_flow"] == 1e-9 and rows[4][STEP] == 3
    assert rows[5][STEP] == 30 and rows[5]["loss"] == 0.5 and "iter" not in df.columns
    assert math.isnan(rows[6]["loss"]) and rows[6][STEP] == 5
    assert rows[7]["loss"] == math.inf and rows[7]["grad_norm"] == -math.inf


MMENGINE = """\
2024/01/01 12:00:00 - mmengine - INFO - Checkpoints will be saved to /work/dirs.
2024/01/01 12:00:05 - mmengine - INFO - Epoch(train) [1][ 50/500]  lr: 1.0000e-04  eta: 0:01:02  time: 0.1234  data_time: 0.0100  memory: 1234  loss: 2.3026  loss_cls: 2.3026
2024/01/01 12:00:10 - mmengine - INFO - Epoch(train) [2][100/500]  lr: 1.0000e-04  eta: 1 day, 0:01:02  time: 0.1200  data_time: 0.0100  memory: 1234  grad_norm: 0.5000  loss: 1.9000  loss_cls: 1.9000
2024/01/01 12:00:15 - mmengine - INFO - Iter(train) [  50/5000]  lr: 2.0000e-04  eta: 0:11:02  time: 0.1100  data_time: 0.0090  memory: 1300  loss: 2.1000
"""


def test_mmengine(tmp_path):
    (tmp_path / "mm.log").write_text(MMENGINE)
    df = parse_any_chunking((tmp_path / "mm.log").read_bytes())
    assert df[STEP].to_list() == [50, 600, 50]
    assert df[LINE].to_list() == [2, 3, 4]
    assert "eta" not in df.columns and "loss_cls" in df.columns
    assert df["memory"].to_list() == [1234.0, 1234.0, 1300.0]
    assert df["grad_norm"].to_list() == [None, 0.5, None]


def test_hf_trainer_dicts_v4_and_v5(tmp_path):
    (tmp_path / "hf.log").write_text(
        " 10%|█         | 10/100 [00:01<00:09,  9.80it/s]\n"
        "{'loss': 2.3, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.1}\n"
        "{'loss': '2.304', 'grad_norm': 'nan', 'learning_rate': '5e-05', 'epoch': '0.2'}\n"
        "{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 4e-05, 'epoch': 0.3}\n"
        "{'train_runtime': 12.5, 'train_samples_per_second': 80.1, 'train_loss': 1.9, 'epoch': 1.0}\n"
    )
    df = parse_any_chunking((tmp_path / "hf.log").read_bytes())
    assert df[STEP].to_list() == [1, 2, 3, 4]  # no step in HF lines: the record's ordinal
    assert df["loss"].to_list()[:3] == [2.3, 2.304, 0.0]
    assert df["grad_norm"][0] == 1.2 and math.isnan(df["grad_norm"][1]) and math.isnan(df["grad_norm"][2])
    assert df["epoch"].to_list() == [0.1, 0.2, 0.3, 1.0]
    assert df["train_samples_per_second"][3] == 80.1


def test_ordinal_and_lines_continue_across_feeds_and_reset():
    p = make_parser("text")
    assert p.feed(b"hello\nloss=1\n").frame.row(0) == (1, 2, 1.0)
    assert p.feed(b"loss=2\n").frame.row(0) == (2, 3, 2.0)
    p.reset()
    assert p.feed(b"loss=3\n").frame.row(0) == (1, 1, 3.0)


def test_invalid_utf8_and_nul_bytes():
    r = make_parser("text").feed(b"\xff\xfeloss=1.5\x00 acc=0.5\n\x00\x00\n")
    assert r.bad_lines == 0
    assert r.frame["loss"].to_list() == [1.5] and r.frame["acc"].to_list() == [0.5]
