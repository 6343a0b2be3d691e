"""alertd vs the peer stack users run today (mtail -> Prometheus -> Alertmanager -> webhook),
on the same generator (shared/peers/gen_log.py: JSONL at 10 or 1,000 lines/s, cross-entropy stuck
at log(400) from a chosen step), in the same run.

Peer: shared/peers/bench_peer.py (stack phase; onsets stratified over the evaluation interval),
its results under bench/run/peers/. alertd: `alertd run --notify json://127.0.0.1:PORT/` on a
fresh file with the same generator, measured the same way: warm-up, then utime+stime of the
process over the window and VmHWM at its end, then the onset (recorded by gen_log.py after its
write+flush) -> the first firing POST at a receiver on 127.0.0.1. Two alertd rule sets:
  equivalent  the peer's rule in alertd's YAML: abs(loss - 5.9915) < 0.05 for 5 s (`for: 5s`)
  pack        the built-in pack with --var num_classes=400 (CrossEntropyAtChance: the 10-record
              mean within 2% of log(400) on 150 consecutive records)
Ratios are alertd (equivalent rule) over the tuned peer.

Needs: apt-get install -y mtail prometheus prometheus-alertmanager (no services are started).

    python bench/peers.py --quick     # tuned peer, 1000 lines/s, 1 run, 10 s window (~2.5 min)
    python bench/peers.py             # tuned 10 + 1000/s, default 1000/s; 3 runs, 60 s window (~30 min)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

PEERS = Path(os.environ.get("PEERS_DIR", bl.REPO.parent / "shared" / "peers"))
EQUIVALENT = """\
groups:
  - name: training
    rules:
      - alert: LossStuckAtChance
        expr: abs(loss - 5.9915) < 0.05
        value: loss
        for: 5s
        severity: critical
        annotations:
          summary: "loss within 0.05 of log(400) (CE at chance) for 5s"
