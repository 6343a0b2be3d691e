"""Hugging Face Trainer stdout: the run header is config, not metrics; dict lines get global steps."""
from __future__ import annotations

import math

from test_parse_text import feed_chunks, parse_any_chunking

from alertd.parse import make_parser
from alertd.record import LINE, STEP

HEADER = """\
***** Running training *****
  Num examples = 51,200
  Num Epochs = 2
  Instantaneous batch size per device = 8
  Total train batch size (w. parallel, distributed & accumulation) = 64
  Gradient Accumulation steps = 8
  Total optimization steps = 1,600
  Number of trainable parameters = 1,234
"""


def hf_log(logging_steps: int = 10, n: int = 6, steps_per_epoch: int = 800) -> str:
    """Header, a tqdm bar and dict lines every `logging_steps`: 4.x numbers, then 5.x strings."""
    out = [HEADER, "  0%|          | 0/1600 [00:00<?, ?it/s]\n"]
    for i in range(1, n + 1):
        step = i * logging_steps
        epoch = step / steps_per_epoch
        out.append(f"\r{100 * step // 1600:3d}%|#         | {step}/1600 [00:0{i}<00:40, 9.80it/s]")
        if i <= n // 2:
            out.append(f"{{'loss': {2.5 - i / 10}, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': {epoch}}}\n")
        else:
            out.append(f"{{'loss': '{2.5 - i / 10:.4g}', 'grad_norm': 'nan', 'learning_rate': '5e-05', "
                       f"'epoch': '{epoch:.4g}'}}\n")
    return "".join(out)


def test_header_is_not_metrics_and_steps_come_from_epoch(tmp_path):
    (tmp_path / "hf.log").write_text(hf_log())
    df = parse_any_chunking((tmp_path / "hf.log").read_bytes())
    assert df.columns == [STEP, LINE, "epoch", "grad_norm", "learning_rate", "loss"]  # no examples/Epochs/steps
    assert df[STEP].to_list() == [10, 20, 30, 40, 50, 60]  # round(epoch * 1600 / 2)
    assert df["loss"].to_list() == [2.4, 2.3, 2.2, 2.1, 2.0, 1.9]
    assert math.isnan(df["grad_norm"][5]) and df["grad_norm"][0] == 1.2


def test_header_values_go_to_meta_once_and_apply_to_later_feeds():
    p = make_parser("text")
    head = p.feed(HEADER.encode())
    assert head.frame.height == 0 and head.bad_lines == 0
    assert head.meta == {"grad_accum": 8, "total_steps": 1600}  # nothing else from the header
    r = p.feed(b"{'loss': 1.0, 'epoch': 1.5}\n{'eval_loss': 0.9, 'epoch': 2.0}\n")
    assert r.meta == {} and r.frame[STEP].to_list() == [1200, 1600]
    assert r.frame[LINE].to_list() == [9, 10]
    p.reset()  # a new file: the old header no longer says how long the run is
    assert p.feed(b"{'loss': 1.0, 'epoch': 1.5}\n").frame[STEP].to_list() == [1]


def test_without_header_dict_lines_keep_the_ordinal():
    df = make_parser("text").feed(b"{'loss': 1.0, 'epoch': 0.5}\n{'loss': 0.9, 'epoch': 1.0}\n").frame
    assert df[STEP].to_list() == [1, 2]


def test_header_fields_on_one_line_and_behind_a_logger_prefix(tmp_path):
    (tmp_path / "hf.log").write_text(
        "[INFO|trainer.py:2128] 2024-01-01 12:00:00,000 >> ***** Running training *****\n"
        "[INFO|trainer.py:2129] 2024-01-01 12:00:00,000 >>   Num examples = 64,000\n"
        "  Num Epochs = 1 | Total optimization steps = 1,000\n"
        "{'loss': '2.292', 'epoch': '0.005'}\n"
        "***** Running Evaluation *****\n  Num examples = 1000\n  Batch size = 8\n"
        "{'eval_loss': 2.2, 'epoch': 0.01}\n"
    )
    df = parse_any_chunking((tmp_path / "hf.log").read_bytes())
    assert df.columns == [STEP, LINE, "epoch", "eval_loss", "loss"]  # no trainer.py, examples, size
    assert df[STEP].to_list() == [5, 10] and df[LINE].to_list() == [4, 8]


def test_a_later_header_restarts_the_step_scale():
    p = make_parser("text")
    one = "  Num Epochs = 1\n  Total optimization steps = 100\n{'loss': 1.0, 'epoch': 1.0}\n"
    two = "  Num Epochs = 4\n  Total optimization steps = 100\n{'loss': 1.0, 'epoch': 1.0}\n"
    assert p.feed((one + two).encode()).frame[STEP].to_list() == [100, 25]


def test_one_word_prints_and_step_keys_stay():
    whole, bad, _ = feed_chunks(
        b"loss = 0.5\nsteps = 3\ntrain/loss_text=0.649 acc=1\nglobal step = 100 | loss = 0.25\n"
        b"Namespace(batch_size=64, dim=32)\n", [])
    rows = whole.to_dicts()
    assert bad == 0 and [r[LINE] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["loss"] == 0.5 and rows[1]["steps"] == 3.0  # a one-word name is a metric
    assert rows[2]["train/loss_text"] == 0.649 and rows[2]["acc"] == 1.0
    assert rows[3][STEP] == 100 and rows[3]["loss"] == 0.25
    assert rows[4]["batch_size"] == 64.0
