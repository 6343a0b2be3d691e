"""Measure the rule pack on held-out runs: fresh tiny trainings that are not in the repo.

    python samples/heldout.py [--out DIR] [--runs N] [--seed S] [--jobs J] [--rules PATH]...
    python samples/heldout.py --replay-only --out DIR --rules /tmp/mypack   # same logs, other pack

Generates N seeded real trainings (torch on CPU; half broken, one per failure family in turn, the
rest healthy, hard cases included) in every log format, replays each through the engine as
`alertd replay` does (with --var num_classes=C only where the log carries no meta record, and
again with no vars at all), and prints per run the first warning/critical alert and its delay
after the bug's onset. The goal: >= 90% of broken runs caught within 200 steps of the onset,
no warning/critical alert on any healthy run.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))        # samples/train as the package `train`
sys.path.insert(0, str(HERE.parent))  # the repo root, for alertd

ALL = ("jsonl", "print", "tqdm", "mmengine", "hf", "csv", "probe")
TEXT = ("jsonl", "print", "tqdm", "mmengine", "hf", "csv")
# family: (formats whose log carries the bug's signal, onset modes)
BROKEN = {
    "head_missing": (ALL, ("0",)),
    "lr_tiny": (ALL, ("0", "mid")),
    "one_class": (("probe", "jsonl", "print"), ("0", "mid")),
    "all_frozen": (ALL, ("0", "mid")),           # mid-run: the probe's update ratio only
    "exploding_lr": (ALL, ("mid",)),
    "ga8_zero_grad": (("probe",), ("0",)),
    "aux_never_on": (("mmengine", "jsonl", "print", "hf", "csv", "probe"), ("0",)),
    "labels_oor": (("probe", "jsonl", "print"), ("0", "mid")),
    "lr_annealed_early": (ALL, ("mid",)),
    "oscillation_growing": (ALL, ("mid",)),
    "vae_kl_rising": (("jsonl", "print", "csv", "probe"), ("0", "mid")),
    "ce_chance_data": (ALL, ("mid",)),
    "midrun_nan": (ALL, ("mid",)),
}
HEALTHY = {
    "h_chance_start": ALL, "h_plateau": TEXT, "h_cosine0": ALL, "h_stepdecay": ALL,
    "h_ga": ("probe",), "h_vae": ("jsonl", "print", "csv", "probe"), "h_smallbatch": ALL,
    "h_finetune": ALL, "h_plain10": ALL, "h_aux_on": ("mmengine", "jsonl", "print", "hf", "probe"),
}
WITHIN = 200
LOUD = ("warning", "critical")


def plan(n: int, seed: int) -> list[dict]:
    """N run configs: broken ones cycling through the families, then healthy ones."""
    rng = random.Random(seed)
    runs = []
    n_broken = n // 2
    fams, kinds = list(BROKEN), list(HEALTHY)
    for i in range(n):
        broken = i < n_broken
        fam = fams[i % len(fams)] if broken else kinds[(i - n_broken) % len(kinds)]
        fmts = BROKEN[fam][0] if broken else HEALTHY[fam]
        steps = rng.choice([500, 600, 800])
        C = rng.choice([10, 100, 400])
        cfg = dict(name=f"{'b' if broken else 'h'}{i:03d}_{fam}", family=fam, healthy=not broken,
                   seed=seed * 1000 + i, fmt=rng.choice(fmts), C=C, steps=steps,
                   every=rng.choice([1, 2, 10]), bs=rng.choice([32, 64]),
                   hidden=128 if C == 400 else rng.choice([64, 128]),
                   opt=rng.choice(["Adam", "AdamW"]), lr=rng.choice([1e-3, 2e-3, 5e-4]), onset=0)
        cfg["meta"] = cfg["fmt"] == "jsonl" and rng.random() < 0.5
        cfg["label_stats"] = cfg["fmt"] in ("jsonl", "print") and rng.random() < 0.5
        cfg["clip"] = 1.0 if cfg["fmt"] == "hf" else (5.0 if cfg["fmt"] == "mmengine" else None)
        if broken:
            mode = BROKEN[fam][1][(i // len(fams)) % len(BROKEN[fam][1])]
            if mode == "mid":
                cfg["onset"] = rng.randint(200, steps // 2)
        if fam == "all_frozen" and cfg["onset"] > 0:
            cfg["fmt"] = "probe"  # frozen mid-run: the loss just stops moving; only the probe tells
        if fam in ("one_class", "labels_oor"):
            cfg["label_stats"] = True
        if fam == "head_missing":
            cfg["zero_head"] = cfg["fmt"] != "probe" or rng.random() < 0.5
        elif fam == "exploding_lr":
            cfg["onset"], cfg["k"] = rng.randint(100, steps // 3), rng.choice([50, 80, 100])
        elif fam == "lr_annealed_early":
            cfg["onset"] = rng.randint(150, steps // 3)  # OneCycle total_steps; the real onset comes back
        elif fam == "oscillation_growing":
            cfg.update(onset=rng.randint(100, 250), growth=rng.choice([1.008, 1.012]),
                       opt="SGD", lr=0.05, bs=64, steps=800)
        elif fam == "ga8_zero_grad":
            cfg.update(ga=8, bs=8, steps=300)
        elif fam in ("vae_kl_rising", "h_vae"):
            cfg.update(C=None, hidden=64, bs=64, lr=1e-3, steps=rng.choice([600, 800, 1000]),
                       warm=rng.choice([20, 50, 100]))
        elif fam == "h_chance_start":
            cfg.update(zero_head=True, C=rng.choice([100, 400]), hidden=128, bs=64, lr=1e-3,
                       warm=rng.choice([180, 250, 320]))  # the loss leaves log(C) after ~100-200 steps
        elif fam == "h_plateau":
            cfg.update(C=10, opt="SGD", lr=0.005, hidden=64, bs=64, steps=1000)
        elif fam == "h_cosine0":
            cfg["warm"] = rng.choice([50, 100, 200])
        elif fam == "h_ga":
            cfg.update(ga=rng.choice([4, 8]), bs=8, steps=300)
        elif fam == "h_smallbatch":
            cfg["bs"] = rng.choice([4, 8])
        elif fam == "h_finetune":
            cfg.update(opt="AdamW", lr=1e-5)
        elif fam == "h_plain10":
            cfg["every"] = 10
        elif fam == "h_aux_on":
            cfg["aux_on"] = rng.randint(10, 90)
        if cfg["C"] == 400 and cfg["bs"] < 64:
            cfg["bs"] = 64
        cfg["file"] = cfg["name"] + (".csv" if cfg["fmt"] == "csv" else
                                     ".jsonl" if cfg["fmt"] in ("jsonl", "probe") else ".log")
        runs.append(cfg)
    return runs


def _generate(args: tuple[dict, str]) -> tuple[str, int | None, float]:
    warnings.filterwarnings("ignore")
    from train.heldout_runs import train

    cfg, out = args
    t = time.perf_counter()
    onset = train(cfg, Path(out) / cfg["file"])
    return cfg["name"], onset, time.perf_counter() - t


def generate(runs: list[dict], out: Path, jobs: int) -> None:
    """Train every run (J processes), record the onsets, write OUT/heldout.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    by_name = {r["name"]: r for r in runs}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for name, onset, dt in pool.map(_generate, [(r, str(out)) for r in runs]):
            by_name[name]["onset"] = onset
            print(f"  {name:32s} {by_name[name]['fmt']:8s} {dt:5.1f}s", file=sys.stderr, flush=True)
    (out / "heldout.yaml").write_text(yaml.safe_dump({"runs": runs}, sort_keys=False, width=120))


