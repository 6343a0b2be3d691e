"""End to end: real small CPU trainings write a probe stream; the built-in pack replays it."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from alertd.cli import builtin_rules  # noqa: E402
from alertd.evaluate import Engine  # noqa: E402
from alertd.probe import Probe  # noqa: E402
from alertd.record import FIRING  # noqa: E402
from alertd.replay import replay_file  # noqa: E402
from alertd.rules.rulefile import load_rules  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
C, D = 5, 16
pytestmark = pytest.mark.usefixtures("torch_device")  # ALERTD_TEST_DEVICE=cuda: on a GPU
PAGING = ("warning", "critical")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(D, 32), nn.ReLU())
        self.head = nn.Linear(32, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def batches(seed: int, n: int, size: int = 32):
    """A learnable task: the label is the argmax of a fixed linear map of x."""
    g = torch.Generator().manual_seed(seed)  # the same batches on any device
    w = torch.randn(D, C, generator=g, device="cpu")
    dev = torch.get_default_device()
    for _ in range(n):
        x = torch.randn(size, D, generator=g, device="cpu")
        yield x.to(dev), (x @ w).argmax(1).to(dev)


def train(path, steps: int, ga: int = 1, head_in_opt: bool = True, frozen: bool = False,
          zero_each: bool = False, label_shift: int = 0, ratio_every: int | None = None) -> pathlib.Path:
    """`steps` optimizer steps of `ga` micro-batches with the probe at every=1."""
    torch.manual_seed(0)
    model = Net()
    if frozen:
        model.requires_grad_(False)
    params = list(model.parameters()) if head_in_opt else list(model.body.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    probe = Probe(model, opt, path=str(path), every=1, grad_accum=ga, num_classes=C,
                  ratio_every=ratio_every)
    for i, (x, y) in enumerate(batches(1, steps * ga)):
        with torch.set_grad_enabled(not frozen):
            loss = nn.functional.cross_entropy(model(x), y)
        if not frozen:
            (loss / ga).backward()
        probe.step(loss=loss, labels=y + label_shift)  # shifted labels: the data's ids, not the loss's
        if zero_each and (i + 1) % ga:
            opt.zero_grad()
        if (i + 1) % ga == 0:
            opt.step()
            opt.zero_grad()
    probe.close()
    return pathlib.Path(path)


def replay(path: pathlib.Path) -> list:
    """Firing events of the built-in pack on the stream, in order."""
    events: list = []
    engine = Engine(load_rules([builtin_rules()]))
    replay_file(engine, str(path), "auto", events.append)
    return [e for e in events if e.state == FIRING]


def first(events: list, rule: str):
    hits = [e for e in events if e.rule == rule]
    assert hits, f"{rule} did not fire; fired: {sorted({e.rule for e in events})}"
    return hits[0]


# UnoptimizedParams (critical) pages at step 1. UpdateRatioNearZero waits out a 10-step warm-up,
# then needs ratio records covering 10 steps: steps 10-19 when the ratio is measured every step
# (ratio_every=1), records 50 and 100 with the default cadence (every 50 steps): the hold is in
# steps, not records, so it fires on the second measured record.
@pytest.mark.parametrize("ratio_every, steps, stuck_at", [(None, 100, 100), (1, 25, 19)])
def test_head_missing_from_optimizer(tmp_path, ratio_every, steps, stuck_at):
    events = replay(train(tmp_path / "p.jsonl", steps=steps, head_in_opt=False, ratio_every=ratio_every))
    pre = first(events, "UnoptimizedParams")
    assert pre.step == 1 and pre.value == 2 and pre.severity == "critical"
    assert events[0].step == 1 and events[0].severity == "critical"  # a page within the first 10 steps
    stuck = first(events, "UpdateRatioNearZero")
    assert stuck.step == stuck_at and stuck.labels["ratio"] == "update_ratio/head"
    assert not [e for e in events if e.rule == "UpdateRatioNearZero" and "body" in e.labels["ratio"]]


def test_frozen_model(tmp_path):
    events = replay(train(tmp_path / "p.jsonl", steps=3, frozen=True))
    assert first(events, "NothingTrainable").step == 1
    assert "UnoptimizedParams" not in {e.rule for e in events}


def test_zero_grad_every_micro_step(tmp_path):
    events = replay(train(tmp_path / "p.jsonl", steps=12, ga=8, zero_each=True))
    cov = first(events, "GradAccumCoverage")
    assert cov.value == 1 and cov.step == 10  # coverage_steps: 10 records of 1 instead of 8
    assert {e.labels["has_grad"] for e in events if e.rule == "GradAccumCoverage"} == {
        "has_grad/body", "has_grad/head"}


def test_labels_out_of_range(tmp_path):
    events = replay(train(tmp_path / "p.jsonl", steps=3, label_shift=2))
    assert first(events, "LabelsOutOfRange").step == 1
    assert first(events, "LabelAboveNumClasses").value >= C


@pytest.mark.parametrize("ga", [1, 4])
def test_healthy_run_pages_nobody(tmp_path, ga):
    path = train(tmp_path / "p.jsonl", steps=60, ga=ga)
    recs = [json.loads(x) for x in path.read_text().splitlines()[1:]]
    losses = [r["loss"] for r in recs if "loss" in r]
    assert len(losses) == 60 and losses[-1] < 0.7 * losses[0]  # it does learn
    paging = [(e.rule, e.labels, e.step) for e in replay(path) if e.severity in PAGING]
    assert paging == []


SCRIPT = """
import os, torch
from torch import nn
dev = os.environ.get("ALERTD_TEST_DEVICE", "cpu")
torch.manual_seed(0)
model = nn.Module()
model.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU()).to(dev)
model.head = nn.Linear(16, 3).to(dev)
opt = torch.optim.SGD(model.body.parameters(), lr=0.1)   # the head was forgotten
for i in range(25):
    x, y = torch.randn(16, 8, device=dev), torch.randint(0, 3, (16,), device=dev)
    nn.functional.cross_entropy(model.head(model.body(x)), y).backward()
    opt.step()
    opt.zero_grad()
"""


def test_cli_probe_then_replay(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    bindir = pathlib.Path(sys.executable).parent
    alertd = [str(bindir / "alertd")] if (bindir / "alertd").exists() else [sys.executable, "-m", "alertd"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([*alertd, "probe", "--out", "probe.jsonl", "--every", "1", "--ratio-every", "5",
                          "--", "python", "train.py"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = subprocess.run([*alertd, "replay", "--output", "json", "probe.jsonl"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    events = [json.loads(x) for x in out.stdout.splitlines()]
    fired = {(e["rule"], e["step"]) for e in events if e["state"] == FIRING}
    assert ("UnoptimizedParams", 2) in fired  # attached at step 1: the preflight is step 2
    stuck = [e for e in events if e["rule"] == "UpdateRatioNearZero"]
    assert stuck and stuck[0]["labels"]["ratio"] == "update_ratio/head" and stuck[0]["step"] == 20
    recs = [json.loads(x) for x in (tmp_path / "probe.jsonl").read_text().splitlines()]
    assert recs[0]["meta"]["ratio_every"] == 5
    assert [r["step"] for r in recs[1:] if "update_ratio/head" in r] == [5, 10, 15, 20, 25]
