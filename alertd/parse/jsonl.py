"""JSONL metric streams: one JSON object per line, parsed a chunk at a time with polars.

Fast path: the whole chunk goes through `pl.read_ndjson` once. Only a chunk that polars
rejects (some line is malformed) is bisected, and only its small leaves are read line by
line with `json.loads`, so one bad line costs about one extra read of the chunk. One pass over
the bytes (jsonl_scan.Scan) counts the newlines, keeps deeply nested lines away from polars and
gives the key counts that tell whether schema inference (100 rows) saw every key.
"""
from __future__ import annotations

import json
from typing import Any

import polars as pl

from alertd.parse.frame import (STEP_COL, STEP_KEYS, BadTally, LineParser, flatten, holds_numbers,
                                step_expr, to_number)
from alertd.parse.jsonl_scan import Scan
from alertd.record import LINE, RESERVED

META = "meta"
LEAF_LINES = 256      # below this many lines a failed piece is read line by line


def _quote_nonfinite(data: bytes, scan: Scan) -> bytes:
    """Rewrite bare NaN/Infinity values (Python's json output) as strings polars can read."""
    # The skeleton keeps 'N' and 'I': most pieces hold neither, and are not searched at all.
    has_nan = scan.may_hold(b"N") and b"NaN" in data
    has_inf = scan.may_hold(b"I") and b"Infinity" in data
    for tok, present in ((b"NaN", has_nan), (b"-Infinity", has_inf), (b"Infinity", has_inf)):
        if present:
            for sep in (b":", b": "):
                data = data.replace(sep + tok, sep + b'"' + tok + b'"')
    return data


def flat_scalars(data: bytes, lines: int) -> bool:
    """Whether the bytes of `lines` JSON objects can hold nothing but flat scalars: one '{' a
    line (no nested object, no brace in a string) and no true/false or '[' anywhere (a cheap
    test: such words in a string also say no)."""
    return (data.count(b"{") == lines and b"true" not in data and b"false" not in data
            and b"[" not in data)


_NONFINITE = (b'"NaN"', b'"Infinity"', b'"-Infinity"')  # as _quote_nonfinite writes them


def _nonfinite_keys(body: bytes, lines: int) -> dict[str, pl.DataType]:
    """The keys of flat lines that hold a quoted NaN/Infinity, as String: what inferring over
    every row gives them, where inferring over 100 rows fails at the first one past row 100
    (then another read, or a bisection down to json.loads: in most passes over busy files with
    a NaN somewhere). {} where that cannot be told from the bytes at hand."""
    if not flat_scalars(body, lines):
        return {}  # nested objects, braces in strings, booleans or lists (their supertypes differ)
    keys: dict[str, pl.DataType] = {}
    for token in _NONFINITE:
        at = body.find(token)
        while at != -1:
            colon = body.rfind(b":", 0, at)
            close = body.rfind(b'"', 0, colon)
            start = body.rfind(b'"', 0, close)
            key = body[start + 1:close]
            if body[colon + 1:at].strip() or body[close + 1:colon].strip() or b"\\" in key or start < 0:
                return {}  # not `"key": "NaN"` (in a list, or a string that holds it)
            keys[key.decode(errors="replace")] = pl.String
            at = body.find(token, at + len(token))
    return keys


