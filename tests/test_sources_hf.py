"""Hugging Face trainer_state.json: rewritten whole at each checkpoint; only new log_history entries count.

The file is written here as transformers' TrainerState.save_to_json writes it
(`json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\\n"` into open(path, "w")),
by a separate writer process, and read through the real tailer (a rewrite is a truncation).
"""
from __future__ import annotations

import json
import subprocess
import sys

import polars as pl

from alertd.parse import make_parser
from alertd.parse.trainer_state import TrainerStateParser
from alertd.record import LINE, STEP
from alertd.sources import Discovery, Tailer

WRITER = r"""
import json, sys
path = sys.argv[1]
for line in sys.stdin:
    last = int(line)
    history = [{"epoch": s / 100, "grad_norm": 1.0, "learning_rate": 5e-05, "loss": 2.0 / s, "step": s}
               for s in range(10, last + 1, 10)]
    history += [{"epoch": s / 100, "eval_loss": 1.5, "step": s} for s in range(50, last + 1, 50)]
    history.sort(key=lambda e: (e["step"], "eval_loss" in e))
    state = {"best_metric": None, "epoch": last / 100, "global_step": last, "log_history": history,
             "logging_steps": 10, "max_steps": 200, "train_batch_size": 8}
    with open(path, "w") as f:
        f.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
    print("ok", flush=True)
"""


def test_each_checkpoint_emits_only_new_entries(tmp_path):
    path = tmp_path / "out" / "trainer_state.json"
    path.parent.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tailer = Tailer(Discovery([str(tmp_path / "out" / "*.json")]))
    parser, frames, metas = None, [], []
    try:
        for last in (50, 100, 100, 150):  # 100 twice: a rewrite with nothing new emits nothing
            writer.stdin.write(f"{last}\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == "ok\n"
            batch = []
            for p, chunk in tailer.poll():
                parser = parser or make_parser("auto", p)
                if chunk.reset:
                    parser.reset()
                out = parser.feed(chunk.data)
                batch.append(out.frame)
                metas.append(out.meta)
            frames.append(pl.concat([b for b in batch if b.height], how="diagonal_relaxed")
                          if any(b.height for b in batch) else None)
    finally:
        tailer.close()
        writer.stdin.close()
        writer.wait(timeout=30)
    assert parser.format == "trainer_state"
    first, second, third, fourth = frames
    assert first.filter(pl.col("loss").is_not_null())[STEP].to_list() == [10, 20, 30, 40, 50]
    assert first.filter(pl.col("eval_loss").is_not_null())[STEP].to_list() == [50]
    assert second.filter(pl.col("loss").is_not_null())[STEP].to_list() == [60, 70, 80, 90, 100]
    assert second.filter(pl.col("eval_loss").is_not_null())[STEP].to_list() == [100]
    assert third is None
    assert fourth[STEP].unique().sort().to_list() == [110, 120, 130, 140, 150]
    assert second["loss"].drop_nulls().to_list() == [2.0 / s for s in (60, 70, 80, 90, 100)]
    assert {"max_steps": 200, "train_batch_size": 8}.items() <= metas[-1].items()


def test_document_in_pieces_waits_for_the_whole():
    doc = json.dumps({"log_history": [{"loss": 1.5, "step": 3}, {"loss": 1.25, "step": 6}]}, indent=2) + "\n"
    p = TrainerStateParser()
    lines = doc.encode().splitlines(keepends=True)
    heights = [p.feed(line).frame.height for line in lines]
    assert heights[:-1] == [0] * (len(lines) - 1) and heights[-1] == 2


def test_not_a_trainer_state_is_one_bad_line():
    out = TrainerStateParser().feed(b'{\n  "loss": [1, 2,, 3]\n}\n')
    assert out.bad_lines == 1 and "invalid JSON" in out.first_bad_reason
    out = TrainerStateParser().feed(b'{\n  "other": 1\n}\n')
    assert out.bad_lines == 1 and "log_history" in out.first_bad_reason
    assert out.frame.columns == [STEP, LINE]
