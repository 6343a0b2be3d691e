"""argparse subcommands for the alertd CLI: `alertd probe ...` and `alertd ckpt diff ...`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from alertd.probe.writer import DEFAULT_PATH


def add_probe_args(parser: argparse.ArgumentParser) -> None:
    """Options of `alertd probe`."""
    parser.add_argument("--out", default=DEFAULT_PATH, help="JSONL stream to write (default %(default)s)")
    parser.add_argument("--every", type=int, default=10, help="write every N optimizer steps")
    parser.add_argument("--ratio-every", type=int, default=None,
                        help="measure update_ratio/weight_norm every N steps (default: the first multiple of --every from 50)")
    parser.add_argument("--hold-s", type=float, default=None,
                        help="hold records due within this many seconds of the last write and write them "
                             "together (default 1; 0 writes each at once)")
    parser.add_argument("--grad-accum", type=int, default=None, help="expected micro-batches per step (meta)")
    parser.add_argument("--num-classes", type=int, default=None, help="number of classes (meta)")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- python train.py ARGS")


def probe_command(args: argparse.Namespace) -> int:
    """Handler of `alertd probe`."""
    from alertd.probe.attach import run_attached
    return run_attached(args.argv, out=args.out, every=args.every, ratio_every=args.ratio_every,
                        grad_accum=args.grad_accum, num_classes=args.num_classes, hold_s=args.hold_s)


def ckpt_diff_command(args: argparse.Namespace) -> int:
    """Handler of `alertd ckpt diff`."""
    from alertd.probe.ckpt import diff_files, format_table
    try:
        result: dict[str, Any] = diff_files(args.a, args.b)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"alertd ckpt diff: {e}", file=sys.stderr)
        return 2
    if args.json:
        result["changed"] = result["changed"][: args.top] if args.top else result["changed"]
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result, top=args.top))
    return 0


def register(subparsers: Any) -> None:
    """Add `probe` and `ckpt` (with `diff`) to the CLI's subparsers; each sets func(args) -> int."""
    p = subparsers.add_parser("probe", help="run a training script with the probe attached",
                              description="alertd probe [--out PATH] [--every N] [--ratio-every N] "
                                          "-- python train.py ARGS")
    add_probe_args(p)
    p.set_defaults(func=probe_command)
    c = subparsers.add_parser("ckpt", help="checkpoint tools")
    csub = c.add_subparsers(dest="ckpt_command", required=True)
    d = csub.add_parser("diff", help="compare two checkpoints tensor by tensor")
    d.add_argument("a", help="first checkpoint (.pt)")
    d.add_argument("b", help="second checkpoint (.pt)")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.add_argument("--top", type=int, default=20, help="show the N largest changes (0: all)")
    d.set_defaults(func=ckpt_diff_command)
