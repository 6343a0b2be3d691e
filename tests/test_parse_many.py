"""feed_many: the same results and parser state as feeding each item in turn, on any mix."""
from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from alertd.parse import many, make_parser, many_shape
from alertd.parse.detect import AutoParser
from alertd.parse.jsonl import JsonlParser
from alertd.parse.many import feed_many


@pytest.fixture(autouse=True, scope="module")
def joined_from_one_item():
    """The joined read even for one item (the daemon feeds fewer than MIN_JOINED one by one,
    where that is cheaper): these tests are about the joined read's results."""
    default, many.MIN_JOINED = many.MIN_JOINED, 1
    yield
    many.MIN_JOINED = default


def state(parser) -> tuple:
    """What a parser carries from one feed to the next."""
    if isinstance(parser, AutoParser):
        return (parser.format, parser._skipped, state(parser._inner) if parser._inner else None)
    return tuple(getattr(parser, name, None) for name in ("_lines", "_records", "columns"))


def assert_same_as_one_by_one(formats: list[str], items: list[tuple[int, bytes]]) -> list:
    """feed_many on fresh parsers (one per format, items naming them by position) against the
    same items fed one by one to another set of fresh parsers."""
    alone = [make_parser(f) for f in formats]
    batched = [make_parser(f) for f in formats]
    want = [alone[k].feed(data) for k, data in items]
    got = feed_many([(batched[k], data) for k, data in items])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same_parsed(g, w)
    assert [state(p) for p in batched] == [state(p) for p in alone]
    return got


def assert_same_parsed(got, want) -> None:
    assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert (got.meta, got.bad_lines, got.first_bad_line, got.first_bad_reason) == \
        (want.meta, want.bad_lines, want.first_bad_line, want.first_bad_reason)


def decoded_items(monkeypatch) -> list[bytes]:
    """The bytes many_shape JSON-decodes from now on."""
    decoded: list[bytes] = []
    real = many_shape._decode_lines
    monkeypatch.setattr(many_shape, "_decode_lines", lambda data: decoded.append(data) or real(data))
    return decoded


def regex_matched(monkeypatch) -> list[bytes]:
    """The bytes known_shape's regex is asked to match from now on (its pattern cache emptied)."""
    matched: list[bytes] = []
    real_compile = many_shape.re.compile

    class Counted:
        def __init__(self, pattern):
            self.pattern = pattern

        def fullmatch(self, data):
            matched.append(data)
            return self.pattern.fullmatch(data)
    monkeypatch.setattr(many_shape, "_PATTERNS", {})
    monkeypatch.setattr(many_shape.re, "compile", lambda p: Counted(real_compile(p)))
    return matched


# -- random mixes ------------------------------------------------------------------------------
KEYS = ["step", "loss", "lr", "acc", "val/loss", "grad_norm", "phase", "epoch"]
# What a file's key holds; files disagree with one another (a key numeric in one, strings or
# booleans in another), which is where a joined read could differ from a lone one.
KINDS = {
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "int": st.integers(-2**62, 2**62),
    "bool": st.booleans(),
    "str": st.sampled_from(["train", "2.5", "1e-3", "true", "NaN", "t:null", "12:30:00"]),
    "nonfinite": st.sampled_from([math.nan, math.inf, -math.inf, 1.5]),
    "nested": st.fixed_dictionaries({}, optional={"a": st.floats(allow_nan=False), "b": st.integers(0, 9)}),
    "list": st.lists(st.floats(allow_nan=False), max_size=2),
}
odd_lines = st.sampled_from([b"", b"   ", b"not json", b'{"loss": 1', b"[1, 2]", b"null", b"{}",
                             b'{"meta": {"num_classes": 10}}', b'{"a":' * 40 + b"1" + b"}" * 40,
                             b'{"__many_item": 1, "loss": 2}', b'{"_line": 5, "loss": 1}',
                             b'{"loss": 1, "loss": true}', b'{"a/b": 1, "a": {"b": 2}}'])


