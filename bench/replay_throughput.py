"""Replay throughput: rows/s of `alertd replay` with the built-in pack vs the floor of reading the
same JSONL with `pl.read_ndjson`, in the same process, on one core and on polars' default threads.

Each figure is the median over --repeat runs (floor and alertd interleaved, so drift hits both);
the ratio is alertd/floor (how many times the bare parse the whole evaluation costs). Then the
end-to-end CLI (`alertd replay ... > /dev/null`, a subprocess, start-up included) and the growth
of time with the number of rules (the pack replicated 1x/2x/4x/8x, alerts renamed) on 10^6 rows.

One core: the measuring worker runs with POLARS_MAX_THREADS=1, set in its environment before
polars is imported (polars sizes its thread pool once, at import); "default" leaves it unset.

    python bench/replay_throughput.py --quick     # 10^5 and 10^6 rows, 2 repeats; rules on 10^5 rows
    python bench/replay_throughput.py             # + more repeats
    python bench/replay_throughput.py --full      # + 10^7 rows (~1.6 GB, generated once, kept in bench/run/)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

CHUNK_ROWS = 1_000_000
NUM_CLASSES = "400"


# -- data ----------------------------------------------------------------------------------
def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write `rows` JSONL records with ~10 metrics, a million at a time (bounded memory)."""
    import numpy as np
    import polars as pl
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            step = np.arange(start, start + n, dtype=np.int64)
            loss = 2.0 + 2.5 * np.exp(-step / 2e5) + rng.normal(0, 0.05, n)
            gn = 0.5 + 2.0 * np.exp(-step / 1e5) + np.abs(rng.normal(0, 0.1, n))
            val = np.where(step % 100 == 0, loss + 0.1, np.nan)
            df = pl.DataFrame({
                "step": step, "loss": loss.round(6), "grad_norm": gn.round(6),
                "lr": 3e-4 * np.minimum(1.0, (step + 1) / 1000.0), "acc": (1 - loss / 6).round(5),
                "tokens_per_s": (5e4 + rng.random(n) * 1e3).round(1), "mem_gb": (20 + rng.random(n)).round(3),
                "epoch": step / 1e5, "val_loss": val.round(6), "ppl": np.exp(loss).round(4),
                "grad_norm/head": (gn / 3).round(6),
            }).with_columns(pl.col("val_loss").fill_nan(None))  # null = absent: sparse val_loss
            df.write_ndjson(f)
    tmp.rename(path)


def data_file(rows: int, keep_dir: Path) -> Path:
    """The file of `rows` records under bench/run/data/ (reused across runs: big files take a while)."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    path = keep_dir / f"train_{rows}.jsonl"
    if not path.exists():
        t = time.time()
        generate(path, rows)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.time() - t:.1f} s", flush=True)
    return path


def replicate_pack(times: int, out: Path) -> Path:
    """The built-in pack `times` times over, each copy's alerts renamed (Name -> Name_rK)."""
    from alertd.cli import builtin_rules
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(Path(builtin_rules()).glob("*.yaml")):
        text = src.read_text()
        for k in range(times):
            renamed = re.sub(r"(-\s+alert:\s*)(\S+)", lambda m: f"{m.group(1)}{m.group(2)}_r{k}", text)
            (out / f"{src.stem}_r{k}.yaml").write_text(renamed)
    return out


# -- the measuring worker (a separate process, so POLARS_MAX_THREADS applies) ------------------
def worker(path: str, repeat: int, rules: str | None, floor: bool) -> dict:
    import polars as pl
    from alertd.cli import builtin_rules
    from alertd.evaluate import Engine
    from alertd.replay import replay_file
    from alertd.rules.rulefile import load_rules
    ruleset = load_rules([rules or builtin_rules()])
    floors, runs, events = [], [], 0
    for _ in range(repeat):
        if floor:
            t = time.perf_counter()
            rows = pl.read_ndjson(path).height
            floors.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine = Engine(ruleset, {"num_classes": float(NUM_CLASSES)})
        sink: list = []
        tally = replay_file(engine, path, "jsonl", sink.append)
        runs.append(time.perf_counter() - t)
        events = len(sink)
        rows = tally.records
    return {"rows": rows, "floor_s": floors, "alertd_s": runs, "events": events,
            "rules": len(ruleset.rules), "threads": pl.thread_pool_size()}


