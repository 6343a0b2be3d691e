"""`alertd watch -- COMMAND...`: run a training command, evaluate the rules on its output live.

The child's stdout and stderr pass through unchanged (watch_child.py); complete lines and tqdm's
\\r updates of each stream go to that stream's parser and the engine, as do the metric files named
with --also (tailed as `alertd run` tails them). Events go to stderr, so stdout stays the child's,
and to the apprise URLs. A firing rule with `action: stop` stops the child (SIGINT, SIGTERM after
--grace seconds, SIGKILL after another); a child that dies is reported as `RunDied` with its last
lines; SIGINT/SIGTERM sent to watch are forwarded to the child; watch exits with the child's code
(128+N when signal N killed it, as a shell reports it).
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Callable

from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.record import FIRING, AlertEvent
from alertd.replay import Tally
from alertd.watch_child import STREAMS, Child, Stopper

TICK = 0.2            # seconds between looks at --also files, no-data rules and the stop escalation
EOF_WAIT = 10.0       # after the child exits, how long its output may still be arriving (a grandchild
                      # that inherited the pipes can hold them open for ever: then we stop waiting)
MAX_PARTIAL = 1 << 20  # an unterminated "line" longer than this is parsed as it is


def run_name(argv: list[str], name: str | None) -> str:
    """The run's name in events: --name, else the script (train.py in `python train.py`), else the program."""
    if name:
        return name
    scripts = [a for a in argv[1:] if a.endswith((".py", ".sh")) and not a.startswith("-")]
    return os.path.basename(scripts[0] if scripts else argv[0])


def died_event(run: str, argv: list[str], rc: int, step: int, lines: list[str], stopped_by: str) -> AlertEvent:
    """The RunDied event: exit code (or signal) and the last lines printed."""
    how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
    why = f" after alertd stopped it ({stopped_by})" if stopped_by else ""
    return AlertEvent(rule="RunDied", state=FIRING, run=run, step=step, value=float(rc), severity="critical",
                      labels={"exit_code": str(rc)}, summary=f"{' '.join(argv)} {how}{why}",
                      description="last lines:\n" + "\n".join(lines), time=time.time())


class Watch:
    """One watched command: its streams and --also files feed one engine."""

    def __init__(self, engine: Engine, argv: list[str], emit: Callable[[AlertEvent], None], notify=None,
                 also: list[str] = (), fmt: str = "auto", grace: float = 30.0, tee: str | None = None,
                 name: str | None = None, err=sys.stderr):
        self.engine, self.argv, self.emit, self.notify, self.err = engine, argv, emit, notify, err
        self.fmt, self.grace, self.tee = fmt, grace, tee
        self.name = run_name(argv, name)
        self.parsers = {s: make_parser(fmt) for s in STREAMS}
        self.rest = {s: b"" for s in STREAMS}
        self.tailer = None
        if also:
            from alertd.sources import Discovery, Tailer
            self.tailer = Tailer(Discovery(list(also)))
        self.also_parsers: dict[str, Any] = {}
        self.tallies: dict[str, Tally] = {}
        self.child: Child | None = None
        self.stopper: Stopper | None = None

    def _say(self, text: str) -> None:
        print(f"alertd: {text}", file=self.err, flush=True)

    # -- evaluation --------------------------------------------------------------------
    def _stream(self, stream: str, data: bytes, final: bool = False) -> list[AlertEvent]:
        buf = self.rest[stream] + data
        cut = len(buf) if final or len(buf) > MAX_PARTIAL else max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
        done, self.rest[stream] = buf[:cut], buf[cut:]
        if not done:
            return []
        if final and not done.endswith((b"\n", b"\r")):
            done += b"\n"
        self.child.remember(stream, done.decode("utf-8", errors="replace"))
        parsed = self.parsers[stream].feed(done)
        return self.engine.feed(f"{self.name}:{stream}", parsed, now=time.time())

    def _also(self) -> list[AlertEvent]:
        events = []
        for path, chunk in self.tailer.poll() if self.tailer else ():
            parser = self.also_parsers.get(path)
            if parser is None:
                parser = self.also_parsers[path] = make_parser("auto", path)
                self.tallies[path] = Tally()
            if chunk.reset:
                parser.reset()
            parsed = parser.feed(chunk.data)
            self.tallies[path].add(parsed)
            events += self.engine.feed(path, parsed, now=time.time())
        return events

    def _handle(self, events: list[AlertEvent]) -> None:
        for event in events:
            self.emit(event)
            if event.state == FIRING and event.action == "stop" and self.stopper.stop(event.rule):
                self._say(f"{event.rule} fired with action: stop; sending SIGINT to {self.name} "
                          f"(pid {self.child.pid}), SIGTERM after {self.grace:g} s, then SIGKILL")
        if self.notify is not None and events:
            self.notify(events)

    # -- the loop ----------------------------------------------------------------------
    def _forward(self, sig: int, _frame) -> None:
        self.child.signal(sig)

    def run(self) -> int:
        """Run the command to its end; returns its exit code."""
        try:
            self.child = Child(self.argv, tee=self.tee)
        except OSError as e:
            self._say(f"cannot run {self.argv[0]}: {e.strerror or e}")
            return 127
        self.stopper = Stopper(self.child, self.grace)
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signal handlers need it
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._forward)
        try:
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.child.close()
            if self.tailer:
                self.tailer.close()

    def _loop(self) -> int:
        ended: set[str] = set()
        exited_at = None
        while True:
            try:
                stream, data = self.child.output.get(timeout=TICK)
            except queue.Empty:
                stream, data = None, b""
            events = []
            if stream is not None and not data:
                ended.add(stream)
            elif stream is not None:
                events += self._stream(stream, data)
            events += self._also() + self.engine.tick(time.time())
            self._handle(events)
            sent = self.stopper.tick()
            if sent:
                self._say(f"{self.name} still running after {self.grace:g} s: sending {signal.Signals(sent).name}")
            if self.child.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if len(ended) == len(STREAMS) or time.monotonic() - exited_at > EOF_WAIT:
                    break
        events = []
        while True:  # what the pumps queued after the last look
            try:
                stream, data = self.child.output.get_nowait()
            except queue.Empty:
                break
            if data:
                events += self._stream(stream, data)
        for stream in STREAMS:
            events += self._stream(stream, b"", final=True)
        self._handle(events + self._also())
        rc = self.child.poll()
        if rc != 0:
            steps = [r.last_step for r in self.engine.runs.values() if r.last_step is not None]
            event = died_event(self.name, self.argv, rc, max(steps, default=0), self.child.tail(),
                               self.stopper.reason)
            self._handle([event])
            self._say(event.description)
        for path, tally in self.tallies.items():
            if tally.summary(path):
                print(tally.summary(path), file=self.err, flush=True)
        return 128 - rc if rc < 0 else rc


