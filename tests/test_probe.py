"""Probe on real CPU training of a tiny classifier; the JSONL it writes is read back with json."""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import time
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from alertd.probe import Probe  # noqa: E402
from alertd.probe.writer import rank_path  # noqa: E402

C = 5
pytestmark = pytest.mark.usefixtures("torch_device")  # ALERTD_TEST_DEVICE=cuda: on a GPU


def make_model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Module()
    m.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    m.head = nn.Linear(16, C)
    m.scale = nn.Parameter(torch.ones(()))  # directly on the root: group "root"
    m.forward = lambda x: m.head(m.body(x)) * m.scale
    return m


def train(path, model=None, opt=None, steps=4, ga=1, every=1, zero_each=False, set_to_none=True,
          zero_after_step=True, labels_hi=C, nan_at=None, groups=None, extra=True, ratio_every=1):
    """Train for `steps` optimizer steps of `ga` micro-batches; return the parsed JSONL.

    ratio_every=1 by default: these tests check update_ratio/weight_norm values on every record."""
    model = model or make_model()
    opt = opt or torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, opt, path=str(path), every=every, grad_accum=ga, num_classes=C, groups=groups,
                  ratio_every=ratio_every)
    trainable = any(p.requires_grad for p in model.parameters())
    for i in range(steps * ga):
        x, y = torch.randn(32, 8), torch.randint(0, labels_hi, (32,))
        with torch.set_grad_enabled(trainable):
            loss = nn.functional.cross_entropy(model(x), y % C)  # the loss never sees bad labels
        if nan_at is not None and i // ga == nan_at:
            loss = loss * float("nan")
        if trainable:
            (loss / ga).backward()
        kw = {"loss_aux": loss * 0.5, "acc": 0.25} if extra else {}
        probe.step(loss=loss, labels=y, **kw)
        if zero_each and (i + 1) % ga:
            opt.zero_grad(set_to_none=set_to_none)
        if (i + 1) % ga == 0:
            opt.step()
            if zero_after_step:
                opt.zero_grad(set_to_none=set_to_none)
    probe.close()
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def split(lines):
    meta = lines[0]["meta"]
    pre = [r for r in lines[1:] if r.get("event") == "preflight"]
    recs = [r for r in lines[1:] if "event" not in r]
    return meta, pre, recs


@pytest.mark.parametrize("ga", [1, 4])
def test_healthy_run(tmp_path, ga):
    meta, pre, recs = split(train(tmp_path / "p.jsonl", ga=ga, steps=5))
    assert meta["grad_accum"] == ga and meta["num_classes"] == C and meta["every"] == 1
    assert meta["params/body"] == 2 and meta["trainable/head"] == 2 and meta["params/root"] == 1
    assert meta["world_size"] == 1 and meta["rank"] == 0 and meta["numel/head"] == 16 * C + C
    assert len(pre) == 1 and pre[0]["step"] == 1
    p = pre[0]
    assert p["preflight/unoptimized_params"] == 0 and p["preflight/no_grad_groups"] == 0
    assert p["preflight/trainable_params"] == 5
    assert p["preflight/chance_loss"] == pytest.approx(math.log(C))
    assert 0.5 < p["preflight/loss_vs_chance"] < 2.0
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5]
    for r in recs:
        for g in ("body", "head", "root"):
            assert r[f"has_grad/{g}"] / r[f"trainable/{g}"] == ga
            assert r[f"update_ratio/{g}"] > 0 and r[f"weight_norm/{g}"] > 0 and r[f"grad_norm/{g}"] > 0
        assert r["grad_norm"] == pytest.approx(math.sqrt(sum(r[f"grad_norm/{g}"] ** 2
                                                             for g in ("body", "head", "root"))))
        assert r["lr"] == r["lr/0"] == pytest.approx(0.1)
        assert r["nonfinite/loss"] == 0 and r["nonfinite/grad"] == 0
        assert r["labels/out_of_range"] == 0 and 0 <= r["labels/min"] <= r["labels/max"] < C
        assert 1 <= r["labels/unique"] <= C
        assert r["loss_aux"] == pytest.approx(r["loss"] * 0.5) and r["acc"] == pytest.approx(0.25)


