"""Silences: mute notifications matching a rule and labels until an expiry time, kept as JSON on disk."""
from __future__ import annotations

import fnmatch
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field

from alertd import statefile as files
from alertd.record import AlertEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Silence:
    """Mutes events whose rule and labels match (shell-style globs; `run` matches the run path)."""

    rule: str = "*"
    matchers: dict[str, str] = field(default_factory=dict)
    expires: float = 0.0      # wall-clock seconds since the epoch
    comment: str = ""
    id: str = ""

    def matches(self, event: AlertEvent, now: float) -> bool:
        """True when this silence is active at now and covers event."""
        if now >= self.expires or not fnmatch.fnmatchcase(event.rule, self.rule or "*"):
            return False
        for name, pattern in self.matchers.items():
            value = event.run if name == "run" else event.labels.get(name)
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True


class Silences:
    """The set of silences, persisted in `state_dir/silences.json` (0600) when a dir is given.

        s = Silences(state_dir)
        sid = s.add(Silence(rule="LossSpike", matchers={"run": "*/exp7/*"}, expires=now + 3600))
        s.silenced(event, now)    # -> True
    """

    def __init__(self, state_dir: str | None = None) -> None:
        self.path = None if state_dir is None else os.path.join(state_dir, "silences.json")
        self._items: list[Silence] = []
        self._seen: tuple | None = None  # (mtime_ns, size, ino) of the file when last read
        if self.path is not None:
            files.ensure_dir(state_dir)  # type: ignore[arg-type]
            self._read()

    def _signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> None:
        self._seen = self._signature()
        self._items = [Silence(**d) for d in files.read_json(self.path, [])]

    def refresh(self) -> bool:
        """Re-read the file if another process (`alertd silence add`) changed it; True if it did.

        The file is replaced by rename, so a changed inode, size or mtime means a new version."""
        if self.path is None or self._signature() == self._seen:
            return False
        try:
            self._read()
        except (OSError, ValueError, TypeError) as e:  # half-edited by hand: keep the silences we have
            log.warning("%s: cannot read silences (%s); keeping the previous ones", self.path, e)
            return False
        return True

    def _save(self) -> None:
        if self.path is not None:
            files.write_json(self.path, [asdict(s) for s in self._items])
            self._seen = self._signature()

    def all(self) -> list[Silence]:
        """Every stored silence, expired or not."""
        return list(self._items)

    def add(self, silence: Silence) -> str:
        """Store silence (giving it an id if it has none) and return its id."""
        if not silence.id:
            silence = Silence(silence.rule, dict(silence.matchers), silence.expires,
                              silence.comment, uuid.uuid4().hex[:8])
        self._items = [s for s in self._items if s.id != silence.id] + [silence]
        self._save()
        return silence.id

    def remove(self, silence_id: str) -> bool:
        """Delete a silence by id; False when there was none."""
        kept = [s for s in self._items if s.id != silence_id]
        found = len(kept) != len(self._items)
        self._items = kept
        self._save()
        return found

    def active(self, now: float) -> list[Silence]:
        """Silences not yet expired at now."""
        return [s for s in self._items if now < s.expires]

    def expire(self, now: float) -> int:
        """Drop expired silences from the file; return how many went."""
        before = len(self._items)
        self._items = self.active(now)
        if len(self._items) != before:
            self._save()
        return before - len(self._items)

    def silenced(self, event: AlertEvent, now: float) -> bool:
        """True when an active silence covers event."""
        return any(s.matches(event, now) for s in self._items)
