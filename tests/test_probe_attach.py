"""`alertd probe -- python script.py`: an unmodified script, run in a real subprocess."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from alertd.probe.commands import probe_command, register  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = """
import os, sys, torch
from torch import nn
dev = os.environ.get("ALERTD_TEST_DEVICE", "cpu")  # the tests' device (tests/conftest.py)
torch.manual_seed(0)
steps, code = int(sys.argv[1]), int(sys.argv[2])
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for i in range(steps):
    x, y = torch.randn(16, 8, device=dev), torch.randint(0, 3, (16,), device=dev)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad()
sys.exit(code)
"""


def run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "alertd.probe.attach", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_attach_writes_stream(tmp_path):
    out = tmp_path / "probe.jsonl"
    proc = run(tmp_path, "--out", str(out), "--every", "2", "--", "python", "train.py", "50", "0")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    meta = lines[0]["meta"]
    assert meta["every"] == 2 and meta["params/0"] == 2 and meta["params/2"] == 2
    assert meta["ratio_every"] == 50  # default: the first multiple of every from 50
    pre = [r for r in lines if r.get("event") == "preflight"]
    recs = [r for r in lines[1:] if "event" not in r]
    assert len(pre) == 1 and pre[0]["step"] == 2  # attached during step 1: it is not measured
    assert pre[0]["preflight/unoptimized_params"] == 0 and pre[0]["preflight/no_grad_groups"] == 0
    assert [r["step"] for r in recs] == list(range(2, 51, 2))
    for r in recs:
        assert r["has_grad/0"] == r["trainable/0"] == 2 and r["grad_norm/2"] > 0
        assert ("update_ratio/2" in r) == (r["step"] == 50)  # only measured at multiples of 50
        assert r["lr"] == pytest.approx(1e-2) and r["nonfinite/grad"] == 0
        assert "loss" not in r
    assert recs[-1]["update_ratio/2"] > 0 and recs[-1]["weight_norm/0"] > 0


def test_attach_passes_exit_code(tmp_path):
    proc = run(tmp_path, "--out", "p.jsonl", "--", "python", "train.py", "3", "3")
    assert proc.returncode == 3
    assert (tmp_path / "p.jsonl").read_text().startswith('{"meta"')


def test_cli_registration(tmp_path):
    parser = argparse.ArgumentParser(prog="alertd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["probe", "--out", "x.jsonl", "--every", "5", "--",
                              "python", "train.py", "--lr", "1"])
    assert args.func is probe_command and args.every == 5 and args.out == "x.jsonl"
    assert args.ratio_every is None  # the Probe's default (50 steps)
    assert [a for a in args.argv if a != "--"] == ["python", "train.py", "--lr", "1"]
    args = parser.parse_args(["probe", "--ratio-every", "3", "--", "python", "train.py"])
    assert args.ratio_every == 3
    args = parser.parse_args(["ckpt", "diff", "a.pt", "b.pt", "--json", "--top", "3"])
    assert args.json and args.top == 3 and callable(args.func)


WATCHER = """
import os, pathlib, sys, torch
from torch import nn
dev = os.environ.get("ALERTD_TEST_DEVICE", "cpu")
out = pathlib.Path(sys.argv[1])
model = nn.Linear(8, 3).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=1e-2)
seen = []
for i in range(6):
    x, y = torch.randn(4, 8, device=dev), torch.randint(0, 3, (4,), device=dev)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad()
    seen.append(len(out.read_text().splitlines()))  # lines in the stream after each step
print(seen)
"""


@pytest.mark.parametrize("hold", [None, "0"])
def test_attach_hold_s(tmp_path, hold):
    # Steps far under a second apart: by default the records after the first wait (written on
    # exit); --hold-s 0 writes each at its step. Attached during step 1: records from step 2.
    (tmp_path / "watch.py").write_text(WATCHER)
    out = tmp_path / "p.jsonl"
    args = ["--out", str(out), "--every", "1"] + (["--hold-s", hold] if hold else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "alertd.probe.attach", *args, "--", "python",
                           "watch.py", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # meta; then from step 2: the preflight and record 2, then one record a step
    assert seen == ([1, 3, 3, 3, 3, 3] if hold is None else [1, 3, 4, 5, 6, 7])
    assert len(out.read_text().splitlines()) == 7  # all there at the end either way
