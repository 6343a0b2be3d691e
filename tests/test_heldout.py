"""The held-out harness (samples/heldout.py): its plan covers every family, and its step mapping
is right in every log format (a real NaN at a known step is alerted at exactly that step)."""
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
sys.path.insert(0, str(SAMPLES))

import heldout  # noqa: E402
from train.heldout_runs import train  # noqa: E402

from alertd.cli import builtin_rules  # noqa: E402
from alertd.rules.rulefile import load_rules  # noqa: E402


def test_plan_covers_every_family_with_at_least_as_many_healthy_runs():
    runs = heldout.plan(52, 3)
    broken = [r for r in runs if not r["healthy"]]
    assert {r["family"] for r in broken} == set(heldout.BROKEN)
    assert {r["family"] for r in runs if r["healthy"]} == set(heldout.HEALTHY)
    assert len(runs) - len(broken) >= len(broken)
    assert {r["onset"] == 0 for r in broken} == {True, False}  # onsets at step 0 and mid-run
    for r in runs:
        assert r["fmt"] in (heldout.BROKEN[r["family"]][0] if not r["healthy"] else heldout.HEALTHY[r["family"]])


@pytest.mark.parametrize("fmt", ["jsonl", "print", "tqdm", "mmengine", "hf", "csv", "probe"])
def test_a_nan_at_a_known_step_is_alerted_at_that_training_step(tmp_path, fmt):
    cfg = dict(name="nan", family="midrun_nan", healthy=False, seed=5, fmt=fmt, C=10, steps=90,
               every=1, bs=16, hidden=16, opt="Adam", lr=1e-3, onset=60, meta=False,
               label_stats=False, clip=1.0 if fmt == "hf" else None, file="nan.log")
    assert train(cfg, tmp_path / "nan.log") == 60
    result = heldout.judge(cfg, heldout.replay_run(load_rules([builtin_rules()]), cfg, tmp_path, True))
    assert result["first"][1] in ("NonFiniteMetric", "NonFiniteGradients")
    assert result["delay"] == 0 and not result["early"]
