"""Watch cost: CPU seconds per minute and peak RSS of `alertd run` (built-in pack, --var
num_classes=400) tailing 1, 100 and 500 files at 10 records/s each, plus onset latency of NaN
records injected into random files (NonFiniteMetric's firing event on stdout).

One writer process (bench/writer.py) appends to all files on an absolute schedule. After a
warm-up, CPU (utime+stime from /proc/PID/stat, children included) is read at the start and the
end of the measured window; peak RSS is VmHWM at its end. The warm-up is 30 s or more: what
alertd keeps per run (plot lead-ups, records waiting for long windows, their look-back) fills
up over the first ~30 s at 10 records/s, so a shorter run would read the RSS before its peak. Baseline in the same run, on the same
workload: `tail -n +1 -F` on the same files (the floor of following them at all), and the
writer's own CPU (the cost of producing the lines in Python). Each alertd figure is the median
over --runs runs.

Targets (issue 7), 500 files: < 25% of one core, < 300 MB RSS, p99 onset latency < 1 s.

    python bench/watch_cost.py --quick     # 30 s warm-up, 15 s window, 1 run  (~4 min)
    python bench/watch_cost.py             # 30 s warm-up, 60 s window, 3 runs (~20 min)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

WRITER = str(Path(__file__).resolve().parent / "writer.py")
RATE = 10.0


def one_run(kind: str, n: int, warm: float, window: float, work: Path, seed: int,
            py_spy: str | None = None) -> dict:
    """kind 'alertd' or 'tail'; returns CPU s, RSS MB and onset latencies of that watcher."""
    d = work / f"{kind}_{n}_{seed}"
    d.mkdir()
    files = [d / f"run{i:04d}.jsonl" for i in range(n)]
    for f in files:
        f.touch()
    onsets_path = d / "onsets.jsonl"
    if kind == "alertd":
        argv = bl.ALERTD + ["run", "--var", "num_classes=400", "--output", "json", str(d / "*.jsonl")]
    else:
        argv = ["tail", "-n", "+1", "-F", *map(str, files)]
    every = 2.1 if n == 1 else 0.33               # seconds between injections (jittered 0.5x-1.5x)
    watcher = writer = None
    out: dict = {"kind": kind, "files": n}
    try:
        watcher = bl.start(argv, stdout=subprocess.PIPE, stderr=open(d / "watcher.err", "w"), text=True)
        reader = bl.LineReader(watcher.stdout)
        reader.start()
        time.sleep(1.0)                           # start-up (imports) is not what is measured
        t_start = time.time()
        writer = bl.start([sys.executable, WRITER, "--files", *map(str, files), "--rate", str(RATE),
                           "--duration", str(warm + window + 3), "--nan-every", str(every),
                           "--nan-after", str(warm), "--min-gap", "2.0", "--onsets", str(onsets_path),
                           "--seed", str(seed)], stderr=open(d / "writer.err", "w"))
        time.sleep(max(0.0, t_start + warm - time.time()))
        c0, w0, t0 = bl.cpu_seconds(watcher.pid), bl.cpu_seconds(writer.pid), time.time()
        spy = None
        if py_spy and kind == "alertd":  # sampling at 20 Hz costs the sampled process little
            spy = bl.start([py_spy, "record", "-p", str(watcher.pid), "-d", str(int(window)), "-r", "20",
                            "--nonblocking", "--format", "raw", "-o", str(d / "profile.txt")])
        time.sleep(window)
        c1, w1, t1 = bl.cpu_seconds(watcher.pid), bl.cpu_seconds(writer.pid), time.time()
        out["rss_mb"] = bl.status_mb(watcher.pid, "VmHWM")
        out["cpu_s_per_min"] = (c1 - c0) / (t1 - t0) * 60
        out["writer_cpu_s_per_min"] = (w1 - w0) / (t1 - t0) * 60
        out["load"] = bl.loadavg()
        writer.wait(timeout=window + warm + 30)
        time.sleep(2.0)                           # events for the last onsets
        out["alive"] = watcher.poll() is None
        if spy:
            spy.wait(timeout=30)
            out["profile"] = top_frames(d / "profile.txt")
    finally:
        bl.stop(writer)
        bl.stop(watcher)
    onsets = [json.loads(l) for l in onsets_path.read_text().splitlines() if l.strip()]
    onsets = [o for o in onsets if t0 <= o["t"] <= t1]
    arrivals = _arrivals(kind, reader.lines, files[0].name)
    out["latency"] = [_lat(arrivals, o) for o in onsets]
    out["writer"] = (d / "writer.err").read_text().strip()[-200:]
    out["err"] = (d / "watcher.err").read_text()[-300:]
    return out


def _arrivals(kind: str, lines: list[tuple[float, str]], first: str) -> dict[tuple[str, int], float]:
    """(file name, step) -> when the watcher printed the NaN record's alert (alertd) or line (tail)."""
    if kind == "alertd":
        return {(Path(run).name, step): t for (run, step), t in bl.firing_events(lines).items()}
    out, current = {}, first  # tail prints "==> name <==" headers only when it follows several files
    for t, line in lines:
        if line.startswith("==> "):
            current = Path(line[4:].rstrip().rstrip("<=").strip()).name
        elif '"loss": NaN' in line:
            out.setdefault((current, json.loads(line.replace("NaN", "null"))["step"]), t)
    return out