def test_grad_norm_matches_torch(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: grads stay readable after step
    probe = Probe(model, opt, path=str(tmp_path / "p.jsonl"), every=1, ratio_every=1)
    loss = nn.functional.cross_entropy(model(torch.randn(32, 8)), torch.randint(0, C, (32,)))
    loss.backward()
    probe.step(loss=loss)
    opt.step()
    expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    probe.close()
    rec = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()][-1]
    assert rec["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert rec["loss"] == pytest.approx(loss.item())
    assert rec["update_ratio/head"] == 0.0


def test_grad_norm_from_hooks_then_after_clipping(tmp_path):
    """grad_norm is the norm the optimizer steps with: plain steps, then clipped ones."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(tmp_path / "p.jsonl"), every=1)
    expected = []
    for i in range(6):
        loss = nn.functional.cross_entropy(model(torch.randn(32, 8)), torch.randint(0, C, (32,)))
        loss.backward()
        probe.step(loss=loss)
        if i >= 3:  # clipping from step 4 on: the norm must be the clipped one
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        expected.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item())
        opt.step()
        opt.zero_grad()
    probe.close()
    recs = split([json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()])[2]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    for r, e in zip(recs, expected):
        assert r["grad_norm"] == pytest.approx(e, rel=1e-5)
    assert [r["grad_norm"] for r in recs[3:]] == pytest.approx([0.05] * 3, rel=1e-4)


def test_buffered_records_reach_the_file_on_close(tmp_path):
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1)
    for _ in range(50):  # far under a second: later records are buffered, none lost
        model(torch.randn(4, 8)).sum().backward()
        opt.step()
        opt.zero_grad()
    assert json.loads(path.read_text().splitlines()[0])["meta"]["every"] == 1  # meta flushed at once
    probe.close()
    recs = split([json.loads(x) for x in path.read_text().splitlines()])[2]
    assert [r["step"] for r in recs] == list(range(1, 51))


def test_head_missing_from_optimizer(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(list(model.body.parameters()) + [model.scale], lr=0.1)
    _, pre, recs = split(train(tmp_path / "p.jsonl", model=model, opt=opt))
    assert pre[0]["preflight/unoptimized_params"] == 2
    assert pre[0]["preflight/unoptimized/head"] == 2 and "preflight/unoptimized/body" not in pre[0]
    assert pre[0]["preflight/optimized_params"] == 3
    for r in recs:
        assert r["update_ratio/head"] == 0.0 and r["update_ratio/body"] > 0
        # It gets gradients nobody applies, and the optimizer's zero_grad never clears them.
        assert r["has_grad/head"] == 2 * r["step"]


def test_frozen_model(tmp_path):
    model = make_model().requires_grad_(False)
    _, pre, recs = split(train(tmp_path / "p.jsonl", model=model))
    assert pre[0]["preflight/trainable_params"] == 0 and pre[0]["preflight/no_grad_groups"] == 0
    for r in recs:
        assert r["trainable/body"] == r["has_grad/body"] == 0 and r["update_ratio/body"] == 0.0
        assert r["grad_norm"] == 0.0


def test_group_without_grad_in_preflight(tmp_path):
    model = make_model()
    model.forward = lambda x: model.head(torch.relu(x @ torch.ones(8, 16)))  # body unused
    _, pre, _ = split(train(tmp_path / "p.jsonl", model=model))
    assert pre[0]["preflight/no_grad_groups"] == 2
    assert pre[0]["preflight/no_grad/body"] == 1 and pre[0]["preflight/no_grad/root"] == 1


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_every_micro_step(tmp_path, set_to_none):
    _, _, recs = split(train(tmp_path / "p.jsonl", ga=8, zero_each=True, set_to_none=set_to_none))
    for r in recs:
        assert r["has_grad/body"] / r["trainable/body"] == 1
        assert r["has_grad/head"] / r["trainable/head"] == 1


def test_never_zeroed_grads_keep_growing(tmp_path):
    _, _, recs = split(train(tmp_path / "p.jsonl", ga=2, steps=3, zero_after_step=False))
    assert [r["has_grad/head"] / r["trainable/head"] for r in recs] == [2, 4, 6]


def test_labels_out_of_range(tmp_path):
    _, _, recs = split(train(tmp_path / "p.jsonl", labels_hi=C + 3, steps=3))
    assert all(r["labels/out_of_range"] > 0 and r["labels/max"] >= C for r in recs)


def test_nan_loss_counts_nonfinite(tmp_path):
    _, _, recs = split(train(tmp_path / "p.jsonl", steps=4, every=2, nan_at=2))
    assert [r["step"] for r in recs] == [2, 4]
    assert recs[0]["nonfinite/loss"] == 0 and recs[0]["nonfinite/grad"] == 0
    # Step 3 (not written) and step 4 (weights already NaN): both counted at step 4.
    assert recs[1]["nonfinite/loss"] == 2
    assert math.isnan(recs[1]["grad_norm"]) and recs[1]["nonfinite/grad"] == 5  # weights went NaN


def test_every_10_writes_one_record_per_10_steps(tmp_path):
    _, pre, recs = split(train(tmp_path / "p.jsonl", steps=50, every=10, extra=False))
    assert [r["step"] for r in recs] == [10, 20, 30, 40, 50] and len(pre) == 1


RATIO_KEYS = ("update_ratio/body", "update_ratio/head", "update_ratio/root",
              "weight_norm/body", "weight_norm/head", "weight_norm/root")


@pytest.mark.parametrize("every, ratio_every, steps, expected", [
    (1, None, 110, [50, 100]),      # default: every 50 steps
    (10, None, 100, [50, 100]),     # default: every 5th written record
    (3, None, 110, [51, 102]),      # default: the first multiple of every from 50
    (2, 4, 12, [4, 8, 12]),
    (1, 1, 3, [1, 2, 3]),
])
def test_ratio_every_cadence(tmp_path, every, ratio_every, steps, expected):
    meta, _, recs = split(train(tmp_path / "p.jsonl", steps=steps, every=every, extra=False,
                                ratio_every=ratio_every))
    assert meta["ratio_every"] == expected[1] - expected[0] and meta["every"] == every
    assert [r["step"] for r in recs] == list(range(every, steps + 1, every))
    for r in recs:
        # The cheap fields stay on every written record; the ratio only on measured ones.
        assert r["grad_norm/head"] > 0 and r["has_grad/head"] == r["trainable/head"] == 2
        assert "lr" in r and "labels/max" in r and r["nonfinite/grad"] == 0
        measured = [k in r for k in RATIO_KEYS]
        assert measured == [r["step"] in expected] * len(RATIO_KEYS), r["step"]
        if r["step"] in expected:
            assert r["update_ratio/head"] > 0 and r["weight_norm/head"] > 0


def test_snapshot_only_before_ratio_steps(tmp_path, torch_device):
    if torch_device != "cpu":
        pytest.skip("the copy's buffers are kept on the CPU only")
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, opt, path=str(tmp_path / "p.jsonl"), every=1, ratio_every=5)
    seen = []
    for _ in range(10):
        nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, C, (4,))).backward()
        opt.step()
        opt.zero_grad()
        # On the CPU the copy's buffers are kept after a ratio step (then holding before - after):
        # their contents change exactly when a copy is taken.
        seen.append([b.clone() for b in next(iter(probe._bufs.values()))] if probe._bufs else None)
    probe.close()
    assert seen[:4] == [None] * 4  # no copy before steps 1-4
    same = [all(torch.equal(a, b) for a, b in zip(seen[4], s)) for s in seen[4:]]
    assert same == [True, True, True, True, True, False]  # copied before steps 5 and 10 only
    default = Probe(make_model(), opt, path=str(tmp_path / "q.jsonl"), every=1)
    default.close()
    assert default.ratio_every == 50


def test_ratio_every_rejects_zero(tmp_path):
    with pytest.raises(ValueError):
        Probe(make_model(), torch.optim.SGD(make_model().parameters(), lr=0.1),
              path=str(tmp_path / "p.jsonl"), ratio_every=0)


def test_user_groups(tmp_path):
    meta, _, recs = split(train(tmp_path / "a.jsonl", groups={"classifier": make_model().head}))
    assert "params/classifier" in meta  # a module not in this model: no parameter matches
    model = make_model()
    meta, _, recs = split(train(tmp_path / "b.jsonl", model=model, groups={"classifier": ["head."]}))
    assert meta["params/classifier"] == 2 and meta["params/other"] == 3
    assert recs[0]["has_grad/classifier"] == 2


def test_rank_path():
    assert rank_path("run/p.jsonl", 3, 4) == "run/p.rank3.jsonl"
    assert rank_path("p.jsonl", 0, 1) == "p.jsonl"


def test_import_without_torch():
    code = ("import sys, alertd, alertd.probe, alertd.probe.commands, alertd.probe.writer; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=pathlib.Path(__file__).resolve().parents[1])


def test_no_item_in_step_path():
    src = pathlib.Path(__file__).resolve().parents[1] / "alertd" / "probe"
    for name in ("probe.py", "reduce.py", "arrivals.py", "groups.py"):
        assert ".item()" not in (src / name).read_text(), name


@pytest.mark.parametrize("case, expected", [("healthy", [4, 4, 4]), ("zero_each", [1, 1, 1]),
                                            ("never_zeroed", [8, 8, 8])])
def test_coverage_with_hooks_armed_only_around_written_steps(tmp_path, case, expected):
    # every=10: hooks are armed for steps 9-10, 19-20, ...; counts restart when armed, so a
    # gradient that is never reset shows 2 steps' worth (8 of 4), not its whole history.
    _, _, recs = split(train(tmp_path / "p.jsonl", ga=4, steps=30, every=10, extra=False,
                             zero_each=case == "zero_each", zero_after_step=case != "never_zeroed"))
    assert [r["step"] for r in recs] == [10, 20, 30]
    assert [r["has_grad/head"] / r["trainable/head"] for r in recs] == expected


def test_hooks_disarmed_between_written_steps(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, opt, path=str(tmp_path / "p.jsonl"), every=10)
    armed = []
    for _ in range(20):
        nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, C, (4,))).backward()
        opt.step()
        opt.zero_grad()
        armed.append(probe.arrivals.armed)  # for the next step
    probe.close()
    # After step s: armed iff step s+1 or s+2 is measured (1: preflight, 10, 20).
    assert [s for s, a in enumerate(armed, 1) if a] == [8, 9, 18, 19]
    assert not probe.arrivals.armed


@pytest.mark.parametrize("n", [1, 40, 5000])  # host path up to HOST_LABELS, device path above
@pytest.mark.parametrize("num_classes", [None, C])
def test_label_stats_match_python(n, num_classes):
    from alertd.probe.fields import LabelStats
    from alertd.probe.reduce import read
    y = torch.randint(-2, C + 3, (n,))
    vectors, m = LabelStats().queue([y[: n // 2], y[n // 2:]] if n > 1 else [y], num_classes)
    got = LabelStats.decode(read([], vectors), m, num_classes)
    ys = y.tolist()
    hi = num_classes if num_classes is not None else float("inf")
    assert got == {"labels/min": min(ys), "labels/max": max(ys), "labels/unique": len(set(ys)),
                   "labels/out_of_range": sum(1 for v in ys if v < 0 or v >= hi)}


def test_large_tensors_match_float64(tmp_path):
    """Grad norms (torch.dot from DOT_MIN elements), update ratios (fused in CHUNK pieces, with a
    remainder) and weight norms (frozen and unoptimized tensors included) match float64 sums."""
    from alertd.probe.reduce import CHUNK, DOT_MIN
    torch.manual_seed(0)
    model = nn.Module()
    model.big = nn.Linear(300, 500)          # 150000 weights: dot, 3 pieces of CHUNK, the last partial
    model.mid = nn.Linear(64, 80)            # 5120: _foreach_norm, _foreach_sub_
    model.frozen = nn.Linear(80, 80).requires_grad_(False)
    model.head = nn.Linear(80, C)            # not in the optimizer: grads, no update
    model.forward = lambda x: model.head(model.frozen(torch.relu(model.mid(torch.relu(model.big(x))[:, :64]))))
    assert model.big.weight.numel() > 2 * CHUNK and model.big.weight.numel() % CHUNK
    assert DOT_MIN <= model.big.weight.numel() and model.mid.weight.numel() < min(DOT_MIN, CHUNK)
    opt = torch.optim.AdamW([*model.big.parameters(), *model.mid.parameters()], lr=1e-2)
    probe = Probe(model, opt, path=str(tmp_path / "p.jsonl"), every=1, ratio_every=1)
    names = ("big", "mid", "frozen", "head")
    expected = []
    for step in range(3):
        if step == 2:  # new storage for a chunked parameter: the kept piece views are remade
            model.big.weight.data = model.big.weight.data.clone()
        loss = nn.functional.cross_entropy(model(torch.randn(16, 300)), torch.randint(0, C, (16,)))
        loss.backward()
        probe.step(loss=loss)
        before = {n: [p.detach().double().clone() for p in getattr(model, n).parameters()] for n in names}
        grads = {n: sum(float(p.grad.double().pow(2).sum()) for p in getattr(model, n).parameters()
                        if p.grad is not None) for n in names}
        opt.step()
        opt.zero_grad()
        after = {n: [p.detach().double() for p in getattr(model, n).parameters()] for n in names}
        weight = {n: math.sqrt(sum(float(a.pow(2).sum()) for a in after[n])) for n in names}
        update = {n: math.sqrt(sum(float((a - b).pow(2).sum()) for a, b in zip(after[n], before[n])))
                  for n in names}
        expected.append((grads, weight, update))
    probe.close()
    recs = split([json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()])[2]
    assert len(recs) == 3
    for r, (grads, weight, update) in zip(recs, expected):
        for n in names:
            assert r[f"grad_norm/{n}"] == pytest.approx(math.sqrt(grads[n]), rel=1e-5, abs=1e-12)
            assert r[f"weight_norm/{n}"] == pytest.approx(weight[n], rel=1e-5)
            assert r[f"update_ratio/{n}"] == pytest.approx(update[n] / weight[n], rel=1e-4, abs=1e-12)
        assert r["update_ratio/big"] > 0 and r["update_ratio/head"] == r["update_ratio/frozen"] == 0
        assert r["grad_norm"] == pytest.approx(math.sqrt(sum(grads.values())), rel=1e-5)
        assert r["has_grad/head"] == 2 * r["step"] and r["trainable/frozen"] == 0  # never zeroed


def loop(path, order="after", ga=4, steps=6, every=1, set_to_none=True):
    """Train with probe.step after each backward, before it, or once per optimizer step."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, opt, path=str(path), every=every, grad_accum=ga, num_classes=C)
    modes = []
    for i in range(steps * ga):
        x, y = torch.randn(32, 8), torch.randint(0, C, (32,))
        loss = nn.functional.cross_entropy(model(x), y)
        if order == "before":
            probe.step(loss=loss, labels=y)
        (loss / ga).backward()
        if order == "after" or (order == "once" and (i + 1) % ga == 0):
            probe.step(loss=loss, labels=y)
        if (i + 1) % ga == 0:
            opt.step()
            opt.zero_grad(set_to_none=set_to_none)
            modes.append(probe.arrivals.mode)
    hooked = bool(probe.arrivals._handles)
    probe.close()
    recs = split([json.loads(x) for x in pathlib.Path(path).read_text().splitlines()])[2]
    return recs, modes, hooked


@pytest.mark.parametrize("every", [1, 10])
def test_arrivals_scanned_after_calibration(tmp_path, every):
    # probe.step after each backward: after one step counted both ways and found equal, the
    # per-parameter hooks are removed and Probe.step's scans count alone.
    recs, modes, hooked = loop(tmp_path / "p.jsonl", steps=30 if every == 10 else 6, every=every)
    assert modes[0] == "scan" and set(modes) == {"scan"} and not hooked
    assert recs and all(r[f"has_grad/{g}"] == 4 * r[f"trainable/{g}"] for r in recs for g in ("body", "head"))


@pytest.mark.parametrize("order, ga", [("before", 1), ("before", 4), ("once", 4)])
def test_arrivals_fall_back_to_hooks(tmp_path, order, ga):
    # probe.step before backward, or once per optimizer step: the scans disagree with the hooks
    # on the first step, the hooks stay, and the counts are right on every record.
    recs, modes, hooked = loop(tmp_path / "p.jsonl", order=order, ga=ga)
    assert set(modes) == {"hooks"} and hooked
    assert [r["has_grad/body"] for r in recs] == [2 * ga] * 6
    assert [r["has_grad/head"] for r in recs] == [2 * ga] * 6


def test_arrivals_grads_kept_across_steps_use_hooks(tmp_path):
    # zero_grad(set_to_none=False): a scan can't tell zero_() from an arrival on a parameter
    # that gets no gradient, so the first .grad seen to outlive a step brings the hooks back.
    recs, modes, hooked = loop(tmp_path / "p.jsonl", set_to_none=False)
    assert modes[0] == "scan" and set(modes[1:]) == {"hooks"} and hooked
    assert [r["has_grad/head"] for r in recs] == [8] * 6


def test_read_keeps_order_of_mixed_items():
    """0-d and 1-d items, float and int, come back flat and in order: read() on the CPU, and the
    stack-and-cat an accelerator's single transfer goes through."""
    from alertd.probe.reduce import _flat, read
    scalars = [torch.tensor(1.5), torch.tensor([2.0, 3.0]), torch.tensor(4.0), torch.tensor(5.0),
               torch.tensor(6, dtype=torch.long)]
    vectors = [torch.tensor([7, 8], dtype=torch.long)]
    assert read(scalars, vectors) == [1.5, 2.0, 3.0, 4.0, 5.0, 6, 7, 8]
    assert _flat(scalars, vectors).tolist() == [1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert read([], []) == []


def _step(model, opt, probe, labels=None):
    y = labels if labels is not None else torch.randint(0, C, (4,))
    loss = nn.functional.cross_entropy(model(torch.randn(4, 8)), y)
    loss.backward()
    probe.step(loss=loss, labels=y)
    opt.step()
    opt.zero_grad()


def _steps_in(path):
    return [r["step"] for r in split([json.loads(x) for x in path.read_text().splitlines()])[2]]


def _landed(path, expected, device):
    """The steps in the file once the records sent to it have landed: at once on the CPU; on
    CUDA their copy to the host lands when the GPU is done (seen by the probe's thread)."""
    deadline = time.monotonic() + (0 if device == "cpu" else 5)
    while _steps_in(path) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return _steps_in(path)


def test_records_within_hold_s_wait_for_the_first_step_past_it(tmp_path, torch_device):
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1, hold_s=0.3)
    _step(model, opt, probe)  # the first record goes out with the preflight, at once
    assert _steps_in(path) == [1]
    for _ in range(3):
        _step(model, opt, probe)  # within 0.3 s of that write: held
    assert _steps_in(path) == [1]
    time.sleep(0.35)
    _step(model, opt, probe)  # past hold_s: it and the held ones, in order
    assert _landed(path, [1, 2, 3, 4, 5], torch_device) == [1, 2, 3, 4, 5]
    probe.close()
    assert _steps_in(path) == [1, 2, 3, 4, 5]


def test_no_host_sync_after_the_first_step_on_cuda(tmp_path, torch_device):
    # A sync would drain the kernels the loop queued ahead: after the preflight (read at once)
    # records reach the file through copies to pinned memory. torch's sync debug mode raises on
    # the syncs it knows (.item(), .tolist() and other copies to pageable host memory).
    if torch_device != "cuda":
        pytest.skip("CUDA only (ALERTD_TEST_DEVICE=cuda)")
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1, ratio_every=4, hold_s=0.02)
    _step(model, opt, probe)
    norms = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(12):
            loss = nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, C, (4,)))
            loss.backward()
            probe.step(loss=loss)
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
            opt.step()
            opt.zero_grad()
            time.sleep(0.03 if i % 3 == 0 else 0)  # some records held, some sent at once
    finally:
        torch.cuda.set_sync_debug_mode(0)
    probe.close()  # what is still held or in flight lands (the file keeps the steps' order)
    recs = split([json.loads(x) for x in path.read_text().splitlines()])[2]
    assert [r["step"] for r in recs] == list(range(1, 14))
    assert [r["grad_norm"] for r in recs[1:]] == pytest.approx([n.item() for n in norms], rel=1e-5)
    assert [("update_ratio/head" in r) for r in recs] == [r["step"] % 4 == 0 for r in recs]


