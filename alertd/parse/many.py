"""Many small JSONL feeds parsed together: the live daemon's pass over hundreds of tailed files.

`feed_many(items)` returns exactly `[p.feed(d) for p, d in items]`, parser state included, but
a lone `feed` of a few lines costs several polars calls (~3 ms), so the items whose parser is
JSONL (an AutoParser that is or becomes JSONL included) are joined into one buffer, read by one
`pl.read_ndjson` (two where the first 100 rows' schema misses a key), shaped by one vectorised
finalize carrying a per-item index, and cut back into per-item frames. Whatever that path cannot promise to read exactly as `feed` would goes
through `feed` itself, in order:
- before the read: no trailing newline, '\\r', blank lines, meta records, more than 100 lines
  (a lone feed then infers its schema from 100 rows only), other formats;
- from the read: a group polars rejects (malformed lines, types that clash across items,
  nesting too deep) is halved until the items it cannot take are alone;
- after the read (many_shape): lines whose key order polars would merge in a way this cannot
  predict, and values polars read as strings only because another item had strings there.
Once an item of a parser goes through `feed`, that parser's later items do too (their line
numbers and record ordinals depend on it), so every parser sees its items in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from alertd.parse import Parser
from alertd.parse.detect import AutoParser
from alertd.parse.frame import STEP_COL, numeric_expr
from alertd.parse.jsonl import JsonlParser, _leaves, _nonfinite_keys, _numeric, _quote_nonfinite, _with_step
from alertd.parse.jsonl_scan import Scan
from alertd.parse.many_shape import ItemShape, reads_back, same_keys, shapes_of
from alertd.record import LINE, RESERVED, STEP, Parsed

MAX_LINES = 100  # a lone feed of more lines infers its schema from the first 100 rows only
# The joined read has a fixed cost (~3.5 ms: shapes, one read, a finalize, the cut) where a lone
# feed of a few lines costs ~0.9 ms: below this many items the lone feeds are cheaper.
MIN_JOINED = 4
# Columns the batch carries beside the data's own (a data key of the same name fails the group).
ITEM, PARSER, BASE = "__many_item", "__many_parser", "__many_base"
_CARRIED = (ITEM, PARSER, BASE)


@dataclass
class _Job:
    """One item on the batched path."""

    index: int            # position in `items`
    parser: JsonlParser
    data: bytes
    lines: int
    line_base: int        # the parser's line count when this item's turn comes
    slot: int = 0         # the parser's number among the batch's parsers


def feed_many(items: list[tuple[Parser, bytes]]) -> list[Parsed]:
    """`[p.feed(d) for p, d in items]`, with the JSONL items parsed in one polars read; never
    raises on input (what the batch cannot take, `feed` takes)."""
    results: list[Parsed | None] = [None] * len(items)
    jobs, singles = _plan(items, results)
    if len(jobs) < MIN_JOINED:
        singles += [(job.index, job.parser, job.data) for job in jobs]
        jobs = []
    if jobs:
        try:
            done = _run_batch(jobs)
        except Exception:  # a polars surprise: nothing is committed yet, so feed them all
            done = {}
        singles += _commit(jobs, done, results)
    for index, parser, data in sorted(singles, key=lambda s: s[0]):
        results[index] = parser.feed(data)
    return results  # type: ignore[return-value]


def _batchable(data: bytes) -> bool:
    """Bytes the joined read takes exactly as a lone feed would (cheap tests, no parsing)."""
    return (data.endswith(b"\n") and b"\r" not in data and b"\n\n" not in data
            and not data.startswith(b"\n") and b'"meta"' not in data
            and data.count(b"\n") <= MAX_LINES)


def _plan(items, results) -> tuple[list[_Job], list[tuple[int, Any, bytes]]]:
    """Split the items into batched jobs and single feeds; AutoParsers detect here, in order."""
    jobs: list[_Job] = []
    singles: list[tuple[int, Any, bytes]] = []
    blocked: set[int] = set()        # parsers with an item on the single path already
    ahead: dict[int, int] = {}       # lines of each parser's batched items so far
    slots: dict[int, int] = {}
    for index, (parser, data) in enumerate(items):
        if isinstance(parser, AutoParser):
            routed = parser.route(data)
            if routed is None:
                results[index] = Parsed.empty()
                continue
            parser, data = routed
        key = id(parser)
        if type(parser) is JsonlParser and key not in blocked and _batchable(data):
            lines = data.count(b"\n")
            slot = slots.setdefault(key, len(slots))
            jobs.append(_Job(index, parser, data, lines, parser._lines + ahead.get(key, 0), slot))
            ahead[key] = ahead.get(key, 0) + lines
        else:
            blocked.add(key)
            singles.append((index, parser, data))
    return jobs, singles


def _run_batch(jobs: list[_Job]) -> dict[int, tuple[pl.DataFrame, int]]:
    """Parse the jobs together: for each job read as a lone feed would read it, its frame and
    its record count (parser state is left to _commit)."""
    found = shapes_of([(j.data, j.lines) for j in jobs], [j.parser.key_order for j in jobs])
    shapes = {}
    for job, shape in zip(jobs, found):
        if shape is not None:
            shapes[job.index] = shape
            job.parser.key_order = same_keys(shape, job.data)
    groups = _read_groups(_until_first_failure(jobs, shapes), shapes)
    for group, _, strings in groups:
        for job in group:
            if not reads_back(shapes[job.index], strings):
                del shapes[job.index]
    read = [j for group, _, _ in groups for j in group if j.index in shapes]
    if not read:
        return {}
    frame = _finalize(_with_step(pl.concat([f for _, f, _ in groups], how="diagonal_relaxed")))
    return _cut(read, {j.index: shapes[j.index].leaves for j in read}, frame)


def _until_first_failure(jobs: list[_Job], ok) -> list[_Job]:
    """The jobs in `ok`, each parser's only up to its first job not in it (later ones wait for
    that one's single feed)."""
    out, stopped = [], set()
    for job in jobs:
        if job.index in ok and job.parser not in stopped:
            out.append(job)
        else:
            stopped.add(job.parser)
    return out


