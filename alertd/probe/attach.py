"""Zero-code attach: run `python train.py ARGS` in-process with a Probe on each optimizer it steps.

Usage: `alertd probe [--out PATH] [--every N] [--ratio-every N] -- python train.py ARGS`, or
`python -m alertd.probe.attach [--out PATH] [--every N] -- python train.py ARGS`.
The probe attaches at an optimizer's first step (global step pre-hook), so that step is
not measured and the preflight record comes at step 2. The model is the root module
(not a child of another module) holding most of the optimizer's parameters; with none,
parameters are grouped by optimizer param group. Loss and labels are not visible
without user code: records hold gradients, has_grad, update ratios, lr and non-finite
gradient counts. A second optimizer writes to `<out>.opt1.jsonl`, and so on.
"""
from __future__ import annotations

import gc
import os
import runpy
import sys
import traceback
import warnings
from collections.abc import Sequence

from alertd.probe.writer import DEFAULT_PATH


def find_model(optimizer: "torch.optim.Optimizer") -> "torch.nn.Module | None":  # noqa: F821
    """The root module sharing the most parameters with the optimizer (largest on a tie)."""
    from torch import nn
    ids = {id(p) for pg in optimizer.param_groups for p in pg["params"]}
    with warnings.catch_warnings():  # isinstance() pokes deprecated lazy module attributes
        warnings.simplefilter("ignore")
        modules = [o for o in gc.get_objects() if isinstance(o, nn.Module)]
    children = {id(c) for m in modules for c in m.children()}
    best, best_key = None, (0, 0)
    for m in modules:
        if id(m) in children:
            continue
        params = list(m.parameters())
        key = (sum(1 for p in params if id(p) in ids), len(params))
        if key[0] > 0 and key > best_key:
            best, best_key = m, key
    return best


def _suffixed(path: str, i: int) -> str:
    root, ext = os.path.splitext(path)
    return path if i == 0 else f"{root}.opt{i}{ext or '.jsonl'}"


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def run_attached(argv: Sequence[str], out: str = DEFAULT_PATH, every: int = 10,
                 grad_accum: int | None = None, num_classes: int | None = None,
                 ratio_every: int | None = None, hold_s: float | None = None) -> int:
    """Run `[python] script.py ARGS` (or `-m module ARGS`) with probes attached; return its exit code."""
    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    if args and os.path.basename(args[0]).startswith("python"):
        args = args[1:]
    if not args or (args[0] == "-m" and len(args) < 2):
        print("alertd probe: nothing to run (expected: -- python train.py ARGS)", file=sys.stderr)
        return 2
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from alertd.probe.probe import HOLD_S, Probe
    hold_s = HOLD_S if hold_s is None else hold_s
    probes: dict[int, Probe] = {}

    def on_step(optimizer: torch.optim.Optimizer, a: object, kw: object) -> None:
        if id(optimizer) not in probes:  # the probe holds the optimizer, so ids stay unique
            probes[id(optimizer)] = Probe(find_model(optimizer), optimizer,
                                          path=_suffixed(out, len(probes)), every=every,
                                          ratio_every=ratio_every, hold_s=hold_s,
                                          grad_accum=grad_accum, num_classes=num_classes, _late=True)

    handle = register_optimizer_step_pre_hook(on_step)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = args
            sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))  # as `python script.py`
            runpy.run_path(args[0], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:  # the script's own failure: report it like python would
        traceback.print_exc()
        code = 1
    finally:
        handle.remove()
        sys.argv, sys.path[:] = saved_argv, saved_path
        for p in probes.values():
            p.close()
    if not probes:
        print("alertd probe: the script never stepped an optimizer; nothing written", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m alertd.probe.attach [--out PATH] [--every N] -- python train.py ARGS`."""
    import argparse

    from alertd.probe.commands import add_probe_args, probe_command
    parser = argparse.ArgumentParser(prog="python -m alertd.probe.attach")
    add_probe_args(parser)
    return probe_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