def run_worker(path: Path, repeat: int, threads: str, rules: Path | None = None, floor: bool = True) -> dict:
    env = {**os.environ, "PYTHONPATH": str(bl.SRC)}
    env.pop("POLARS_MAX_THREADS", None)
    if threads != "default":
        env["POLARS_MAX_THREADS"] = threads
    argv = [sys.executable, __file__, "--worker", str(path), "--repeat", str(repeat)]
    if rules:
        argv += ["--rules", str(rules)]
    if not floor:
        argv.append("--no-floor")
    p = bl.start(argv, stdout=subprocess.PIPE, env=env, text=True)
    out, _ = p.communicate(timeout=3600)
    bl.STARTED.pop(p.pid, None)
    if p.returncode:
        raise RuntimeError(f"worker failed ({p.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def cli_once(path: Path, threads: str) -> float:
    """Wall time of the CLI subprocess, start-up and rule loading included, output discarded."""
    env = {"POLARS_MAX_THREADS": threads} if threads != "default" else {}
    t = time.perf_counter()
    p = bl.start(bl.ALERTD + ["replay", "--var", f"num_classes={NUM_CLASSES}", "--output", "json",
                              "--format", "jsonl", str(path)], env=env)
    rc = p.wait(timeout=3600)
    bl.STARTED.pop(p.pid, None)
    if rc:
        raise RuntimeError(f"alertd replay exited {rc}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (10^5, 10^6 rows)")
    ap.add_argument("--full", action="store_true", help="also 10^7 rows and more repeats")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=0)
    ap.add_argument("--rules", help=argparse.SUPPRESS)
    ap.add_argument("--no-floor", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.repeat, a.rules, not a.no_floor)))
        return 0
    bl.install_cleanup()
    info = bl.machine()
    bl.print_machine(info)
    sizes = [10**5, 10**6] + ([10**7] if a.full else [])
    reps = {10**5: 3, 10**6: 2} if a.quick else {10**5: 7, 10**6: 5, 10**7: 3}
    cli_reps = 1 if a.quick else 3
    mults = [1, 2, 4, 8]
    data = bl.RUN_ROOT / "data"
    work = bl.work_dir("replay")
    results = {"machine": info, "sizes": {}, "rules": {}}

    rows_out = []
    for n in sizes:
        path = data_file(n, data)
        mb = path.stat().st_size / 1e6
        for threads in ("1", "default"):
            r = run_worker(path, a.repeat or reps[n], threads)
            fl, ad = bl.med(r["floor_s"]), bl.med(r["alertd_s"])
            cli = [cli_once(path, threads) for _ in range(cli_reps)] if threads == "1" or n < 10**7 else []
            cm = bl.med(cli)
            results["sizes"][f"{n}_{threads}"] = {**r, "cli_s": cli, "mb": mb}
            rows_out.append([f"{n:,}", f"{mb:.0f}", f"{threads} ({r['threads']})", len(r["alertd_s"]),
                             f"{n / fl:,.0f}", f"{n / ad:,.0f}", bl.fmt(ad), bl.ratio(ad, fl),
                             f"{n / cm:,.0f}" if cm else "n/a", bl.ratio(cm, fl) if cm else "n/a", r["events"]])
            print(f"  {n} rows, threads={threads}: floor {fl:.3f}s alertd {ad:.3f}s cli {cm} load {bl.loadavg()}",
                  flush=True)
    table1 = bl.table(["rows", "MB", "polars threads", "runs", "floor rows/s (read_ndjson)",
                       "alertd rows/s (in-process)", "alertd s", "alertd/floor time",
                       "CLI rows/s (end to end)", "CLI/floor time", "events"], rows_out)

    n = 10**5 if a.quick else 10**6  # quick: the growth is linear enough to read off 10^5 rows
    path = data_file(n, data)
    rows_out, base = [], None
    for k in mults:
        rules = replicate_pack(k, work / f"pack_x{k}")
        r = run_worker(path, a.repeat or 3, "1", rules, floor=False)
        ad = bl.med(r["alertd_s"])
        base = base or ad
        results["rules"][k] = r
        rows_out.append([f"{k}x", r["rules"], len(r["alertd_s"]), bl.fmt(ad), f"{n / ad:,.0f}",
                         bl.ratio(ad, base), f"{ad / r['rules'] * 1e3:.1f}"])
        print(f"  pack x{k}: {r['rules']} rules {ad:.3f}s load {bl.loadavg()}", flush=True)
    table2 = bl.table(["pack", "rules", "runs", f"alertd s ({n:,} rows, 1 thread)", "rows/s",
                       "time vs 1x", "ms per rule"], rows_out)
    info["loadavg_end"] = bl.loadavg()
    bl.save_json(bl.RUN_ROOT / "replay_throughput.json", results)
    print("\n## Replay throughput (built-in pack, --var num_classes=400; medians)\n")
    print(table1)
    print("\n## Time vs number of rules (pack replicated, alerts renamed)\n")
    print(table2)
    print(f"\nload average start/end: {info['loadavg_start']} / {info['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