def _read_groups(jobs: list[_Job], shapes: dict[int, ItemShape]) -> list[tuple[list[_Job], pl.DataFrame, frozenset[str]]]:
    """Read the jobs' bytes in as few polars reads as they allow, halving a group that fails;
    in job order: (jobs, raw numeric frame with LINE / ITEM / PARSER / BASE, String leaves)."""
    out = []
    todo = [jobs] if jobs else []
    while todo:
        group = todo.pop()
        got = _read_group(group, shapes)
        if got is not None:
            out.append((group, *got))
        elif len(group) > 1:
            half = len(group) // 2
            todo += [group[half:], group[:half]]  # the left half is read (and kept) first
    return out


def _read_group(group: list[_Job], shapes: dict[int, ItemShape]) -> tuple[pl.DataFrame, frozenset[str]] | None:
    """One read of the group's joined bytes, shaped as a lone feed's `_fast` + `_numeric` shapes
    it, or None where a lone feed would not have read them all with polars."""
    data = b"".join(j.data for j in group)
    scan = Scan(data)
    if not scan.nesting_ok():
        return None
    body = _quote_nonfinite(data, scan)
    leaves = set().union(*(shapes[j.index].leaves for j in group))
    try:
        df = _read_all_keys(body, leaves, _nonfinite_keys(body, scan.newlines))
        if df.height != scan.newlines or df.width == 0:
            return None  # whitespace-only lines skipped, or no keys at all
        flat, _ = _leaves(df)
        if len(flat) != len({e.meta.output_name() for e in flat}):
            return None  # two leaves flatten to one name ('a/b' and a.b): first-wins is per item
        df = df.select(flat)
        strings = frozenset(n for n, dt in df.schema.items() if dt == pl.String)
        lines = [n for j in group for n in range(j.line_base + 1, j.line_base + j.lines + 1)]
        raw = _numeric(df.hstack([pl.Series(LINE, lines, dtype=pl.Int64)]))
        carried = [pl.Series(ITEM, [j.index for j in group for _ in range(j.lines)], dtype=pl.Int64),
                   pl.Series(PARSER, [j.slot for j in group for _ in range(j.lines)], dtype=pl.Int64),
                   pl.Series(BASE, [j.parser._records for j in group for _ in range(j.lines)], dtype=pl.Int64)]
        return raw.hstack(carried), strings  # hstack refuses a data column named like ours
    except Exception:  # polars raises several types for bad input: a lone feed would bisect
        return None