"""
RULE_OF = {"equivalent": "LossStuckAtChance", "pack": "CrossEntropyAtChance"}


def versions() -> dict:
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError) as e:
            return f"missing ({e})"
    return {"mtail": first(["mtail", "-version"]), "prometheus": first(["prometheus", "--version"]),
            "alertmanager": first(["prometheus-alertmanager", "--version"])}


def run_peer(variant: str, rates: str, runs: int, warm: float, window: float, out: Path) -> list[dict]:
    """bench_peer.py's stack phase; its per-run records."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(PEERS / "bench_peer.py"), "--phases", "stack", "--variants", variant,
            "--rates", rates, "--runs", str(runs), "--warmup", str(warm), "--window", str(window),
            "--stratify", "--max-minutes", "60", "--tag", f"_{variant}"]
    p = bl.start(argv, stdout=open(out / f"bench_peer_{variant}.log", "w"), env={"PEERS_RUN_DIR": str(out)})
    p.wait(timeout=3600)
    bl.STARTED.pop(p.pid, None)
    path = out / f"results_{variant}.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def run_alertd(rules: str, rate: float, idx: int, warm: float, window: float, timeout: float, work: Path) -> dict:
    """One alertd run on gen_log.py's output: CPU and RSS over the window, then latency to the POST."""
    d = work / f"{rules}_r{int(rate)}_{idx}"
    d.mkdir(parents=True)
    log, onset_file = d / "train.jsonl", d / "onset.json"
    log.touch()
    if rules == "equivalent":
        (d / "rule.yaml").write_text(EQUIVALENT)
        rule_args = ["--rules", str(d / "rule.yaml")]
    else:
        rule_args = ["--var", "num_classes=400"]
    rx = bl.Receiver()
    rec: dict = {"rules": rules, "rate": rate, "run": idx}
    alertd = gen = None
    try:
        alertd = bl.start(bl.ALERTD + ["run", *rule_args, "--output", "json", "--notify", rx.url, str(log)],
                          stdout=subprocess.PIPE, stderr=open(d / "alertd.err", "w"), text=True)
        reader = bl.LineReader(alertd.stdout)
        reader.start()
        time.sleep(1.0)  # imports; the peer's daemons are also up before its generator starts
        t_gen = time.time()
        fail_step = int(round(rate * (warm + window)))
        gen = bl.start([sys.executable, str(PEERS / "gen_log.py"), "--out", str(log), "--rate", str(rate),
                        "--duration", str(warm + window + timeout + 5), "--fail-at-step", str(fail_step),
                        "--onset-file", str(onset_file), "--seed", str(idx)])
        time.sleep(max(0.0, t_gen + warm - time.time()))
        c0, t0 = bl.cpu_seconds(alertd.pid), time.time()
        time.sleep(window)
        c1, t1 = bl.cpu_seconds(alertd.pid), time.time()
        rec["cpu_s_per_min"] = (c1 - c0) / (t1 - t0) * 60
        rec["rss_mb"] = bl.status_mb(alertd.pid, "VmHWM")
        rec["load"] = bl.loadavg()
        end = t_gen + fail_step / rate + timeout
        rule = RULE_OF[rules]
        while time.time() < end:
            hit = sorted(rx.firing(rule).values())
            if hit and onset_file.exists():
                onset = json.loads(onset_file.read_text())["onset_time"]
                rec["latency_s"] = hit[0] - onset
                fired = [t for t, l in reader.lines if f'"{rule}"' in l and '"firing"' in l]
                rec["stdout_latency_s"] = fired[0] - onset if fired else None
                break
            time.sleep(0.05)
        else:
            rec["latency_s"] = None
    finally:
        bl.stop(gen)
        bl.stop(alertd)
        rx.close()
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    bl.install_cleanup()
    info = bl.machine(versions())
    bl.print_machine(info)
    if not (PEERS / "bench_peer.py").exists():
        print(f"no {PEERS}/bench_peer.py (set PEERS_DIR)", file=sys.stderr)
        return 2
    if a.quick:
        warm, window, runs, plan = 5.0, 10.0, 1, [("tuned", [1000.0])]
    else:
        warm, window, runs, plan = 5.0, 60.0, 3, [("tuned", [10.0, 1000.0]), ("default", [1000.0])]
    rates = sorted({r for _, rs in plan for r in rs})
    work = bl.work_dir("peers", keep=a.keep)
    peer = {}
    for variant, rs in plan:
        t = time.time()
        recs = run_peer(variant, ",".join(f"{r:g}" for r in rs), runs, warm, window, bl.RUN_ROOT / "peers")
        for r in recs:
            peer.setdefault((variant, r["rate"]), []).append(r)
        print(f"  peer {variant}: {len(recs)} runs in {time.time() - t:.0f} s; load {bl.loadavg()}", flush=True)
    ours = {}
    for rules in ("equivalent", "pack"):
        for rate in rates:
            for i in range(runs):
                r = run_alertd(rules, rate, i, warm, window, 60.0, work)
                ours.setdefault((rules, rate), []).append(r)
                print(f"  alertd {rules} {rate:g}/s #{i}: latency {bl.fmt(r.get('latency_s'))} s, "
                      f"{r['cpu_s_per_min']:.2f} CPU-s/min, {r['rss_mb']:.0f} MB; load {r['load']}", flush=True)
    info["loadavg_end"] = bl.loadavg()
    bl.save_json(bl.RUN_ROOT / "peers.json", {"machine": info, "peer": {f"{k[0]}_{k[1]:g}": v for k, v in peer.items()},
                                              "alertd": {f"{k[0]}_{k[1]:g}": v for k, v in ours.items()}})
    rows = []
    for rate in rates:
        tuned = peer.get(("tuned", rate), [])
        t_lat = bl.med(r.get("latency_s") for r in tuned)
        t_cpu = bl.med(sum(r["cpu_s"][k] for k in ("mtail", "prometheus", "alertmanager")) / r["window_actual_s"] * 60
                       for r in tuned if "cpu_s" in r)
        t_rss = bl.med(sum(r["vmhwm_mb"][k] for k in ("mtail", "prometheus", "alertmanager"))
                       for r in tuned if "vmhwm_mb" in r)
        for (variant, r_), recs in sorted(peer.items()):
            if r_ != rate:
                continue
            lat = [r.get("latency_s") for r in recs]
            cpu = bl.med(sum(r["cpu_s"][k] for k in ("mtail", "prometheus", "alertmanager")) / r["window_actual_s"] * 60
                         for r in recs if "cpu_s" in r)
            rss = bl.med(sum(r["vmhwm_mb"][k] for k in ("mtail", "prometheus", "alertmanager"))
                         for r in recs if "vmhwm_mb" in r)
            rows.append([f"{rate:g}", f"peer {variant} (3 daemons)", len(recs), _range(lat), bl.fmt(cpu), bl.fmt(rss),
                         "1.00x" if variant == "tuned" else bl.ratio(bl.med(lat), t_lat),
                         "1.00x" if variant == "tuned" else bl.ratio(cpu, t_cpu), "1.00x" if variant == "tuned" else bl.ratio(rss, t_rss)])
        for rules in ("equivalent", "pack"):
            recs = ours.get((rules, rate), [])
            lat = [r.get("latency_s") for r in recs]
            cpu, rss = bl.med(r["cpu_s_per_min"] for r in recs), bl.med(r["rss_mb"] for r in recs)
            rows.append([f"{rate:g}", f"alertd, {rules} rule", len(recs), _range(lat), bl.fmt(cpu), bl.fmt(rss),
                         bl.ratio(bl.med(lat), t_lat), bl.ratio(cpu, t_cpu), bl.ratio(rss, t_rss)])
    print(f"\n## alertd vs mtail + Prometheus + Alertmanager (window {window:g} s, {runs} run(s) per cell)\n")
    print(bl.table(["lines/s", "side", "runs", "onset -> webhook POST s, median [min, max]", "CPU s/min",
                    "peak RSS MB (sum)", "latency vs tuned peer", "CPU vs tuned peer", "RSS vs tuned peer"], rows))
    print("\nversions: " + "; ".join(f"{k}: {v}" for k, v in versions().items()))
    print(f"load average start/end: {info['loadavg_start']} / {info['loadavg_end']}")
    return 0


def _range(values) -> str:
    vals = [v for v in values if v is not None]
    missed = len(values) - len(vals)
    if not vals:
        return "none"
    s = f"{bl.fmt(bl.med(vals))} [{bl.fmt(min(vals))}, {bl.fmt(max(vals))}]"
    return s + (f", {missed} missed" if missed else "")


if __name__ == "__main__":
    sys.exit(main())
