"""`alertd ckpt diff` on checkpoints saved by a real (tiny) training run."""
from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from alertd.probe.ckpt import diff_files, format_table  # noqa: E402
from alertd.probe.commands import register  # noqa: E402


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


@pytest.fixture
def ckpts(tmp_path):
    m = model()
    m[0].requires_grad_(False)  # frozen first layer: must come out identical
    a = tmp_path / "a.pt"
    torch.save(m.state_dict(), a)  # raw state_dict
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    for _ in range(20):
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        opt.zero_grad()
    sd = m.state_dict()
    sd["extra.weight"] = torch.ones(2)   # only in B
    del sd["3.bias"]                     # only in A
    sd["1.running_var"] = torch.ones(4)  # shape change
    b = tmp_path / "b.pt"
    torch.save({"model": sd, "step": 20}, b)  # wrapped, as training loops save
    return a, b


def test_diff(ckpts):
    d = diff_files(str(ckpts[0]), str(ckpts[1]))
    assert d["only_a"] == ["3.bias"] and d["only_b"] == ["extra.weight"]
    assert d["shape_changed"] == [{"key": "1.running_var", "shape_a": [16], "shape_b": [4]}]
    by_key = {r["key"]: r for r in d["changed"]}
    assert by_key["0.weight"]["l2"] == 0 and by_key["0.weight"]["cosine"] == pytest.approx(1.0)
    assert by_key["3.weight"]["l2"] > 0 and by_key["3.weight"]["cosine"] < 1
    l2s = [r["l2"] for r in d["changed"]]
    assert l2s == sorted(l2s, reverse=True) and l2s[0] > 0
    assert d["identical"] >= 2  # 0.weight, 0.bias
    text = format_table(d, top=3)
    assert d["changed"][0]["key"] in text and "only in A: 3.bias" in text and "more" in text


def test_cli_json(ckpts, capsys):
    parser = argparse.ArgumentParser(prog="alertd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ckpt", "diff", str(ckpts[0]), str(ckpts[1]), "--json", "--top", "2"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["changed"]) == 2 and out["only_b"] == ["extra.weight"]


def test_cli_missing_file(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="alertd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ckpt", "diff", str(tmp_path / "no.pt"), str(tmp_path / "no.pt")])
    assert args.func(args) == 2 and "no.pt" in capsys.readouterr().err