def _leaves(df: pl.DataFrame) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Flattening expressions (`a/b`) and key-count expressions for a frame of nested structs."""
    out: list[pl.Expr] = []
    counts: list[pl.Expr] = []
    seen: set[str] = set()

    def walk(expr: pl.Expr, name: str, dtype: pl.DataType, depth: int) -> None:
        counts.append(expr.is_not_null().sum())
        if isinstance(dtype, pl.Struct) and depth < 32:
            for f in dtype.fields:
                walk(expr.struct.field(f.name), f"{name}/{f.name}", f.dtype, depth + 1)
        elif name not in seen:
            seen.add(name)
            out.append(expr.alias(name))

    for name, dtype in df.schema.items():
        if name == META and isinstance(dtype, pl.Struct):
            counts.append(pl.col(name).is_not_null().sum())
            continue
        walk(pl.col(name), name, dtype, 0)
    return out, counts


def _meta_rows(df: pl.DataFrame) -> dict[str, Any]:
    """Contents of the `meta` objects in a polars-read frame, flattened, later rows winning."""
    meta: dict[str, Any] = {}
    if META in df.columns and isinstance(df.schema[META], pl.Struct):
        for row in df.get_column(META).drop_nulls().to_list():
            for k, v in flatten(row or {}).items():
                if v is not None:
                    meta[k] = v
    return meta


def _fill_blank_lines(data: bytes) -> bytes:
    """Put `{}` on blank lines: polars skips them, and row i must stay line i."""
    body = b"{}" + data if data.startswith((b"\n", b"\r\n")) else data
    for _ in range(2):  # two passes: replace() does not see overlapping blank lines
        body = body.replace(b"\n\n", b"\n{}\n").replace(b"\n\r\n", b"\n{}\r\n")
    return body


def _is_flat(df: pl.DataFrame) -> bool:
    """No struct column (no nested object, no meta record): its leaves are its columns, and
    it is shaped column by column (an eager select plans a query: ~0.1-0.3 ms apiece)."""
    return not any(isinstance(dtype, pl.Struct) for dtype in df.schema.values())


def _all_keys_read(df: pl.DataFrame, flat: bool, body: bytes, scan: Scan) -> bool:
    """True when the frame holds every key of the piece (schema inference saw only 100 rows)."""
    if flat:  # per-column null counts are kept by polars
        keys = sum(df.height - s.null_count() for s in df.get_columns())
    else:
        keys = sum(df.select(_leaves(df)[1]).row(0)) + _meta_key_count(df)
    # Every key is followed by ':'; only colons inside strings (timestamps) make the counts
    # differ, and '":' (counted in the text, the rare case) tells those apart. A key written
    # with a null value is read (as null) but not counted: count those too. (Quoting NaN and
    # Infinity adds no colon and no null, so the scan of the unquoted piece still holds.)
    nulls = scan.nulls()
    return keys + nulls == scan.colons() or keys + nulls == body.count(b'":')


def _fast(data: bytes, base: int, scan: Scan) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """Read a piece (`scan` its skeleton) with polars; None if any line is malformed or nested
    too deeply for polars."""
    nlines = scan.newlines + (0 if data.endswith(b"\n") else 1)
    if nlines == 0 or not scan.nesting_ok():
        return None
    body = _quote_nonfinite(data, scan)
    # A NaN past the 100 rows polars infers from would fail the read (then a bisection, down
    # to json.loads line by line): its keys are read as String from the start, as inferring
    # over every row would read them.
    strings = _nonfinite_keys(body, nlines) if body is not data else {}
    try:
        try:
            df = pl.read_ndjson(body, schema_overrides=strings or None)
        except Exception:
            if not strings:
                raise
            df = pl.read_ndjson(body, infer_schema_length=None)  # such a key first past row 100
        if df.height != nlines:
            body = _fill_blank_lines(body)
            df = pl.read_ndjson(body)
            if df.height != nlines:
                return None
        if df.width == 0:
            return None  # no keys at all: polars then also lets `null` lines through
        if df.height > 100 and not _all_keys_read(df, _is_flat(df), body, scan):
            df = pl.read_ndjson(body, infer_schema_length=None)
        if _is_flat(df):  # the common case: no meta, nothing to flatten
            meta = {}
            out = df.hstack([pl.Series(LINE, range(base + 1, base + 1 + df.height), dtype=pl.Int64)])
        else:
            meta = _meta_rows(df)
            out = df.select(*_leaves(df)[0], pl.int_range(base + 1, base + 1 + df.height, dtype=pl.Int64).alias(LINE))
    except Exception:  # polars raises several types for bad input; any of them means "bisect"
        return None
    return out, meta


def _meta_key_count(df: pl.DataFrame) -> int:
    """Number of keys inside the meta objects (they are not columns after flattening)."""
    if META not in df.columns or not isinstance(df.schema[META], pl.Struct):
        return 0
    n = 0

    def walk(v: Any) -> None:
        nonlocal n
        if isinstance(v, dict):
            for x in v.values():
                if x is not None:
                    n += 1
                    walk(x)

    for row in df.get_column(META).drop_nulls().to_list():
        walk(row)
    return n


def _slow(data: bytes, base: int, bad: BadTally) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read a small piece line by line with json.loads (accepts NaN/Infinity)."""
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for i, raw in enumerate(data.split(b"\n")):
        line = raw.strip()
        if not line:
            continue
        lineno = base + 1 + i
        try:
            obj = json.loads(line.decode("utf-8", errors="replace"))
        except RecursionError:
            bad.add(lineno, "JSON nested too deeply")
            continue
        except ValueError as e:
            bad.add(lineno, f"invalid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            bad.add(lineno, f"JSON line is a {type(obj).__name__}, not an object")
            continue
        if isinstance(obj.get(META), dict):
            meta.update({k: v for k, v in flatten(obj.pop(META)).items() if v is not None})
        row: dict[str, Any] = {LINE: lineno}
        for k, v in flatten(obj).items():
            num = to_number(v)
            if num is not None:
                row[k] = num
        rows.append(row)
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema={LINE: pl.Int64})
    return df, meta


