"""Two real gloo ranks on 127.0.0.1: one stream per rank, accumulation seen through DDP."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[1]

WORKER = """
import sys, torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from alertd.probe import Probe
rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
probe = Probe(model, opt, path=out, every=1, ratio_every=1, grad_accum=2, num_classes=3)
for i in range(6):
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    if i % 2 == 0:
        with model.no_sync():  # accumulate locally, all-reduce on the last micro-batch
            loss = nn.functional.cross_entropy(model(x), y); loss.backward()
    else:
        loss = nn.functional.cross_entropy(model(x), y); loss.backward()
    probe.step(loss=loss, labels=y)
    if i % 2 == 1:
        opt.step(); opt.zero_grad()
probe.close()
dist.barrier()  # neither rank tears gloo down while the other may still be in a collective
dist.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_ranks(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    port, out = str(free_port()), str(tmp_path / "p.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "worker.py", str(r), port, out], cwd=tmp_path,
                              env=env, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert not (tmp_path / "p.jsonl").exists()
    for r in (0, 1):
        lines = [json.loads(x) for x in (tmp_path / f"p.rank{r}.jsonl").read_text().splitlines()]
        meta = lines[0]["meta"]
        assert meta["rank"] == r and meta["world_size"] == 2 and meta["params/0"] == 2  # unwrapped
        recs = [x for x in lines[1:] if "event" not in x]
        assert [x["step"] for x in recs] == [1, 2, 3]
        for x in recs:
            assert x["has_grad/0"] / x["trainable/0"] == 2 and x["update_ratio/2"] > 0
