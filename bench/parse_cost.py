"""Parse cost (issue 7): what the JSONL parser adds over polars' own reader, on both paths.

(a) Replay: `JsonlParser.feed` over the 32 MB pieces of `alertd.replay.chunks()` vs bare
    `pl.read_ndjson` of the same pieces: with the reading of the file (chunks() in the loop) and
    with the pieces already in memory (the parse alone).
(b) Live: 500 files that each got 5 new lines (bench/writer.py's records): one
    `feed_many` call vs the loop `[p.feed(d) for p, d in items]` (fresh parsers every repeat).

Each figure is the median CPU time over --repeat runs, the two sides interleaved run by run so
that drift on this shared machine hits both; the ratio is parser / baseline. One core: POLARS_MAX_THREADS=1
is set before polars is imported. `ALERTD_SRC=/path` measures another tree (feed_many is skipped
where it does not exist).

    python bench/parse_cost.py --quick     # 3 repeats, the 10^6-row file (188 MB)
    python bench/parse_cost.py             # 7 repeats
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is imported, anywhere

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

sys.path.insert(0, str(bl.SRC))

import polars as pl  # noqa: E402

from alertd.parse import make_parser  # noqa: E402
from alertd.replay import chunks  # noqa: E402


def timed(fn) -> float:
    """CPU seconds of this process (all threads) spent in fn(): on a shared machine wall time
    mostly measures the neighbours; polars runs one thread here, so CPU time is the cost."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def replay_rows(path: Path, repeat: int) -> list[list]:
    """(a): rows of the table for the chunked replay parse."""
    pieces = list(chunks(str(path)))

    def feed(source):
        parser = make_parser("jsonl")
        for piece in source():
            parser.feed(piece)

    def bare(source):
        for piece in source():
            pl.read_ndjson(piece)

    rows = []
    for label, source in (("replay: chunks() + parse", lambda: chunks(str(path))),
                          ("replay: parse of pieces in memory", lambda: pieces)):
        ours, base = [], []
        for _ in range(repeat):
            base.append(timed(lambda: bare(source)))
            ours.append(timed(lambda: feed(source)))
        rows.append([label, f"{bl.med(ours):.3f} s", f"{bl.med(base):.3f} s (read_ndjson)",
                     bl.ratio(bl.med(ours), bl.med(base))])
    return rows


def live_rows(files: int, lines: int, repeat: int) -> list[list]:
    """(b): rows for many files with a few new lines each, feed_many vs the per-item loop."""
    try:
        from alertd.parse.many import feed_many
    except ImportError:
        feed_many = None
    from writer import line  # the live benchmarks' record
    rng = random.Random(7)
    datas = [b"".join(line(s, rng, nan=rng.random() < 0.01) for s in range(lines)) for _ in range(files)]

    def items():
        return [(make_parser("jsonl"), d) for d in datas]

    loop, many = [], []
    for _ in range(repeat):
        batch = items()
        loop.append(timed(lambda: [p.feed(d) for p, d in batch]))
        if feed_many is not None:
            batch = items()
            many.append(timed(lambda: feed_many(batch)))
    label = f"live: {files} files x {lines} lines"
    if feed_many is None:
        return [[label, "n/a (no alertd.parse.many)", f"{bl.med(loop) * 1e3:.1f} ms (per-item loop)", "n/a"]]
    r = bl.med(many) / bl.med(loop)
    return [[label, f"{bl.med(many) * 1e3:.1f} ms (feed_many)", f"{bl.med(loop) * 1e3:.1f} ms (per-item loop)",
             f"{r:.3f}x ({1 / r:.0f}x faster)"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    ap.add_argument("--repeat", type=int, help="repeats per figure")
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the replayed file")
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--lines", type=int, default=5, help="new lines per file in (b)")
    ap.add_argument("--only", choices=("replay", "live"), help="one part only")
    a = ap.parse_args()
    repeat = a.repeat or (3 if a.quick else 7)
    info = bl.machine({"polars_threads": pl.thread_pool_size(), "repeat": repeat})
    bl.print_machine(info)
    rows = []
    if a.only != "live":
        from replay_throughput import data_file
        rows += replay_rows(data_file(a.rows, bl.RUN_ROOT / "data"), repeat)
    if a.only != "replay":
        rows += live_rows(a.files, a.lines, repeat)
    print(bl.table(["what", "alertd", "baseline", "ratio"], rows))
    print(f"loadavg at end: {bl.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