def _numeric(df: pl.DataFrame) -> pl.DataFrame:
    """Keep LINE and the columns that hold numbers, as Float64, so pieces concatenate."""
    # Column by column (Series casts are direct calls; an eager select plans a query, ~0.3 ms).
    out = [df.get_column(LINE)]
    for name, dtype in df.schema.items():
        if name != LINE and holds_numbers(dtype):
            out.append(df.get_column(name).cast(pl.Float64, strict=False))
    return pl.DataFrame(out)


def _read(data: bytes, base: int, bad: BadTally, frames: list[pl.DataFrame], meta: dict[str, Any],
          scan: Scan) -> None:
    """Fast path on the piece; on failure bisect at a line boundary, down to line-by-line leaves."""
    got = _fast(data, base, scan)
    if got is None:
        mid = data.find(b"\n", len(data) // 2)
        if scan.newlines <= LEAF_LINES or mid < 0 or mid + 1 >= len(data):
            got = _slow(data, base, bad)
        else:
            left, right = data[: mid + 1], data[mid + 1:]
            left_scan = Scan(left)
            _read(left, base, bad, frames, meta, left_scan)
            _read(right, base + left_scan.newlines, bad, frames, meta, Scan(right))
            return
    df, m = got
    frames.append(_numeric(df))
    meta.update(m)


class JsonlParser(LineParser):
    """Stateful JSONL parser for one file.

    >>> p = JsonlParser(); p.feed(b'{"step": 3, "train": {"loss": NaN}}\\n').frame.columns
    ['_step', '_line', 'train/loss']
    """

    key_order = None  # many_shape.KnownKeys: the keys of its last batched item's lines (many.py)

    def _rows_and_newlines(self, data: bytes, meta: dict[str, Any], bad: BadTally) -> tuple[pl.DataFrame, int]:
        scan = Scan(data)  # the one pass over the bytes: newlines, nesting guard, key counts
        frames: list[pl.DataFrame] = []
        _read(data, self._lines, bad, frames, meta, scan)
        raw = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema={LINE: pl.Int64})
        return _with_step(raw), scan.newlines


def _with_step(raw: pl.DataFrame) -> pl.DataFrame:
    """Move step-like keys into STEP_COL and drop reserved names from the metrics."""
    steps = [k for k in STEP_KEYS if k in raw.columns]
    drop = {c for c in raw.columns if (c in STEP_KEYS or c in RESERVED) and c != LINE}
    if len(steps) == 1 and STEP_COL not in raw.columns:  # the common case, column by column
        step = raw.get_column(steps[0]).cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
        return pl.DataFrame([*(s for s in raw.get_columns() if s.name not in drop), step.alias(STEP_COL)])
    if steps:
        raw = raw.with_columns(step_expr(steps).alias(STEP_COL))
    return raw.drop(list(drop))
