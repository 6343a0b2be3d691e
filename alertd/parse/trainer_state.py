"""Hugging Face `trainer_state.json`: the Trainer's `log_history`, rewritten whole at each checkpoint.

The file is pretty-printed JSON, not JSON lines: the parser buffers what it is fed until the
document parses, then emits the `log_history` entries it has not emitted before. A rewrite
(truncate + write, which the tailer reports as a reset) starts a new buffer but keeps what was
emitted, so each checkpoint yields only its new entries. An entry is identified by its step and
its keys (a train entry and an eval entry share a step). LINE is the entry's 1-based index in
`log_history`. Numeric top-level fields (`max_steps`, `train_batch_size`, ...) become meta.
"""
from __future__ import annotations

import json

import polars as pl

from alertd.parse.frame import STEP_COL, BadTally, finalize, parsed, to_number
from alertd.record import LINE, RESERVED, Parsed

_MAX_BUFFER = 256 << 20  # a "document" larger than this is not a trainer state


class TrainerStateParser:
    """Stateful parser for one trainer_state.json path.

    >>> p = TrainerStateParser()
    >>> p.feed(b'{"log_history": [{"loss": 2.5, "step": 10}], "max_steps": 100}\\n').frame.row(0)
    (10, 1, 2.5)
    """

    def __init__(self) -> None:
        self._seen: set[tuple[int, tuple[str, ...]]] = set()
        self.reset()

    def reset(self) -> None:
        """The file was rewritten: parse the new document from its start (emitted entries stay emitted)."""
        self._buf = b""

    def feed(self, data: bytes) -> Parsed:
        """Add data; when the document is complete, emit its new log_history entries."""
        bad = BadTally()
        self._buf += data
        text = self._buf.decode("utf-8", errors="replace")
        if not text.strip():
            return Parsed.empty()
        try:
            doc = json.loads(text)
        except RecursionError:
            doc = None
            bad.add(1, "JSON nested too deeply")
        except ValueError as e:
            if e.pos < len(text.rstrip()) or len(self._buf) > _MAX_BUFFER:
                bad.add(getattr(e, "lineno", 1), f"invalid JSON: {e}")
                self._buf = b""
            return parsed(Parsed.empty().frame, {}, bad)  # else: incomplete, wait for the rest
        self._buf = b""
        if not isinstance(doc, dict) or not isinstance(doc.get("log_history"), list):
            bad.add(1, "not a trainer_state.json (no log_history list)")
            return parsed(Parsed.empty().frame, {}, bad)
        meta = {k: v for k, v in doc.items() if k != "log_history" and to_number(v) is not None
                and not isinstance(v, bool)}
        return parsed(self._rows(doc["log_history"]), meta, bad)

    def _rows(self, history: list) -> pl.DataFrame:
        rows = []
        for i, entry in enumerate(history):
            if not isinstance(entry, dict):
                continue
            step = to_number(entry.get("step"))
            key = (int(step) if step is not None else -1, tuple(sorted(entry)))
            if key in self._seen:
                continue
            self._seen.add(key)
            row = {LINE: i + 1, STEP_COL: key[0] if step is not None else None}
            for k, v in entry.items():
                num = to_number(v)
                if k != "step" and k not in RESERVED and num is not None:
                    row[k] = num
            rows.append(row)
        if not rows:
            return Parsed.empty().frame
        raw = pl.DataFrame(rows, infer_schema_length=None)
        # Entries without a step (none in practice) fall back to the ordinal: count from 0.
        return finalize(raw, 0)
