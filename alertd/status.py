"""`alertd status --state-dir DIR`: what a running (or stopped) daemon tails, and what fires. Read-only.

It reads the daemon's state file, `DIR/state.json` (alertd/persist.py), and nothing else:
    {"version": 1,
     "offsets": {"version": 1, "files": {PATH: {"offset": bytes read, "dev", "ino", ...}}},
     "engine":  {"runs": {RUN: {"last_step", "last_time", "records",
                                "instances": {RULE \\x1f K=V ...: {"carry": {"firing": bool, "fired_step"}}},
                                "stale": {RULE: {"firing": bool}}}}},   # alertd/state.py snapshot
     "policy":  {"alerts": {KEY: {"event": AlertEvent dict}}}}          # the last firing event per alert
The file is replaced atomically by the daemon, so a read sees one whole state. An older state dir
with only `offsets.json` (read positions) lists the files without steps or alerts.

Also here: `progress(total_bytes)`, the progress bar `alertd replay` shows on a terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, TextIO

SEP = "\x1f"  # alertd/state.py joins a rule and its bindings with this


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def collect(state_dir: str, now: float | None = None) -> dict[str, Any]:
    """{"runs": [...], "alerts": [...]} from a state dir; ValueError if there is no usable state in it."""
    now = time.time() if now is None else now
    try:
        state = _read(os.path.join(state_dir, "state.json"))
        offsets = (state or {}).get("offsets") or _read(os.path.join(state_dir, "offsets.json")) or {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{state_dir}: unreadable state: {e}") from None
    if state is None and not offsets:
        raise ValueError(f"{state_dir}: no state.json (is this the --state-dir of `alertd run`?)")
    engine_runs = ((state or {}).get("engine") or {}).get("runs") or {}
    files = offsets.get("files") or {}
    events = {}
    for alert in (((state or {}).get("policy") or {}).get("alerts") or {}).values():
        ev = alert.get("event") if isinstance(alert, dict) else None
        if isinstance(ev, dict):
            events[(ev.get("run"), ev.get("rule"))] = ev
    runs, alerts = [], []
    for name in sorted(set(engine_runs) | set(files)):
        run = engine_runs.get(name) or {}
        pos = files.get(name) or {}
        try:
            size = os.stat(name).st_size
        except OSError:
            size = None
        last_time = run.get("last_time")
        runs.append({"run": name, "last_step": run.get("last_step"), "last_time": last_time,
                     "age_s": None if last_time is None else round(now - last_time, 1),
                     "records": run.get("records"), "offset": pos.get("offset"), "size": size,
                     "behind_bytes": None if size is None or pos.get("offset") is None
                     else max(0, size - pos["offset"])})
        firing = [(key.split(SEP)[0], dict(kv.split("=", 1) for kv in key.split(SEP)[1:] if "=" in kv),
                   inst.get("carry") or {}) for key, inst in (run.get("instances") or {}).items()]
        firing += [(rule, {}, carry) for rule, carry in (run.get("stale") or {}).items()]
        for rule, binding, carry in firing:
            if not isinstance(carry, dict) or not carry.get("firing"):
                continue
            ev = events.get((name, rule), {})
            alerts.append({"run": name, "rule": rule, "series": binding, "since_step": carry.get("fired_step"),
                           "severity": ev.get("severity"), "value": ev.get("value"),
                           "summary": ev.get("summary", "")})
    return {"state_dir": state_dir, "runs": runs, "alerts": alerts}


def _when(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    age = now - t
    ago = f"{age:.0f}s" if age < 120 else f"{age / 60:.0f}m" if age < 7200 else f"{age / 3600:.1f}h"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} ({ago} ago)"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_text(info: dict[str, Any], now: float | None = None) -> str:
    """The status as two tables a person scans: runs, then firing alerts."""
    now = time.time() if now is None else now
    out = [f"runs ({len(info['runs'])}):"]
    rows = [["RUN", "LAST STEP", "LAST RECORD", "BEHIND"]]
    rows += [[r["run"], "-" if r["last_step"] is None else str(r["last_step"]), _when(r["last_time"], now),
              "-" if r["behind_bytes"] is None else f"{r['behind_bytes']} B"] for r in info["runs"]]
    out.append(_table(rows) if info["runs"] else "  (none)")
    out.append(f"\nfiring ({len(info['alerts'])}):")
    rows = [["RUN", "ALERT", "SERIES", "SINCE STEP", "SUMMARY"]]
    rows += [[a["run"], a["rule"], ",".join(f"{k}={v}" for k, v in a["series"].items()) or "-",
              "-" if a["since_step"] is None else str(a["since_step"]), a["summary"]] for a in info["alerts"]]
    out.append(_table(rows) if info["alerts"] else "  (none)")
    return "\n".join(out)


def status_command(args: argparse.Namespace) -> int:
    """Handler of `alertd status`."""
    try:
        info = collect(args.state_dir)
    except ValueError as e:
        print(f"alertd: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=1) if args.json else format_text(info))
    return 0


def progress(total_bytes: int, stream: TextIO | None = None, min_interval: float = 0.2) -> Callable[[int], None] | None:
    """A callback for replay_file(progress=...) that draws a bar on stream; None when stream is no terminal.

        tally = replay_file(engine, path, fmt, emit, progress=progress(os.path.getsize(path)))
    """
    stream = sys.stderr if stream is None else stream
    if not stream.isatty() or total_bytes <= 0:
        return None  # piped or redirected: print nothing extra
    done, last = 0, 0.0
    shift, unit = (20, "MiB") if total_bytes >= 1 << 20 else (10, "KiB")

    def step(nbytes: int) -> None:
        nonlocal done, last
        done += nbytes
        now = time.monotonic()
        if now - last < min_interval and done < total_bytes:
            return
        last = now
        frac = min(1.0, done / total_bytes)
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total_bytes else ""
        stream.write(f"\r[{bar:<30}] {frac:6.1%} {done >> shift}/{total_bytes >> shift} {unit}{end}")
        stream.flush()
    return step


def register(subparsers: Any) -> None:
    """Add `status` to the CLI's subparsers."""
    p = subparsers.add_parser("status", help="runs being tailed, their last step, and the alerts firing")
    p.add_argument("--state-dir", required=True, metavar="DIR", help="the --state-dir of `alertd run`")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=status_command)
