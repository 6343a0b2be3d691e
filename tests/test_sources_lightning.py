"""Lightning's CSVLogger across versions: lightning_logs/version_*/metrics.csv, one glob, one run each."""
from __future__ import annotations

from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.rules.rulefile import load_rules
from alertd.sources import Discovery, Tailer

HEADER = "epoch,lr-SGD,step,train_loss,val_loss\n"


def rows(losses, start=0):
    # Sparse rows as CSVLogger writes them: an lr row and a train row per step, a val row per epoch.
    out = []
    for i, loss in enumerate(losses):
        step = start + i
        out += [f"0,0.1,{step},,\n", f"0,,{step},{loss},\n"]
    out.append(f"0,,{start + len(losses) - 1},,{losses[-1]}\n")
    return "".join(out)


def test_two_version_dirs_both_followed_and_evaluated(tmp_path):
    base = tmp_path / "lightning_logs"
    (base / "version_0").mkdir(parents=True)
    (base / "version_0" / "metrics.csv").write_text(HEADER + rows([2.0, 1.5, 1.2]))
    rules = tmp_path / "r.yaml"
    rules.write_text("series:\n  loss: [train_loss]\ngroups:\n  - name: g\n    rules:\n"
                     "      - alert: LossHigh\n        expr: loss > 5\n")
    engine = Engine(load_rules([str(rules)]))
    tailer = Tailer(Discovery([str(base / "version_*" / "metrics.csv")]))
    parsers, events = {}, []

    def poll():
        for path, chunk in tailer.poll():
            parser = parsers.setdefault(path, make_parser("auto", path))
            events.extend(engine.feed(path, parser.feed(chunk.data), now=0.0))
    try:
        poll()
        # A resumed run: Lightning starts version_1 beside it; the glob picks it up on the next poll.
        (base / "version_1").mkdir()
        with open(base / "version_1" / "metrics.csv", "w") as f:
            f.write(HEADER + rows([1.1, 9.0, 9.5], start=3))
        poll()
    finally:
        tailer.close()
    runs = sorted(engine.runs)
    assert runs == [str(base / "version_0" / "metrics.csv"), str(base / "version_1" / "metrics.csv")]
    assert [p.format for p in parsers.values()] == ["csv", "csv"]
    assert engine.runs[runs[0]].last_step == 2 and engine.runs[runs[1]].last_step == 5
    assert [(e.run, e.rule, e.state, e.step) for e in events] == [(runs[1], "LossHigh", "firing", 4)]
