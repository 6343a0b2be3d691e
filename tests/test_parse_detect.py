"""Format detection: per file, from the first non-empty lines."""
from __future__ import annotations

import pytest

from alertd.parse import FORMATS, make_parser
from alertd.parse.detect import detect
from alertd.record import LINE, STEP


@pytest.mark.parametrize("first, fmt", [
    (b'{"step": 1, "loss": 2.0}\n', "jsonl"),
    (b'{"meta": {"num_classes": 10}}\n', "jsonl"),
    (b'{ "loss": NaN }\n', "jsonl"),
    (b"\n\n   \n{\"loss\": 1}\n", "jsonl"),
    (b"epoch,step,train_loss,val_loss,lr-Adam\n", "csv"),
    (b"{'loss': 2.3, 'epoch': 0.1}\n", "text"),
    (b"step 120 | loss 2.3412\n", "text"),
    (b"\rEpoch 1:   0%|          | 0/100 [00:00<?, ?it/s]\r", "text"),
    (b"2024/01/01 12:00:00 - mmengine - INFO - hello, world\n", "text"),
    (b"\xff\xfe\x00garbage\n", "text"),
])
def test_detect(first, fmt):
    assert detect(first) == fmt


def test_detect_waits_for_a_non_empty_line():
    assert detect(b"\n  \r\n") is None


def test_auto_parser_detects_per_file_and_keeps_line_numbers(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "metrics.csv"
    a.write_bytes(b'{"step": 5, "loss": 1.5}\n')
    b.write_bytes(b"epoch,step,loss\n0,9,0.5\n")
    pa, pb = make_parser(), make_parser("auto")
    pa.feed(b"\n")  # a blank first line: detection waits, numbering does not
    ra = pa.feed(a.read_bytes())
    rb = pb.feed(b.read_bytes())
    assert (pa.format, pb.format) == ("jsonl", "csv")
    assert ra.frame.select(STEP, LINE, "loss").row(0) == (5, 2, 1.5)
    assert rb.frame.select(STEP, LINE, "loss").row(0) == (9, 2, 0.5)
    pb.reset()
    assert pb.feed(b"loss=0.25\n").frame.select(STEP, LINE, "loss").row(0) == (1, 1, 0.25)
    assert pb.format == "text"


def test_make_parser_names():
    assert FORMATS == ("auto", "jsonl", "text", "csv")
    for fmt in FORMATS:
        assert make_parser(fmt).feed(b"").frame.height == 0
    with pytest.raises(ValueError):
        make_parser("xml")
