"""Shared helpers of the bench/ scripts: machine facts, processes stopped by PID, /proc readings,
an in-process webhook receiver on 127.0.0.1, medians, percentiles and markdown tables.

Nothing here imports polars, so a script can set POLARS_MAX_THREADS before it does.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUN_ROOT = BENCH / "run"  # git-ignored (/bench/run/)
# Where `alertd` is imported from by every process the scripts start: this checkout, or another
# tree (ALERTD_SRC=/path/to/export) to measure a commit while the working tree is mid-edit.
SRC = Path(os.environ.get("ALERTD_SRC", REPO)).resolve()
CLK = os.sysconf("SC_CLK_TCK")
# The CLI of the package in SRC (put on PYTHONPATH by start()); -P keeps the current directory off sys.path.
ALERTD = [sys.executable, "-P", "-m", "alertd"]

STARTED: dict[int, subprocess.Popen] = {}


# -- processes: started in their own session, stopped by PID at exit, on error and on signals --
def _on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")


def install_cleanup() -> None:
    """Stop every process this script started at exit and on INT/TERM/HUP (by PID only)."""
    atexit.register(stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def start(argv: list[str], stdout=subprocess.DEVNULL, stderr=None, env: dict | None = None,
          cwd: str | Path | None = None, text: bool = False) -> subprocess.Popen:
    """Popen in a new session, remembered so that stop_all() can end it by PID."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    full_env.update(env or {})
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr if stderr is not None else subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, env=full_env, cwd=cwd, start_new_session=True,
                         text=text, bufsize=1 if text else -1)
    STARTED[p.pid] = p
    return p


def stop(p: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` s; by PID only."""
    if p is None:
        return
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    STARTED.pop(p.pid, None)


def stop_all() -> None:
    for pid in list(STARTED)[::-1]:
        stop(STARTED.get(pid))


def no_storm_limit() -> list[str]:
    """`--storm-limit` high enough that the bound on notifications per minute (an anti-storm
    measure, default 20/min) does not hold back the many onsets a latency run injects."""
    help_text = subprocess.run(ALERTD + ["run", "--help"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": str(SRC)}).stdout
    return ["--storm-limit", "1000000"] if "--storm-limit" in help_text else []


# -- /proc readings ------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(_stat_fields(int(d))[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid, its waited-for children (cutime+cstime) and its live descendants."""
    f = _stat_fields(pid)
    ticks = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for child in _children(pid):
        try:
            ticks += round(cpu_seconds(child) * CLK)
        except OSError:
            pass
    return ticks / CLK


def status_mb(pid: int, key: str = "VmHWM") -> float | None:
    """A /proc/PID/status memory line (VmHWM: peak RSS) in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# -- the machine -----------------------------------------------------------------------------
def machine(extra: dict | None = None) -> dict:
    """nproc, CPU model, RAM, OS, Python, polars (version only, read without importing it)."""
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem_kb = int(open("/proc/meminfo").readline().split()[1])
    try:
        from importlib.metadata import version
        polars_v = version("polars")
    except Exception:
        polars_v = "?"
    info = {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(), "polars": polars_v,
            "alertd_src": str(SRC), "loadavg_start": loadavg()}
    info.update(extra or {})
    return info


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def print_machine(info: dict) -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)


# -- numbers and tables --------------------------------------------------------------------------
def med(values) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def pct(values, q: float) -> float | None:
    """The q-th percentile (nearest rank), so p99 of 100 values is the 99th smallest."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    k = max(1, math.ceil(q / 100 * len(vals)))
    return vals[k - 1]


def fmt(x, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != 0 and abs(x) >= 10 ** 5:
            return f"{x:,.0f}"
        return f"{x:.{nd}g}" if abs(x) < 1 else f"{x:.{nd}f}".rstrip("0").rstrip(".") if nd else f"{x:.0f}"
    return str(x)


def ratio(a, b) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(out)


# -- work directories --------------------------------------------------------------------------
def work_dir(name: str, keep: bool = False) -> Path:
    """A fresh directory under bench/run/, removed at exit unless `keep`."""
    RUN_ROOT.mkdir(exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=name + "-", dir=RUN_ROOT))
    if not keep:
        atexit.register(shutil.rmtree, d, True)
    return d


def save_json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc, indent=1))


# -- an apprise json:// receiver ------------------------------------------------------------------
# "[FIRING] Rule · run f.jsonl · step 12" (a title) or "[FIRING] Rule · f.jsonl · step 12 · ..." (a
# line of a digest's body, when several events of a batch went out as one notification)
ITEM = re.compile(r"\[(FIRING|RESOLVED)\] (\S+) · (?:run )?(\S+) · step (\d+)")


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port); records (arrival time, state, rule, run, step)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        lock = threading.Lock()
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                t = time.time()
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    doc = json.loads(body or b"{}")
                except ValueError:
                    doc = {}
                rec = {"t": t, "title": doc.get("title", ""), "type": doc.get("type")}
                text = rec["title"] + "\n" + str(doc.get("message", ""))
                rec["items"] = [(m.group(1).lower(), m.group(2), m.group(3), int(m.group(4)))
                                for m in ITEM.finditer(text)]
                with lock:
                    posts.append(rec)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def firing(self, rule: str | None = None) -> dict[tuple[str, int], float]:
        """(run file name, step) -> arrival of the first POST that carried that firing event."""
        out: dict[tuple[str, int], float] = {}
        for p in list(self.posts):
            for state, r, run, step in p["items"]:
                if state == "firing" and (rule is None or r == rule):
                    out.setdefault((os.path.basename(run), step), p["t"])
        return out

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LineReader(threading.Thread):
    """Reads a process's stdout, timestamping each line on arrival."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append((time.time(), line))


def firing_events(lines: list[tuple[float, str]]) -> dict[tuple[str, int], float]:
    """(run, step) -> arrival time of the first firing event printed by `alertd run --output json`."""
    out: dict[tuple[str, int], float] = {}
    for t, line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("state") == "firing":
            out.setdefault((ev.get("run"), int(ev.get("step", -1))), t)
    return out