@st.composite
def file_spec(draw) -> tuple[str, list[str], dict[str, str]]:
    """A parser kind, the file's key order, and what each key holds."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, min_size=1, max_size=6))
    return draw(st.sampled_from(["jsonl", "jsonl", "auto"])), keys, {k: draw(st.sampled_from(list(KINDS))) for k in keys}


@st.composite
def item_for(draw, spec) -> bytes:
    """Lines as a logger writes them (leading keys of the file's order; a later key may be
    missing or null), now and then an odd line, a CRLF file, or no lines at all."""
    _, keys, kinds = spec
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(odd_lines))
            continue
        n = draw(st.integers(0, len(keys)))
        ordered = keys[:n] if draw(st.integers(0, 9)) else draw(st.permutations(keys[:n]))
        obj = {k: draw(st.none() | KINDS[kinds[k]]) for k in ordered}
        lines.append(json.dumps(obj, separators=(",", ":") if draw(st.booleans()) else None).encode())
    if not lines:
        return b""
    end = b"\r\n" if draw(st.integers(0, 19)) == 0 else b"\n"
    return end.join(lines) + end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(file_spec(), min_size=1, max_size=5), st.data())
def test_random_mixes_match_feeding_one_by_one(specs, data):
    picks = data.draw(st.lists(st.integers(0, len(specs) - 1), max_size=12))
    items = [(k, data.draw(item_for(specs[k]))) for k in picks]
    assert_same_as_one_by_one([spec[0] for spec in specs], items)


# -- explicit cases ----------------------------------------------------------------------------
@st.composite
def logger_item(draw, spec) -> bytes:
    """Lines holding all the file's keys in its order (what a logger writes most): a file's
    next item can then be shaped from the keys of its last one."""
    _, keys, kinds = spec
    lines = [json.dumps({k: draw(st.none() | KINDS[kinds[k]]) for k in keys},
                        separators=(",", ":") if draw(st.booleans()) else None).encode()
             for _ in range(draw(st.integers(1, 4)))]
    return b"\n".join(lines) + b"\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(file_spec(), min_size=1, max_size=4), st.data())
def test_passes_over_the_same_files_match_feeding_one_by_one(specs, data):
    # As the daemon feeds: pass after pass, at most one item per file in each.
    formats = [spec[0] for spec in specs]
    alone, batched = [make_parser(f) for f in formats], [make_parser(f) for f in formats]
    for _ in range(data.draw(st.integers(2, 4))):
        picks = data.draw(st.lists(st.integers(0, len(specs) - 1), unique=True, max_size=4))
        items = [(k, data.draw(logger_item(specs[k]) | item_for(specs[k]))) for k in picks]
        got = feed_many([(batched[k], d) for k, d in items])
        for g, (k, d) in zip(got, items):
            assert_same_parsed(g, alone[k].feed(d))
    assert [state(p) for p in batched] == [state(p) for p in alone]


def live_line(step: int, rng: random.Random) -> bytes:
    """A record as the live benchmarks write it (bench/writer.py): ~10 metrics, NaN now and
    then, val_loss every 100th step."""
    loss = "NaN" if rng.random() < 0.05 else f"{2 + rng.random():.6f}"
    val = f', "val_loss": {rng.random():.6f}' if step % 100 == 0 else ""
    return (f'{{"step": {step}, "loss": {loss}, "grad_norm": {rng.random():.6f}, "lr": {3e-4 * step:.6g}, '
            f'"tokens_per_s": {50000 + rng.random() * 1000:.1f}, "grad_norm/head": {rng.random():.6f}{val}}}\n').encode()


def test_many_files_of_a_few_lines_like_the_live_daemon(monkeypatch):
    rng = random.Random(7)
    items = [(k, b"".join(live_line(s, rng) for s in range(98 + k % 3, 103 + k % 3))) for k in range(60)]
    lone_feeds = []
    real_feed = JsonlParser.feed
    monkeypatch.setattr(JsonlParser, "feed", lambda self, data: lone_feeds.append(self) or real_feed(self, data))
    got = assert_same_as_one_by_one(["jsonl"] * 60, items)
    assert all(r.frame.height == 5 for r in got)
    assert len(lone_feeds) == 60  # the one-by-one side only: feed_many read them all together


def test_a_file_repeating_its_keys_is_shaped_without_a_decode_and_reads_the_same(monkeypatch):
    # Each file's second item repeats the keys of its first, in order: matched against them
    # (no JSON decode); where a line differs in any way that matters the decode decides.
    first = b'{"step": 1, "loss": 2.5, "note": "a \\"q\\" \\u00e9", "lr": null}\n'
    seconds = [
        b'{"step": 2, "loss": NaN, "note": "x", "lr": 1e-05}\n{"step":3,"loss":-Infinity,"note":"","lr":-0.5E+3}\n',
        b'{"step": 4, "loss": 1, "note": "y", "lr": 0.1}\n',      # the same again
        b'{"step": 5, "loss": 1, "note": "y"}\n',                # a key missing: decode
        b'{"step": 6, "loss": 1, "note": "y", "lr": 0.1, "acc": 0.5}\n',  # a key added: decode
        b'{"step": 7, "loss": true, "note": "y", "lr": 0.1}\n',  # a boolean: decode
        b'{"step": 8, "loss": 1, "note": "\xc3\xa9", "lr": 0.1}\n',  # non-ASCII: decode
        b'{"step": 9, "lr": 0.1, "loss": 1, "note": "y"}\n',     # another order: decode
        b'{"step": 10, "loss": 01, "note": "y", "lr": 0.1}\n',   # not JSON: decode (bad line)
    ]
    alone = [JsonlParser() for _ in seconds]
    batched = [JsonlParser() for _ in seconds]
    decoded = decoded_items(monkeypatch)
    for n, pass_items in enumerate([[first] * len(seconds), seconds]):  # two daemon passes
        got = feed_many(list(zip(batched, pass_items)))
        for g, p, data in zip(got, alone, pass_items):
            assert_same_parsed(g, p.feed(data))
        if n == 0:
            decoded.clear()
    assert [state(p) for p in batched] == [state(p) for p in alone]
    lines = b"".join(decoded)
    assert b'"step": 2' not in lines and b'"step": 4' not in lines  # matched, not decoded
    for step in range(5, 11):
        assert b'"step": %d' % step in lines
    assert got[0].frame.height == 2 and got[-1].bad_lines == 1


def test_lines_that_differ_from_the_last_only_in_their_numbers_need_no_regex(monkeypatch):
    # The first test of known_shape: the file's last line but for its numbers. What it lets
    # through that is not JSON (01, 1.) polars rejects, so those items still read as a lone
    # feed would; a key that differs by a digit, a NaN or a string goes on to the regex.
    first = b'{"step": 1, "loss": 2.5, "lr": 1e-05}\n'
    seconds = [
        b'{"step": 2, "loss": 2.25, "lr": 3E-6}\n{"step": 3, "loss": -0.5, "lr": 0}\n',  # numbers only
        b'{"step": 4, "loss": 01, "lr": 1}\n',      # through the first test, then a bad line
        b'{"step": 5, "loss": 1, "lr": 1.}\n',      # likewise
        b'{"step": 6, "lo5ss": 1, "lr": 2}\n',      # a key one digit off: another column
        b'{"step": 7, "loss": NaN, "lr": 2}\n',     # NaN: the regex
        b'{"step": 8, "loss": "1", "lr": 2}\n',     # a string: the regex
        b'{"step":9,"loss":1,"lr":2}\n',            # other spacing: the regex
    ]
    matched = regex_matched(monkeypatch)
    alone = [JsonlParser() for _ in seconds]
    batched = [JsonlParser() for _ in seconds]
    for pass_items in ([first] * len(seconds), seconds):  # two daemon passes
        got = feed_many(list(zip(batched, pass_items)))
        for g, p, data in zip(got, alone, pass_items):
            assert_same_parsed(g, p.feed(data))
    assert [state(p) for p in batched] == [state(p) for p in alone]
    assert matched == seconds[3:]
    assert got[0].frame.height == 2 and got[1].bad_lines == got[2].bad_lines == 1
    assert "lo5ss" in got[3].frame.columns



def test_the_next_item_is_matched_against_the_last_line_of_one_whose_lines_differ(monkeypatch):
    # An eval metric on one line of an item (val_loss every 100 steps): the next item, which
    # holds the keys of that item's last line, needs neither the decode nor the regex; where
    # the last line is the odd one, the next item is decoded, and every item reads as alone.
    items = [
        (0, b'{"step": 99, "loss": 1.5}\n{"step": 100, "loss": 1.4, "val_loss": 1.6}\n{"step": 101, "loss": 1.3}\n'),
        (1, b'{"step": 99, "loss": 1.5}\n{"step": 100, "loss": 1.4, "val_loss": 1.6}\n'),
    ]
    nexts = [(0, b'{"step": 102, "loss": 1.25}\n{"step": 103, "loss": 1.125}\n'),
             (1, b'{"step": 101, "loss": 1.25}\n')]
    decoded, matched = decoded_items(monkeypatch), regex_matched(monkeypatch)
    alone, batched = [JsonlParser(), JsonlParser()], [JsonlParser(), JsonlParser()]
    for n, pass_items in enumerate([items, nexts]):
        got = feed_many([(batched[k], d) for k, d in pass_items])
        for g, (k, d) in zip(got, pass_items):
            assert_same_parsed(g, alone[k].feed(d))
        if n == 0:
            decoded.clear()
    assert [state(p) for p in batched] == [state(p) for p in alone]
    seen = b"".join(decoded + matched)
    assert b'"step": 102' not in seen               # file 0: its last line's keys, matched by bytes
    assert b'"step": 101, "loss": 1.25' in seen     # file 1: its last line held val_loss

@pytest.mark.parametrize("late, reads", [
    (b'{"loss": NaN, "lr": Infinity}\n{"loss": -Infinity, "lr": 1}\n', 1),  # keys seen before row 100
    (b'{"loss": 1, "gn": NaN}\n', 2),            # a key first seen past row 100: the second read
    (b'{"loss": "warmup"}\n', 2),                # a real string past row 100: likewise
    (b'{"loss": "warmup"}\n{"loss": NaN}\n', 1),  # ... unless a NaN makes the key String anyway
    (b'{"loss": NaN, "note": "a \\"NaN\\""}\n', 2),  # a quoted NaN inside a string: no guess
])
def test_non_finite_values_past_the_first_100_rows_read_once_where_they_can(monkeypatch, late, reads):
    # 30 files of 4 lines, then one with NaN/Infinity (or strings) past row 100: a 100-row
    # inference reads those keys as String only when told, and reading twice costs twice.
    items = [(k, b"".join(b'{"loss": %d.5, "lr": 0.1}\n' % (k * 4 + i) for i in range(4))) for k in range(30)]
    items.append((30, late))
    calls = []
    real = many.pl.read_ndjson
    monkeypatch.setattr(many.pl, "read_ndjson", lambda *a, **k: calls.append(k) or real(*a, **k))
    got = assert_same_as_one_by_one(["jsonl"] * 31, items)
    # The one-by-one side reads too (one read per item, 31): the batch's reads come on top.
    assert len(calls) - 31 == reads
    assert got[0].frame.height == 4


def test_the_same_parser_several_times_keeps_line_numbers_and_ordinals():
    items = [(0, b'{"loss": 1}\n{"loss": 2}\n'), (1, b'{"step": 7, "loss": 1}\n'), (0, b'{"loss": 3}\n'),
             (0, b'{"lr": 0.1}\n{"loss": 4, "lr": 0.2}\n')]
    got = assert_same_as_one_by_one(["jsonl", "jsonl"], items)
    assert got[2].frame.rows() == [(3, 3, 3.0)]          # ordinal 3, line 3
    # polars puts the longer line's keys first: loss, lr (this item goes one by one)
    assert got[3].frame.rows() == [(4, 4, None, 0.1), (5, 5, 4.0, 0.2)]


def test_a_malformed_line_sends_its_item_and_the_parsers_later_items_one_by_one():
    items = [(0, b'{"loss": 1}\n'), (0, b'{"loss": 2}\nTraceback (most recent call last):\n'),
             (0, b'{"loss": 3}\n'), (1, b'{"loss": 9}\n')]
    got = assert_same_as_one_by_one(["jsonl", "jsonl"], items)
    assert (got[1].bad_lines, got[1].first_bad_line) == (1, 3)
    assert got[2].frame.rows() == [(3, 4, 3.0)]


def test_key_orders_types_and_strings_that_differ_between_files():
    items = [(0, b'{"a": 1, "b": 2}\n'), (1, b'{"b": 1, "a": 2}\n'),                   # order per file
             (2, b'{"a": 1}\n{"c": 1, "a": 2}\n'),                                     # merge order
             (3, b'{"x": true}\n'), (4, b'{"x": "s"}\n'), (5, b'{"x": 1.5}\n'),        # bool / str / num
             (6, b'{"n": {"p": 1}}\n{"n": {"q": 2, "p": 3}}\n'),                       # nested merge
             (7, b'{"loss": NaN, "v": Infinity}\n{"loss": -Infinity, "v": 2}\n'),    # non-finite
             (8, b'{"*": 1, "loss": 2}\n{"^l$": 3, "loss": 4}\n')]                   # polars patterns
    got = assert_same_as_one_by_one(["jsonl"] * 9, items)
    assert got[1].frame.columns == ["_step", "_line", "b", "a"]
    assert got[3].frame["x"].to_list() == [1.0]
    assert math.isnan(got[7].frame["loss"][0])


def test_auto_parsers_detect_in_order_and_other_formats_fall_through():
    items = [(0, b"\n"), (0, b'{"loss": 1}\n'), (1, b"epoch,step,loss\n0,1,2.5\n"), (0, b'{"loss": 2}\n'),
             (2, b"step 3 | loss 1.5\n"), (1, b"1,2,3.5\n"), (3, b"")]
    got = assert_same_as_one_by_one(["auto", "auto", "auto", "jsonl"], items)
    assert got[1].frame.rows() == [(1, 2, 1.0)]  # the blank line held back before detection counts


def test_items_beyond_schema_inference_and_unterminated_data_go_one_by_one():
    long = b"".join(b'{"loss": %d}\n' % i for i in range(150)) + b'{"loss": 1, "late": 2}\n'
    items = [(0, long), (1, b'{"loss": 1}'), (1, b'\n{"loss": 2}\n'), (2, b'{"loss": 1}\r\n')]
    got = assert_same_as_one_by_one(["jsonl"] * 3, items)
    assert got[0].frame["late"].drop_nulls().to_list() == [2.0]


def test_a_few_items_are_fed_one_by_one(monkeypatch):
    monkeypatch.setattr(many, "MIN_JOINED", 4)
    lone_feeds = []
    real_feed = JsonlParser.feed
    monkeypatch.setattr(JsonlParser, "feed", lambda self, data: lone_feeds.append(self) or real_feed(self, data))
    parsers = [JsonlParser() for _ in range(4)]
    got = feed_many([(p, b'{"loss": 1}\n') for p in parsers[:3]])
    assert len(lone_feeds) == 3 and [g.frame.rows() for g in got] == [[(1, 1, 1.0)]] * 3
    feed_many([(p, b'{"loss": 2}\n') for p in parsers])
    assert len(lone_feeds) == 3  # four items: one joined read


def test_nothing_to_parse():
    assert feed_many([]) == []
    assert_same_as_one_by_one(["jsonl", "auto"], [(0, b""), (1, b""), (1, b"\n\n")])


def test_deep_nesting_huge_and_binary_lines_never_raise():
    deep = b'{"a":' * 900 + b"1" + b"}" * 900          # json.loads takes it, a walk over it would recurse
    deeper = b'{"a":' * 5000 + b"1" + b"}" * 5000      # json.loads raises RecursionError
    items = [(0, deep + b"\n"), (1, b'{"loss": 1}\n' + deeper + b"\n"), (2, b'{"lo\xffss": 2}\n\x00\xfe\n'),
             (3, b'{"loss": 1, "pad": "' + b"x" * 100_000 + b'"}\n'), (4, b'{"loss": 3}\n')]
    got = assert_same_as_one_by_one(["jsonl"] * 5, items)
    assert got[4].frame["loss"].to_list() == [3.0]