def test_held_records_are_written_when_training_stops_stepping(tmp_path):
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1, hold_s=0.2)
    for _ in range(4):
        _step(model, opt, probe)
    assert _steps_in(path) == [1]
    deadline = time.monotonic() + 5
    while _steps_in(path) != [1, 2, 3, 4] and time.monotonic() < deadline:
        time.sleep(0.05)  # a hang, an evaluation: the probe's thread writes them after 2 * hold_s
    assert _steps_in(path) == [1, 2, 3, 4]
    probe.close()


def test_hold_s_zero_writes_every_record_at_once(tmp_path):
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1, hold_s=0)
    for s in range(1, 6):
        _step(model, opt, probe)
        assert _steps_in(path) == list(range(1, s + 1))
    probe.close()


def test_held_records_keep_their_step_s_labels_and_tensor_lr(tmp_path):
    # A loop that fills one label buffer in place, and a tensor lr a scheduler writes in place:
    # records read steps later must still show their own step's values.
    path = tmp_path / "p.jsonl"
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1))
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    probe = Probe(model, opt, path=str(path), every=1, num_classes=C, hold_s=60)
    y = torch.zeros(4, dtype=torch.long)
    for s in range(1, 7):
        y.fill_(s % C)
        _step(model, opt, probe, labels=y)
        sched.step()
    assert _steps_in(path) == [1]  # the rest held
    probe.close()
    recs = split([json.loads(x) for x in path.read_text().splitlines()])[2]
    assert [r["labels/min"] for r in recs] == [s % C for s in range(1, 7)]
    assert [r["labels/max"] for r in recs] == [s % C for s in range(1, 7)]
    assert [r["lr"] for r in recs] == pytest.approx([0.1 * 0.5 ** s for s in range(6)])