def replay_run(pack, cfg: dict, out: Path, use_vars: bool) -> list:
    """Events of one run through the engine, as `alertd replay` gives them."""
    from alertd.evaluate import Engine
    from alertd.replay import replay_file

    has_meta = cfg["fmt"] == "probe" or cfg.get("meta")
    v = {"num_classes": cfg["C"]} if use_vars and cfg["C"] and not has_meta else {}
    events: list = []
    replay_file(Engine(pack, v), str(out / cfg["file"]), "auto", events.append)
    return events


def judge(cfg: dict, events: list) -> dict:
    """First loud alert at/after the onset, its delay, and loud alerts before the onset."""
    from train.heldout_fmt import train_step

    loud = sorted(((train_step(cfg["fmt"], cfg["every"], e.step), e.rule, e.summary) for e in events
                   if e.state == "firing" and e.severity in LOUD), key=lambda t: t[0])
    if cfg["healthy"]:
        return {"alarms": loud}
    onset = cfg["onset"]
    early = [a for a in loud if a[0] < onset]
    after = [a for a in loud if a[0] >= onset]
    first = after[0] if after else None
    delay = first[0] - onset if first else None
    return {"early": early, "first": first, "delay": delay,
            "caught": delay is not None and delay <= WITHIN}


def report(runs: list[dict], out: Path, rule_paths: list[str]) -> dict:
    """Replay every run with and without vars; print the table and the totals."""
    from alertd.rules.rulefile import load_rules

    pack = load_rules(rule_paths)
    res = {r["name"]: (judge(r, replay_run(pack, r, out, True)), judge(r, replay_run(pack, r, out, False)))
           for r in runs}
    print(f"{'run':30s} {'format':8s} {'C':>4s} {'every':>5s} {'onset':>5s}  first loud alert (train step)"
          f"{'':14s} {'delay':>5s} ok   | no vars")
    for r in runs:
        if r["healthy"]:
            continue
        j, jn = res[r["name"]]
        first = f"{j['first'][1]}@{j['first'][0]}" if j["first"] else "-"
        early = f"  EARLY {j['early'][0][1]}@{j['early'][0][0]}" if j["early"] else ""
        print(f"{r['name']:30s} {r['fmt']:8s} {r['C'] or '-':>4} {r['every']:>5d} {r['onset']:>5d}  "
              f"{first:42s} {'' if j['delay'] is None else j['delay']:>5} {'yes' if j['caught'] else 'NO ':4s} | "
              f"{'yes' if jn['caught'] else 'NO'}{early}")
    for r in runs:
        if not r["healthy"]:
            continue
        j, jn = res[r["name"]]
        alarm = "; ".join(f"{a[1]}@{a[0]}: {a[2][:70]}" for a in j["alarms"][:2]) or "-"
        extra = "" if bool(j["alarms"]) == bool(jn["alarms"]) else f" | no vars: {len(jn['alarms'])}"
        print(f"{r['name']:30s} {r['fmt']:8s} {r['C'] or '-':>4} {r['every']:>5d}  {alarm}{extra}")
    broken = [r for r in runs if not r["healthy"]]
    healthy = [r for r in runs if r["healthy"]]
    totals = {}
    for k, label in ((0, "with vars"), (1, "no vars")):
        caught = sum(res[r["name"]][k]["caught"] for r in broken)
        early = sum(bool(res[r["name"]][k]["early"]) for r in broken)
        fa = sum(bool(res[r["name"]][k]["alarms"]) for r in healthy)
        totals[label] = (caught, len(broken), fa, len(healthy), early)
        print(f"{label}: caught within {WITHIN} steps {caught}/{len(broken)} "
              f"({100 * caught / max(1, len(broken)):.0f}%), healthy runs with a warning/critical "
              f"alert {fa}/{len(healthy)}, broken runs alerted before the onset {early}")
    return totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/alertd-heldout"))
    ap.add_argument("--runs", type=int, default=40, help="half broken (13 families), half healthy")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rules", action="append", default=None, help="default: the built-in pack")
    ap.add_argument("--replay-only", action="store_true", help="reuse OUT/heldout.yaml and its logs")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.replay_only:
        runs = yaml.safe_load((args.out / "heldout.yaml").read_text())["runs"]
    else:
        runs = plan(args.runs, args.seed)
        t = time.perf_counter()
        generate(runs, args.out, args.jobs)
        print(f"generated {len(runs)} runs in {time.perf_counter() - t:.0f}s into {args.out}", file=sys.stderr)
    from alertd.cli import builtin_rules

    report(runs, args.out, args.rules or [builtin_rules()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
