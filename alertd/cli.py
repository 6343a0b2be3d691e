"""The `alertd` command line: replay, run, check, test, probe, ckpt.

Exit codes: 0 evaluation completed (alerts or not); 1 `alertd test` found mismatches;
2 unusable input or rules (a one-line error naming file and line on stderr).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from importlib import resources
from pathlib import Path

from alertd.parse.detect import check_format
from alertd.record import AlertEvent


COMMAND_MODULES = ("alertd.ruletest", "alertd.probe.commands", "alertd.watch", "alertd.status", "alertd.silence_cli",
                   "alertd.report.commands")


def builtin_rules() -> str:
    """The directory of the built-in rule pack (shipped in the package as alertd.pack)."""
    return str(resources.files("alertd.pack"))


def parse_vars(items: list[str]) -> dict:
    """`--var K=V` pairs -> {K: number or string}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--var {item!r}: expected NAME=VALUE")
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def format_event(event: AlertEvent, output: str) -> str:
    """One line per event: JSON, or text a person scans."""
    if output == "json":
        return event.to_json()
    value = "?" if event.value is None else f"{event.value:.6g}"
    labels = " ".join(f"{k}={v}" for k, v in event.labels.items() if k != "severity")
    return (f"{event.state.upper():8} {event.rule}  run={event.run} step={event.step} value={value} "
            f"severity={event.severity}{'  ' + labels if labels else ''}  | {event.summary}")


def _duration(text: str) -> float:
    from alertd.silence_cli import parse_duration
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fail(message: str) -> int:
    print(f"alertd: {message}", file=sys.stderr)
    return 2


def _load(args):
    """Rules and variables of a command, or an exit code."""
    from alertd.rules.rulefile import RuleError, load_rules
    try:
        cli_vars = parse_vars(args.var)
        return load_rules(args.rules or [builtin_rules()]), cli_vars
    except RuleError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    except ValueError as e:
        return _fail(str(e))


def cmd_replay(args) -> int:
    from alertd.evaluate import Engine
    from alertd.replay import InputError, replay_file
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    ruleset, cli_vars = loaded
    engine = Engine(ruleset, cli_vars)
    emit = lambda e: print(format_event(e, args.output), flush=False)  # noqa: E731
    for path in args.files:
        if not Path(path).is_file():
            return _fail(f"{path}: no such file")
        try:
            from alertd.status import progress  # a bar on a terminal's stderr, nothing when piped
            tally = replay_file(engine, path, args.format, emit, progress=progress(Path(path).stat().st_size))
        except InputError as e:
            sys.stdout.flush()
            return _fail(str(e))
        if tally.summary(path):
            print(tally.summary(path), file=sys.stderr)
    sys.stdout.flush()
    return 0