def test_held_records_reach_the_file_when_a_script_ends_on_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    script = f"""
import torch
from torch import nn
from alertd.probe import Probe
model = nn.Linear(8, {C})
opt = torch.optim.SGD(model.parameters(), lr=0.01)
probe = Probe(model, opt, path={str(path)!r}, every=1, hold_s=60)
for _ in range(5):
    nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, {C}, (4,))).backward()
    opt.step(); opt.zero_grad()
raise SystemExit("training failed")  # no probe.close()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "training failed" in r.stderr
    assert _steps_in(path) == [1, 2, 3, 4, 5]


def test_trainable_and_optimized_follow_unfreezing_and_added_param_groups(tmp_path):
    # Fine-tuning schedules unfreeze a body and add its params to the optimizer mid-run: the
    # counts of each record follow (the probe keeps them from step to step until they change).
    path = tmp_path / "p.jsonl"
    model = make_model()
    model.body.requires_grad_(False)
    opt = torch.optim.SGD(list(model.head.parameters()) + [model.scale], lr=0.01)
    probe = Probe(model, opt, path=str(path), every=1, ratio_every=1, hold_s=0)
    for s in range(1, 7):
        if s == 3:
            model.body.requires_grad_(True)  # trainable, not yet optimized: its update ratio is 0
        if s == 5:
            opt.add_param_group({"params": list(model.body.parameters())})
        _step(model, opt, probe)
    probe.close()
    recs = split([json.loads(x) for x in path.read_text().splitlines()])[2]
    assert [r["trainable/body"] for r in recs] == [0, 0, 2, 2, 2, 2]
    assert [r["has_grad/body"] > 0 for r in recs] == [False, False, True, True, True, True]
    assert [r["update_ratio/body"] > 0 for r in recs] == [False, False, False, False, True, True]
    assert [r["lr/1"] if "lr/1" in r else None for r in recs] == [None] * 4 + [0.01, 0.01]
