"""`alertd report FILE...`: replay finished runs and write a one-page HTML summary."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def report_command(args: argparse.Namespace) -> int:
    """Handler of `alertd report`."""
    from alertd.cli import _fail, _load
    from alertd.evaluate import Engine
    from alertd.replay import InputError
    from alertd.report.collect import collect
    from alertd.report.html import render
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    ruleset, cli_vars = loaded
    for path in args.files:
        if not os.path.isfile(path):
            return _fail(f"{path}: no such file")
    try:
        runs = collect(args.files, Engine(ruleset, cli_vars), args.format)
    except (InputError, ValueError) as e:  # ValueError: an unknown --format
        return _fail(str(e))
    for run in runs:
        if run.tally.summary(run.path):
            print(run.tally.summary(run.path), file=sys.stderr)
    title = args.title or "alertd report: " + ", ".join(os.path.basename(p) for p in args.files)
    page = render(runs, title, ", ".join(args.rules or []))
    if args.html in (None, "-"):
        sys.stdout.write(page)
        return 0
    tmp = args.html + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, args.html)  # a browser open on the old page never sees half a file
    episodes = sum(len(r.episodes) for r in runs)
    print(f"alertd: wrote {args.html} ({len(runs)} runs, {episodes} alert episodes)", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add `report` to the CLI's subparsers."""
    p = subparsers.add_parser("report", help="one-page HTML summary of finished runs",
                              description="Replay FILEs with the rules and write a self-contained "
                                          "HTML page: every series plotted, alert episodes shaded.")
    p.add_argument("--rules", action="append", metavar="PATH",
                   help="rule file or directory (repeatable; default: the built-in pack)")
    p.add_argument("--var", action="append", metavar="K=V", help="set a rule variable (repeatable)")
    p.add_argument("--format", default="auto", help="input format (default: detect per file)")
    p.add_argument("--html", metavar="OUT", help="write the page here (default: standard output)")
    p.add_argument("--title", help="page title")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=report_command)
