"""The daemon's memory on disk: one state file per state dir, and a journal of the events printed.

    STATE/state.json     {"version", "offsets", "engine", "policy"}: the read positions, the engine's
                         snapshot (alertd/state.py) and the notification policy, written together
                         (temp file, fsync, rename, 0600), so they always describe the same moment.
    STATE/emitted.jsonl  ids of the events emitted since that file was written (appended, fsynced).

A restarted daemon restores all three and reads on from the offsets, so every record is evaluated
against the state it would have met without the crash. Events emitted after the last save are
emitted again by that re-evaluation: the journal lets the daemon drop the ones it printed already,
and the outbox (which journals the ids of what it queued) drops the notifications it holds already.

    store = StateStore(state_dir)
    checkpoints = Checkpoints(None, store.offsets)    # the Tailer reads its start positions here
    ...
    for event in store.admit(events): print(event)   # only events not printed before a crash
    store.save(checkpoints.to_dict(), engine, policy.to_dict())
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

from alertd.evaluate import Engine
from alertd import statefile as files
from alertd.notify.policy import event_id
from alertd.record import AlertEvent
from alertd.state import restore, snapshot

VERSION = 1
STATE = "state.json"
EMITTED = "emitted.jsonl"


class StateStore:
    """Loads and saves the combined state file of one state dir; journals emitted event ids."""

    def __init__(self, state_dir: str):
        files.ensure_dir(state_dir)
        self.path = os.path.join(state_dir, STATE)
        self.journal = os.path.join(state_dir, EMITTED)
        try:
            data = files.read_json(self.path, {})
        except (OSError, ValueError) as e:
            # Fail loudly: starting empty would re-read every file and page again for old alerts.
            raise ValueError(f"{self.path}: unreadable state file ({e}); move it aside to start over") from e
        if data and data.get("version") != VERSION:
            raise ValueError(f"{self.path}: not an alertd state file (version {VERSION})")
        self.data: dict[str, Any] = data
        self._emitted: set[str] = set(_read_ids(self.journal))

    @property
    def offsets(self) -> dict[str, Any] | None:
        """Saved read positions (Checkpoints.to_dict form), or None."""
        return self.data.get("offsets")

    @property
    def policy(self) -> dict[str, Any] | None:
        """Saved Policy.to_dict(), or None."""
        return self.data.get("policy")

    def restore_engine(self, engine: Engine) -> None:
        """Load the saved engine snapshot into a fresh engine (changed rules start afresh)."""
        if self.data.get("engine"):
            restore(engine, self.data["engine"])

    def admit(self, events: Iterable[AlertEvent]) -> list[AlertEvent]:
        """The events not emitted before (by an incarnation that crashed before saving); their ids
        are journaled (fsynced) before this returns, so they are never emitted twice."""
        new = [e for e in events if event_id(e) not in self._emitted]
        if new:
            ids = [event_id(e) for e in new]
            files.append_line(self.journal, "\n".join(json.dumps(i) for i in ids))
            self._emitted.update(ids)
        return new

    def save(self, offsets: dict[str, Any], engine: Engine, policy: dict[str, Any] | None) -> None:
        """Write offsets, engine snapshot and policy together, atomically."""
        self.data = {"version": VERSION, "offsets": offsets, "engine": snapshot(engine), "policy": policy}
        files.write_atomic(self.path, json.dumps(self.data, separators=(",", ":")) + "\n")
        if self._emitted:
            # Only now: the saved state is past these events, so they cannot come again.
            files.write_atomic(self.journal, "")
            self._emitted.clear()


def _read_ids(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(str(json.loads(line)))
        except ValueError:
            continue  # empty, or torn by a crash mid-append: that emit never happened
    return out