def cmd_run(args) -> int:
    import logging

    from alertd.daemon import Daemon, Options
    from alertd.evaluate import Engine
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    ruleset, cli_vars = loaded
    # Warnings (a failed delivery, an unreadable file) go to stderr; secrets are masked in every
    # record (notify/secrets.py), whoever logs it.
    logging.basicConfig(level=logging.WARNING, format="alertd: %(levelname)s: %(message)s")
    if args.state_dir:
        Path(args.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    delivery = policy = None
    if args.notify or args.config:
        from alertd.notify.apprise_sink import AppriseSink
        from alertd.notify.delivery import Delivery
        from alertd.notify.outbox import Outbox
        from alertd.notify.policy import Policy
        from alertd.notify.routes import Routes
        from alertd.notify.silence import Silences
        try:
            sink = AppriseSink(args.notify or [], args.config)
            routes = Routes.parse(args.route)
        except ValueError as e:
            return _fail(str(e))
        outbox_dir = str(Path(args.state_dir) / "outbox") if args.state_dir else None
        # A PNG of the tripping series goes with each notification where Pillow is installed.
        from alertd.report import plot
        pictures = str(Path(args.state_dir) / "pictures") if args.state_dir else tempfile.mkdtemp(prefix="alertd-")
        delivery = Delivery(Outbox(outbox_dir, plot.with_picture(sink.send, pictures),
                                   base_backoff=args.retry_base, max_backoff=args.retry_max))
        policy = Policy(repeat_interval=args.repeat_interval or None, storm_limit=args.storm_limit,
                        storm_window=args.storm_window, group_by_run=not args.no_group,
                        silences=Silences(args.state_dir), routes=routes,
                        send_resolved=not args.no_resolved)
    options = Options(patterns=args.paths, fmt=args.format, poll=args.poll or 1.0,
                      force_poll=args.poll is not None, from_end=args.from_end, state_dir=args.state_dir,
                      rule_paths=list(args.rules or [builtin_rules()]), cli_vars=cli_vars,
                      drain_timeout=args.drain_timeout)
    emit = lambda e: print(format_event(e, args.output), flush=True)  # noqa: E731
    outputs = _cluster_outputs(args)
    if isinstance(outputs, int):
        return outputs
    extras, hooks, stops = outputs
    try:
        engine = Engine(ruleset, cli_vars, long_every=args.long_window_every or None)
        daemon = Daemon(engine, options, emit, delivery, policy, extras=extras, **hooks)
        return daemon.run()
    except ValueError as e:  # an unreadable state file
        return _fail(str(e))
    finally:
        for stop in stops:
            stop()


def _cluster_outputs(args):
    """Alertmanager destinations and the /metrics endpoint, from --alertmanager / --metrics-listen."""
    from alertd.notify.delivery import Delivery
    from alertd.notify.outbox import Outbox
    extras, hooks, stops = [], {}, []
    for i, url in enumerate(args.alertmanager or []):
        from alertd.export.alertmanager import AlertmanagerSink
        sink = AlertmanagerSink(url)
        box = str(Path(args.state_dir) / f"alertmanager{i}") if args.state_dir else None
        extras.append(Delivery(Outbox(box, sink.send, name="alertmanager",
                                      base_backoff=args.retry_base, max_backoff=args.retry_max)))
    if args.metrics_listen:
        from alertd.export.metrics import LatestValues, MetricsServer, snapshot
        host, _, port = args.metrics_listen.rpartition(":")
        try:
            port_number = int(port)
        except ValueError:
            return _fail(f"--metrics-listen {args.metrics_listen!r}: expected HOST:PORT")
        latest, published = LatestValues(), {"snap": {}}
        server = MetricsServer(lambda: published["snap"], host or "127.0.0.1", port_number).start()
        hooks["on_parsed"] = lambda path, parsed: latest.update(path, parsed.frame)
        hooks["after_step"] = lambda engine: published.update(snap=snapshot(engine, latest))
        stops.append(server.stop)
    return extras, hooks, stops


def cmd_check(args) -> int:
    from alertd.rules.rulefile import RuleError, load_rules
    try:
        ruleset = load_rules(args.rules)
    except RuleError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    print(f"ok: {len(ruleset.rules)} rules in {len(ruleset.files)} files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="alertd", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--rules", action="append", metavar="PATH",
                       help="rule file or directory (repeatable; default: the built-in pack)")
        p.add_argument("--var", action="append", metavar="K=V", help="set a rule variable (repeatable)")
        p.add_argument("--format", default="auto", type=check_format,
                       help="auto|jsonl|text|csv|tensorboard|trainer_state|scalars_json|regex:PATTERN")
        p.add_argument("--output", default="text", choices=["text", "json"])

    p = sub.add_parser("replay", help="evaluate finished logs and print every alert event")
    common(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("run", help="tail logs, evaluate as records arrive, print and notify")
    common(p)
    p.add_argument("--notify", action="append", metavar="URL",
                   help="apprise URL; ${ENV} references are expanded (repeatable)")
    p.add_argument("--config", metavar="FILE", help="apprise config file (URLs with tags)")
    p.add_argument("--state-dir", metavar="DIR", help="where offsets, alert states and the outbox persist")
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="force polling every SECONDS (for NFS/Lustre/FUSE, where inotify is silent)")
    p.add_argument("--from-end", action="store_true", help="start at the end of existing files")
    p.add_argument("--long-window-every", type=_duration, default=5.0, metavar="DURATION",
                   help="evaluate rules whose windows span 50+ records every DURATION (default 5s; "
                        "0 = on every pass): the same events, a fraction of the CPU")
    p.add_argument("--repeat-interval", type=_duration, default=4 * 3600.0, metavar="DURATION",
                   help="re-notify an alert still firing this often (default 4h; 0 = never)")
    p.add_argument("--storm-limit", type=int, default=20, metavar="N",
                   help="at most N notifications per --storm-window; the rest go out as one digest")
    p.add_argument("--storm-window", type=_duration, default=60.0, metavar="DURATION",
                   help="window of --storm-limit (default 1m)")
    p.add_argument("--no-group", action="store_true",
                   help="one notification per alert (default: alerts of one run in one pass are one)")
    p.add_argument("--no-resolved", action="store_true", help="do not notify when an alert resolves")
    p.add_argument("--alertmanager", action="append", metavar="URL",
                   help="also post alerts to this Alertmanager (v2 API), for its grouping, silences and HA")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus /metrics (latest values, alert states); host defaults to 127.0.0.1")
    p.add_argument("--route", action="append", metavar="MATCHERS:TAGS",
                   help="send matching alerts to the apprise URLs with these tags, e.g. "
                        "severity=critical:oncall (repeatable; first match wins; none: every URL)")
    # Delivery retry backoff in seconds (doubling from base up to max); hidden: for tests and tuning.
    p.add_argument("--retry-base", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--retry-max", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--drain-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="+", metavar="PATH_OR_GLOB")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate rule files")
    p.add_argument("rules", nargs="+", metavar="RULES")
    p.set_defaults(func=cmd_check)

    # Commands that live beside the data they work on register themselves.
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