def _read_all_keys(body: bytes, leaves: set[str], strings: dict[str, pl.DataType]) -> pl.DataFrame:
    """read_ndjson with schema inference over 100 rows (the `strings` keys read as String), or
    over all where that missed a key the decoded lines hold (or read one too narrowly, or a
    `strings` key is not in the first 100 rows: polars then raises)."""
    try:
        df = pl.read_ndjson(body, schema_overrides=strings or None)
        if {e.meta.output_name() for e in _leaves(df)[0]} >= leaves:
            return df
    except Exception:
        pass
    return pl.read_ndjson(body, infer_schema_length=None)


def _finalize(raw: pl.DataFrame) -> pl.DataFrame:
    """frame.finalize for all items at once: rows with a metric, STEP falling back to the
    record's ordinal within its parser (counted from the parser's records so far)."""
    metrics = [c for c in raw.columns if c not in RESERVED and c != STEP_COL and c not in _CARRIED]
    step = pl.col(STEP_COL) if STEP_COL in raw.columns else pl.lit(None, dtype=pl.Int64)
    df = raw.select(*_CARRIED, pl.col(LINE).cast(pl.Int64), step.cast(pl.Int64).alias(STEP_COL),
                    *[numeric_expr(m, raw.schema[m]).alias(m) for m in metrics])
    df = df.filter(pl.any_horizontal(pl.col(metrics).is_not_null())) if metrics else df.clear()
    ordinal = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(PARSER) + pl.col(BASE)
    return df.with_columns(pl.coalesce(pl.col(STEP_COL), ordinal).alias(STEP))


def _cut(jobs: list[_Job], columns: dict[int, list[str]], frame: pl.DataFrame) -> dict[int, tuple[pl.DataFrame, int]]:
    """Each job's rows of the frame with its own columns (`columns`: its metric columns in the
    order a lone feed gives them; a job whose values fall outside them is left out)."""
    metrics = [c for c in frame.columns if c not in (STEP, LINE, STEP_COL, *_CARRIED)]
    spans: dict[int, tuple[int, int]] = {}  # job index -> (first row, rows)
    at = 0
    for run in frame.get_column(ITEM).rle().to_list():
        spans[run["value"]] = (at, run["len"])
        at += run["len"]
    present: dict[int, set[str]] = {}  # job index -> its columns with a value
    if metrics and frame.height:
        counts = frame.group_by(ITEM, maintain_order=True).agg(pl.col(metrics).is_not_null().sum())
        for index, *nonnull in counts.iter_rows():
            present[index] = {m for m, n in zip(metrics, nonnull) if n}
    out: dict[int, tuple[pl.DataFrame, int]] = {}
    by_columns: dict[tuple[str, ...], pl.DataFrame] = {}
    for job in jobs:
        start, rows = spans.get(job.index, (0, 0))
        keep = present.get(job.index, set())
        if not keep.issubset(columns[job.index]):
            continue
        if rows:
            cols = (STEP, LINE, *[c for c in columns[job.index] if c in keep])
            if cols not in by_columns:
                by_columns[cols] = frame.select(cols)
            out[job.index] = by_columns[cols].slice(start, rows), rows
        else:
            out[job.index] = Parsed.empty().frame, 0
    return out


def _commit(jobs: list[_Job], done: dict[int, tuple[pl.DataFrame, int]], results: list) -> list[tuple[int, Any, bytes]]:
    """Fill the results of the jobs done and advance their parsers, each parser only up to its
    first job not done: that one and the parser's later ones are returned, to be fed singly."""
    singles, stopped = [], set()
    for job in jobs:
        if job.index in done and job.parser not in stopped:
            frame, rows = done[job.index]
            results[job.index] = Parsed(frame)
            job.parser._lines += job.lines
            job.parser._records += rows
        else:
            stopped.add(job.parser)
            singles.append((job.index, job.parser, job.data))
    return singles
