"""A training-log writer for the live benchmarks: N JSONL files at R records/s each.

Lines are written on an absolute schedule (record g of all files at t0 + g/(N*R)), each with its
own write() on an O_APPEND descriptor (as peers/gen_log.py does: write+flush per line). Every
--nan-every seconds (jittered +-50%) the next record of a random file gets `"loss": NaN` (the
record after it is finite again, so a no-hold rule resolves); the wall-clock time just after that
write goes to --onsets as one JSON line {"file", "step", "t"}. Bounded by --duration.

    python bench/writer.py --files a.jsonl b.jsonl --rate 10 --duration 30 --nan-every 0.5 --onsets on.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time


def line(step: int, rng: random.Random, nan: bool) -> bytes:
    """One record with ~10 metrics; val_loss only every 100th step (sparse, as in real logs)."""
    loss = 2.0 + 2.5 * math.exp(-step / 2000.0) + rng.gauss(0.0, 0.05)
    gn = 0.5 + 2.0 * math.exp(-step / 1000.0) + abs(rng.gauss(0.0, 0.1))
    lr = 3e-4 * min(1.0, (step + 1) / 100.0)
    loss_s = "NaN" if nan else f"{loss:.6f}"
    val = f', "val_loss": {loss + 0.1:.6f}' if step % 100 == 0 else ""
    return (f'{{"step": {step}, "loss": {loss_s}, "grad_norm": {gn:.6f}, "lr": {lr:.6g}, '
            f'"acc": {1.0 - loss / 6:.5f}, "tokens_per_s": {50000 + rng.random() * 1000:.1f}, '
            f'"mem_gb": {20.0 + rng.random():.3f}, "epoch": {step / 10000:.4f}, '
            f'"ppl": {math.exp(min(loss, 20)):.4f}, "grad_norm/head": {gn / 3:.6f}{val}}}\n').encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--rate", type=float, required=True, help="records/s per file")
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--nan-every", type=float, default=0.0, help="seconds between NaN injections (0: none)")
    ap.add_argument("--nan-after", type=float, default=0.0, help="first injection after this many seconds")
    ap.add_argument("--nan-count", type=int, default=0, help="stop injecting after this many (0: no limit)")
    ap.add_argument("--min-gap", type=float, default=3.0,
                    help="seconds between two injections into the same file (a rule's keep-firing)")
    ap.add_argument("--onsets", help="JSONL file of onset times")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    fds = [os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for p in a.files]
    n = len(fds)
    period = 1.0 / (a.rate * n)
    onsets = open(a.onsets, "a", buffering=1) if a.onsets else None
    steps = [0] * n
    pending: set[int] = set()          # files whose next record is NaN
    last_nan = [-1e9] * n               # when each file last got one (keep injections apart)
    t0 = time.time()
    next_nan = t0 + a.nan_after if a.nan_every > 0 else math.inf
    injected = 0
    late_max = 0.0
    g = 0
    try:
        while True:
            due = t0 + g * period
            now = time.time()
            if due - t0 >= a.duration:
                break
            if due > now:
                time.sleep(due - now)
                now = time.time()
            else:
                late_max = max(late_max, now - due)
            if now >= next_nan and (not a.nan_count or injected < a.nan_count):
                # a file not hit in the last --min-gap s, so a rule that keeps firing a while has resolved
                choices = [i for i in rng.sample(range(n), min(n, 20)) if now - last_nan[i] > a.min_gap]
                if choices:
                    pending.add(choices[0])
                    last_nan[choices[0]] = now
                    injected += 1
                next_nan = now + a.nan_every * rng.uniform(0.5, 1.5)
            i = g % n
            nan = i in pending
            os.write(fds[i], line(steps[i], rng, nan))
            if nan:
                t = time.time()
                pending.discard(i)
                if onsets:
                    onsets.write(json.dumps({"file": a.files[i], "step": steps[i], "t": t}) + "\n")
            steps[i] += 1
            g += 1
    finally:
        for fd in fds:
            os.close(fd)
        if onsets:
            onsets.close()
    elapsed = time.time() - t0
    print(json.dumps({"records": g, "seconds": round(elapsed, 3), "rate": round(g / max(elapsed, 1e-9), 1),
                      "injected": injected, "max_late_s": round(late_max, 4)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