def top_frames(path: Path, k: int = 10) -> dict:
    """From py-spy's raw output (`frame;frame;... count`): the functions with the most samples,
    on top of the stack (self) and anywhere in it (inclusive, alertd's own functions only)."""
    self_, incl, total = {}, {}, 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";") if f]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        total += n
        self_[frames[-1]] = self_.get(frames[-1], 0) + n
        for f in set(frames):
            if "alertd" in line and any(m in f for m in (".py)",)):
                incl[f] = incl.get(f, 0) + n
    top = lambda d: [(f, round(100 * c / total, 1)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:k]]  # noqa: E731
    return {"samples": total, "self_pct": top(self_), "inclusive_pct": top(incl)}


def _lat(arrivals: dict, onset: dict) -> float | None:
    t = arrivals.get((Path(onset["file"]).name, onset["step"]))
    return None if t is None else t - onset["t"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--files", default="1,100,500")
    ap.add_argument("--runs", type=int, default=0, help="alertd runs per size (default 1 quick, 3 full)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--py-spy", metavar="PATH", help="profile alertd over each window with this py-spy binary "
                    "(pip install py-spy) and print the hot functions")
    a = ap.parse_args()
    bl.install_cleanup()
    info = bl.machine()
    bl.print_machine(info)
    warm, window = (30.0, 15.0) if a.quick else (30.0, 60.0)
    runs = a.runs or (1 if a.quick else 3)
    work = bl.work_dir("watch", keep=a.keep)
    rows, results, checks = [], [], []
    for n in [int(x) for x in a.files.split(",")]:
        base = one_run("tail", n, warm, window, work, seed=100)
        ours = [one_run("alertd", n, warm, window, work, seed=i, py_spy=a.py_spy) for i in range(runs)]
        results.append({"files": n, "tail": base, "alertd": ours})
        cpu = bl.med(r["cpu_s_per_min"] for r in ours)
        rss = bl.med(r["rss_mb"] for r in ours)
        lat = [x for r in ours for x in r["latency"]]
        missed = sum(x is None for x in lat)
        p99 = bl.pct(lat, 99)
        rows.append([n, f"{n * RATE:g}", runs, bl.fmt(cpu), f"{cpu / 60 * 100:.1f}%", bl.fmt(rss),
                     len(lat), bl.fmt(bl.pct(lat, 50)), bl.fmt(p99), missed,
                     bl.fmt(base["cpu_s_per_min"]), bl.fmt(base["rss_mb"]), bl.fmt(bl.pct(base["latency"], 99)),
                     bl.ratio(cpu, base["cpu_s_per_min"]), bl.fmt(bl.med(r["writer_cpu_s_per_min"] for r in ours)),
                     ours[0]["load"]])
        print(f"  {n} files: alertd {cpu:.2f} CPU-s/min, {rss:.0f} MB, p99 {bl.fmt(p99)} s; "
              f"tail {base['cpu_s_per_min']:.2f} CPU-s/min; load {bl.loadavg()}; "
              f"writer {ours[0]['writer']}", flush=True)
        if ours[0].get("profile"):
            prof = ours[0]["profile"]
            print(f"    py-spy, {prof['samples']} samples; self: " +
                  "; ".join(f"{f} {p}%" for f, p in prof["self_pct"]), flush=True)
            print("    inclusive: " + "; ".join(f"{f} {p}%" for f, p in prof["inclusive_pct"]), flush=True)
        if n == 500:
            checks = [("CPU < 25% of one core", cpu / 60 * 100, 25.0, "%"), ("peak RSS < 300 MB", rss, 300.0, " MB"),
                      ("p99 onset -> stdout < 1 s (misses count as over)", p99 if not missed else None, 1.0, " s")]
    info["loadavg_end"] = bl.loadavg()
    bl.save_json(bl.RUN_ROOT / "watch_cost.json", {"machine": info, "warm": warm, "window": window,
                                                   "results": results})
    print(f"\n## Watch cost, 10 records/s per file, {window:g} s window after {warm:g} s warm-up\n")
    print(bl.table(["files", "records/s", "runs", "alertd CPU s/min", "% of one core", "peak RSS MB",
                    "onsets", "p50 s", "p99 s", "missed", "tail -F CPU s/min", "tail RSS MB", "tail p99 s",
                    "alertd/tail CPU", "writer CPU s/min", "load avg"], rows))
    print()
    for name, v, target, unit in checks:
        print(f"- 500 files: {name}: {bl.fmt(v)}{unit} -> {'met' if v is not None and v < target else 'NOT met'}")
    print(f"\nload average start/end: {info['loadavg_start']} / {info['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
