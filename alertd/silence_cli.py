"""`alertd silence add|list|remove`: mute alerts of a running (or future) `alertd run --state-dir DIR`.

    alertd silence add --state-dir DIR --rule LossSpike --label run='*/exp7/*' --for 2h --comment "known"
    alertd silence list --state-dir DIR
    alertd silence remove --state-dir DIR ID

The silences live in DIR/silences.json (replaced atomically); the daemon re-reads the file when it
changes, so a silence takes effect on its next pass without a restart.
"""
from __future__ import annotations

import argparse
import re
import sys
import time

from alertd.notify.silence import Silence, Silences

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """`90`, `30s`, `10m`, `2h`, `1d` -> seconds; raises ValueError."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 10m, 2h, 1d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_silence(args) -> int:
    silences = Silences(args.state_dir)
    now = time.time()
    if args.action == "add":
        matchers = {}
        for item in args.label or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                print(f"alertd: --label {item!r}: expected NAME=GLOB", file=sys.stderr)
                return 2
            matchers[key] = value
        sid = silences.add(Silence(rule=args.rule, matchers=matchers, expires=now + args.duration,
                                   comment=args.comment or ""))
        print(sid)
        return 0
    if args.action == "remove":
        if not silences.remove(args.id):
            print(f"alertd: no silence with id {args.id}", file=sys.stderr)
            return 1
        return 0
    for s in silences.all():
        left = s.expires - now
        status = f"{left / 60:.0f}m left" if left > 0 else "expired"
        labels = " ".join(f"{k}={v}" for k, v in s.matchers.items())
        print(f"{s.id}  rule={s.rule}{'  ' + labels if labels else ''}  {status}"
              f"{'  # ' + s.comment if s.comment else ''}")
    return 0


def register(sub) -> None:
    """Add the `silence` command to the CLI's subparsers."""
    p = sub.add_parser("silence", help="add, list or remove silences of a daemon's state dir")
    acts = p.add_subparsers(dest="action", required=True)
    a = acts.add_parser("add", help="mute a rule (and labels) for a while; prints the silence id")
    a.add_argument("--rule", required=True, help="rule name (shell glob)")
    a.add_argument("--label", action="append", metavar="K=GLOB",
                   help="label (or run) that must match (repeatable)")
    a.add_argument("--for", dest="duration", required=True, type=_duration, metavar="DURATION",
                   help="how long, e.g. 30m, 2h, 1d")
    a.add_argument("--comment", help="why (shown by list)")
    ls = acts.add_parser("list", help="list silences")
    rm = acts.add_parser("remove", help="delete a silence by id")
    rm.add_argument("id")
    for q in (a, ls, rm):
        q.add_argument("--state-dir", required=True, metavar="DIR", help="the daemon's --state-dir")
    p.set_defaults(func=cmd_silence)
