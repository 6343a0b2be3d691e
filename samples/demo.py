"""The README's first command: alertd tailing a training log as a writer appends to it.

A small writer copies a sample log (a real broken training, see samples/README.md) line by line
into a fresh file, at a training-like rate; `alertd run` tails that file with the built-in rule
pack, prints each alert as it fires, and sends it to a webhook receiver on 127.0.0.1 that this
script runs and prints from. Nothing listens beyond 127.0.0.1; everything is stopped at the end.

    python samples/demo.py [--log samples/logs/FILE] [--rate 200] [--var num_classes=400]
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LOG = HERE / "logs" / "b12_ce_chance_400.log"  # labels shuffled from step 300


def start_receiver() -> tuple[ThreadingHTTPServer, list]:
    """A webhook receiver on 127.0.0.1 (apprise json://) that prints what arrives."""
    received: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = {"title": body[:200].decode("utf-8", "replace")}
            received.append(doc)
            print(f"  [webhook received] {doc.get('title', '')}", flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def write_slowly(source: Path, target: Path, rate: float, stop: threading.Event) -> None:
    """Append the source log's lines to target at `rate` lines/s, flushing each."""
    with open(source, "rb") as src, open(target, "ab", buffering=0) as out:
        t0 = time.monotonic()
        for i, line in enumerate(src):
            if stop.is_set():
                return
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.write(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG, help="sample log to replay as a live run")
    ap.add_argument("--rate", type=float, default=200.0, help="lines per second")
    ap.add_argument("--var", action="append", default=["num_classes=400"],
                    help="rule variable K=V for alertd (default: num_classes=400, as the sample was trained)")
    ap.add_argument("--timeout", type=float, default=50.0, help="give up after this many seconds")
    a = ap.parse_args(argv)
    if not a.log.is_file():
        print(f"demo: {a.log}: no such sample log (run python samples/make_samples.py)", file=sys.stderr)
        return 2
    server, received = start_receiver()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory(prefix="alertd-demo-") as tmp:
        live = Path(tmp) / a.log.name
        live.touch()
        cmd = [sys.executable, "-m", "alertd", "run", "--notify", f"json://127.0.0.1:{port}/alerts",
               "--state-dir", str(Path(tmp) / "state"), str(live)]
        for v in a.var:
            cmd += ["--var", v]
        print(f"demo: writing {a.log.name} into {live} at {a.rate:g} lines/s", flush=True)
        print(f"demo: $ alertd run --notify json://127.0.0.1:{port}/alerts {live.name}", flush=True)
        daemon = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
        stop = threading.Event()
        writer = threading.Thread(target=write_slowly, args=(a.log, live, a.rate, stop), daemon=True)
        writer.start()
        fired = []

        def relay():
            for line in daemon.stdout:
                print(f"  [alertd] {line.rstrip()}", flush=True)
                if line.startswith("FIRING"):
                    fired.append(line)

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline and (writer.is_alive() or not received):
            time.sleep(0.2)
        time.sleep(1.0)  # let the last notifications arrive
        stop.set()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        reader.join(timeout=2)
        server.shutdown()
    print(f"demo: {len(fired)} alert(s) fired, {len(received)} notification(s) received", flush=True)
    return 0 if fired and received else 1


if __name__ == "__main__":
    sys.exit(main())
