"""TensorBoard event files: written by torch's SummaryWriter, read by alertd's own TFRecord/protobuf decoder.

tests/data/tb/events.out.tfevents.sample.0 was written by torch.utils.tensorboard.SummaryWriter
(tensorboard 2.21): train/loss = 2/step for steps 1..14 then NaN to 20, lr = 1e-3, plus a text and
a histogram summary (which are not scalars). The live test needs the `tensorboard` package (in the
test extra).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import math
import polars as pl
import pytest

from alertd.parse import make_parser
from alertd.parse.tensorboard import TensorBoardParser, looks_like_tfrecord
from alertd.record import LINE, STEP
from alertd.sources import Discovery, Tailer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "tb" / "events.out.tfevents.sample.0"
NAN_RULE = """
groups:
  - name: t
    rules:
      - alert: LossNotFinite
        expr: not_finite(`train/loss`)
"""


def frames(parser, data: bytes, size: int) -> pl.DataFrame:
    parts = [parser.feed(data[i:i + size]).frame for i in range(0, len(data), size)]
    return pl.concat([p for p in parts if p.height], how="diagonal_relaxed")


def check_sample(df: pl.DataFrame) -> None:
    loss = df.filter(pl.col("train/loss").is_not_null())
    assert loss[STEP].to_list() == list(range(1, 21))
    assert loss["train/loss"][:14].to_list() == pytest.approx([2.0 / s for s in range(1, 15)], rel=1e-6)
    assert all(math.isnan(v) for v in loss["train/loss"][14:].to_list())
    assert df.filter(pl.col("lr").is_not_null())["lr"].to_list() == pytest.approx([1e-3] * 20, rel=1e-6)
    assert set(df.columns) == {STEP, LINE, "train/loss", "lr"}  # no text, no histogram


@pytest.mark.parametrize("size", [1, 5, 13, 100, 1 << 20])
def test_sample_in_any_chunking(size):
    data = SAMPLE.read_bytes()
    df = frames(TensorBoardParser(), data, size)
    check_sample(df)
    if size == 1 << 20:  # one chunk: the two scalars of a step are one record
        assert df.height == 20 and df.null_count().sum_horizontal().item() == 0


def test_auto_detects_by_name_and_by_content(tmp_path):
    data = SAMPLE.read_bytes()
    assert looks_like_tfrecord(data) and not looks_like_tfrecord(b'{"loss": 1.0}\n\n\n')
    by_name = make_parser("auto", str(SAMPLE))
    assert by_name.format == "tensorboard"
    check_sample(by_name.feed(data).frame)
    by_content = make_parser("auto")
    check_sample(by_content.feed(data).frame)
    assert by_content.format == "tensorboard"


def test_resyncs_after_garbage_and_counts_it():
    data = SAMPLE.read_bytes()
    p = TensorBoardParser()
    out = p.feed(b"\x07garbage that is no record\n" + data)
    check_sample(out.frame)
    assert out.bad_lines == 1 and "skipped 27 bytes" in out.first_bad_reason


def test_replay_fires_on_the_nan(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text(NAN_RULE)
    r = subprocess.run([sys.executable, "-m", "alertd", "replay", "--rules", str(rules), "--output", "json",
                        str(SAMPLE)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"rule": "LossNotFinite", "state": "firing"' in r.stdout and '"step": 15' in r.stdout


def test_live_summary_writer_tailed_as_it_grows(tmp_path):
    """A real SummaryWriter flushing step by step; the tailer hands out whatever is complete."""
    import torch.utils.tensorboard as tb  # needs the tensorboard package (test extra)
    writer = tb.SummaryWriter(str(tmp_path / "runs" / "exp1"))
    tailer = Tailer(Discovery([str(tmp_path / "runs" / "*" / "events.out.tfevents.*")]))
    parsers, got = {}, []
    try:
        for step in range(1, 31):
            writer.add_scalar("train/loss", 1.0 / step, step)
            writer.add_scalar("grad_norm", float(step), step)
            writer.flush()
            for path, chunk in tailer.poll():
                parser = parsers.setdefault(path, make_parser("auto", path))
                got.append(parser.feed(chunk.data).frame)
        writer.close()
        for path, chunk in tailer.poll():
            got.append(parsers[path].feed(chunk.data).frame)
    finally:
        tailer.close()
    df = pl.concat([g for g in got if g.height], how="diagonal_relaxed")
    # The tailer cuts at b"\n"/b"\r" bytes, which are arbitrary inside binary records: the parser
    # reassembles them. Records after the file's last such byte wait for the next write.
    loss = df.filter(pl.col("train/loss").is_not_null())
    assert loss[STEP].to_list() == list(range(1, len(loss) + 1)) and len(loss) >= 20
    assert loss["train/loss"].to_list() == pytest.approx([1.0 / s for s in range(1, len(loss) + 1)], rel=1e-6)