def watch_command(args: argparse.Namespace) -> int:
    """Handler of `alertd watch`."""
    from alertd.cli import _fail, _load, format_event
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        return _fail("watch: no command given (alertd watch [OPTIONS] -- COMMAND...)")
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    ruleset, cli_vars = loaded
    delivery = notify = None
    if args.notify or args.config:
        from alertd.notify.apprise_sink import AppriseSink
        from alertd.notify.delivery import Delivery
        from alertd.notify.outbox import Outbox
        from alertd.notify.policy import Policy
        try:
            sink = AppriseSink(args.notify or [], args.config)
        except ValueError as e:
            return _fail(str(e))
        delivery, policy = Delivery(Outbox(None, sink.send)), Policy(repeat_interval=None)
        notify = lambda events: [delivery.put(n) for n in policy.plan(events, time.time())]  # noqa: E731
        delivery.start()
    emit = lambda e: print("alertd: " + format_event(e, args.output), file=sys.stderr, flush=True)  # noqa: E731
    try:
        return Watch(Engine(ruleset, cli_vars), argv, emit, notify, also=args.also or [], fmt=args.format,
                     grace=args.grace, tee=args.tee, name=args.name).run()
    finally:
        if delivery is not None:
            delivery.drain(timeout=10.0)


def register(subparsers: Any) -> None:
    """Add `watch` to the CLI's subparsers."""
    from alertd.parse.detect import check_format
    p = subparsers.add_parser("watch", help="run a training command and alert on its output live",
                              description="alertd watch [OPTIONS] -- COMMAND...")
    p.add_argument("--rules", action="append", metavar="PATH",
                   help="rule file or directory (repeatable; default: the built-in pack)")
    p.add_argument("--var", action="append", metavar="K=V", help="set a rule variable (repeatable)")
    p.add_argument("--format", default="auto", type=check_format, help="format of the command's output")
    p.add_argument("--output", default="text", choices=["text", "json"], help="how events are printed (stderr)")
    p.add_argument("--notify", action="append", metavar="URL", help="apprise URL (repeatable)")
    p.add_argument("--config", metavar="FILE", help="apprise config file (URLs with tags)")
    p.add_argument("--tee", metavar="FILE", help="also write the command's output (both streams) to FILE")
    p.add_argument("--also", action="append", metavar="PATH_OR_GLOB",
                   help="metric files the command writes (JSONL, TensorBoard, trainer_state.json, ...)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                   help="on action: stop, SIGINT, then SIGTERM and SIGKILL this far apart (default 30)")
    p.add_argument("--name", help="run name in events (default: the script's file name)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the training command")
    p.set_defaults(func=watch_command)
