"""Test helper: feed a parser a byte string cut at given offsets, as the tailer would."""
import polars as pl

from alertd.parse import make_parser
from alertd.record import LINE, STEP


def feed_chunks(data: bytes, cuts: list[int], fmt: str):
    """(frame with sorted metric columns, meta, bad line count, first bad line) over all feeds."""
    p = make_parser(fmt)
    frames, meta, bad, first, start = [], {}, 0, None, 0
    for end in [*cuts, len(data)]:
        if end > start:
            r = p.feed(data[start:end])
            frames.append(r.frame)
            meta.update(r.meta)
            bad += r.bad_lines
            first = first if first is not None else r.first_bad_line
        start = end
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select(STEP, LINE, *sorted(c for c in df.columns if c not in (STEP, LINE))), meta, bad, first
