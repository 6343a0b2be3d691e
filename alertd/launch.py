"""The `alertd` console script: polars' thread pool is sized here, before polars is imported.

`alertd run` is a sidecar of a training job: its passes read frames of a few thousand rows, for
which a pool of threads costs more in hand-offs than it saves (500 files: ~35% of a core with
two threads, ~29% with one), and its cores are the job's (data loaders). So it runs polars on
one thread unless POLARS_MAX_THREADS says otherwise; replay and the other commands keep polars'
default (every core). polars reads the variable once, at import.
"""
from __future__ import annotations

import os
import sys

SIDECAR_COMMANDS = ("run",)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command in SIDECAR_COMMANDS and "polars" not in sys.modules:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")
    from alertd.cli import main as cli_main
    return cli_main(argv)
