"""Read positions, persisted atomically so a restarted daemon neither re-reads nor skips lines.

Usage:
    cps = Checkpoints("/var/lib/alertd/checkpoints.json")
    follower = Follower(path, position=cps.get(path))
    ...  # after handing a chunk downstream
    cps.set(path, follower.position()); cps.save()
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from alertd import statefile

VERSION = 1


@dataclass(frozen=True)
class Position:
    """Where reading stopped in one file generation: identity, byte offset and lines handed out."""

    dev: int
    ino: int
    offset: int       # bytes handed out (always at a line boundary)
    fingerprint: str  # identity.fingerprint of the first min(256, offset) bytes
    lines: int = 0    # b"\n"-terminated lines handed out, so a parser can resume its numbering


class Checkpoints:
    """Read offsets persisted atomically (temp file + fsync + rename, created 0600) as JSON in a state dir.

    With `path=None` the positions live in memory only and whoever owns them persists `to_dict()`
    (the daemon keeps them in one state file with the engine's memory, so the two always agree).
    """

    def __init__(self, path: str | None, raw: Any = None):
        self.path = path
        self._positions: dict[str, Position] = {}
        self._dirty = False
        if path is None:
            self._positions = _decode(raw, "state") if raw else {}
            return
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            # Fail loudly: starting empty would re-read every file and page again for old alerts.
            raise ValueError(f"{path}: unreadable checkpoint file ({e}); move it aside to start over") from e
        self._positions = _decode(raw, path)

    def get(self, file: str) -> Position | None:
        """Saved position for `file`, or None if it was never read."""
        return self._positions.get(file)

    def set(self, file: str, pos: Position) -> None:
        """Record `pos` for `file` (in memory until save())."""
        if self._positions.get(file) != pos:
            self._positions[file] = pos
            self._dirty = True

    def forget(self, file: str) -> None:
        """Drop the position of a file that is no longer followed."""
        if self._positions.pop(file, None) is not None:
            self._dirty = True

    def files(self) -> list[str]:
        """Paths that have a saved position."""
        return sorted(self._positions)

    def to_dict(self) -> dict[str, Any]:
        """The positions as JSON-able data (the file's format)."""
        return {"version": VERSION, "files": {k: asdict(v) for k, v in sorted(self._positions.items())}}

    def save(self) -> None:
        """Write all positions atomically; does nothing when nothing changed since the last save
        (or when the positions are kept in memory for another file)."""
        if not self._dirty or self.path is None:
            return
        statefile.ensure_dir(os.path.dirname(os.path.abspath(self.path)))
        statefile.write_atomic(self.path, json.dumps(self.to_dict(), indent=1).encode())
        self._dirty = False


def _decode(raw: Any, path: str) -> dict[str, Position]:
    if not isinstance(raw, dict) or raw.get("version") != VERSION or not isinstance(raw.get("files"), dict):
        raise ValueError(f"{path}: not an alertd checkpoint file (version {VERSION})")
    out = {}
    for file, d in raw["files"].items():
        try:
            out[file] = Position(dev=int(d["dev"]), ino=int(d["ino"]), offset=int(d["offset"]),
                                 fingerprint=str(d["fingerprint"]), lines=int(d.get("lines", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: bad entry for {file!r}: {e}") from e
    return out


