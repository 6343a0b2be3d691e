"""Hot reload of rule files: a valid change takes effect at once, an invalid one is refused.

    watcher = RuleWatcher(["rules/", "mine.yaml"], cli_vars, err=sys.stderr)
    engine = watcher.check(engine)   # each pass: the same engine, or a new one with the old state

The rule files' (mtime, size, inode) are compared on each check (a few stats: cheap enough to do
on every pass of the read loop, and it works where inotify does not). A change is loaded once the
files have stayed the same for `settle` seconds (an editor saving in place truncates first: a
half-written file must not replace the rules), then validated in full; on success a new Engine gets the old one's snapshot, and state.restore keeps
the state of every rule whose fingerprint did not change. On failure every problem is printed as
file:line and the running rules stay.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from alertd.evaluate import Engine
from alertd.rules.rulefile import RuleError, load_rules, rule_files
from alertd.state import restore, snapshot


def _signature(paths: list[str]) -> tuple:
    sig = []
    for f in rule_files(paths) + [p for p in paths if os.path.isdir(p)]:
        try:
            st = os.stat(f)
            sig.append((f, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            sig.append((f, None))
    return tuple(sorted(sig, key=str))


class RuleWatcher:
    """Reloads the rules of a running engine when their files change."""

    def __init__(self, paths: list[str], cli_vars: dict, err: TextIO = sys.stderr, settle: float = 0.3,
                 clock=time.monotonic):
        self.paths, self.cli_vars, self.err = list(paths), cli_vars, err
        self.settle, self._clock = settle, clock
        self._seen = _signature(self.paths)
        self._changed: tuple | None = None  # (signature, when first seen) of a change not yet loaded

    def pending(self) -> bool:
        """True while a change waits to settle (the caller should check again soon)."""
        return self._changed is not None

    def check(self, engine: Engine) -> Engine:
        """The engine to use from now on: `engine` itself, or a reloaded one carrying its state."""
        sig, now = _signature(self.paths), self._clock()
        if sig == self._seen:
            self._changed = None
            return engine
        if self._changed is None or self._changed[0] != sig:
            self._changed = (sig, now)  # still being written, maybe: wait for it to settle
            return engine
        if now - self._changed[1] < self.settle:
            return engine
        self._seen, self._changed = sig, None
        try:
            ruleset = load_rules(self.paths)
            if not ruleset.rules:
                raise RuleError([f"{', '.join(ruleset.files)}: no rules (an empty or half-written file?)"])
        except RuleError as e:
            for p in e.problems:
                print(p, file=self.err)
            print(f"alertd: rules not reloaded ({len(e.problems)} problem(s)); "
                  f"keeping the {len(engine.rules) + len(engine.stale_rules)} running rules",
                  file=self.err, flush=True)
            return engine
        except OSError as e:  # a file removed between listing and reading: the next pass retries
            self._seen = ()
            print(f"alertd: rules not reloaded: {e}", file=self.err, flush=True)
            return engine
        new = Engine(ruleset, self.cli_vars, clock=engine.clock, long_every=engine.long_every)
        restore(new, snapshot(engine))
        print(f"alertd: reloaded {len(ruleset.rules)} rules from {len(ruleset.files)} file(s)",
              file=self.err, flush=True)
        return new
