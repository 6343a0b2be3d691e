"""What a lone JSONL feed of one item would name its columns, decided without reading it alone.

A joined read gives every item the batch's schema; a lone feed infers the item's own. Two
things can then differ, and this module finds the items where they could:
- column order: polars merges rows whose keys differ in an order of its own (at the top level
  the longer row's keys first; nested objects differ again), so the order is predicted only
  where it cannot depend on that rule: at every level of nesting, each line's keys are a prefix of the longest
  line's keys (optional keys at the end, as loggers write them). Then it is that longest list.
- values read as strings: a key that holds strings in one item is a String column for all; an
  item with no strings there would read its values as they are alone. Numbers survive the trip
  (polars prints them exactly, and the cast reads them back), `true` and objects would not.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from alertd.parse.jsonl import flat_scalars

# NaN / Infinity come back as their names: polars reads them quoted, as strings.
_DECODER = json.JSONDecoder(parse_constant=str)
_OTHER = (bool, dict, list)  # what a String column would not give back (numbers print exactly)


class _Unpredictable(Exception):
    """The item's column order cannot be promised equal to a lone feed's."""


@dataclass
class ItemShape:
    """An item's decoded lines and its leaf names (`a/b` for nested keys) in lone-feed order."""

    objects: list[dict[str, Any]]
    leaves: list[str]
    plain: bool = False  # flat lines holding no true/false/list: any value reads back (most items)
    known: KnownKeys | None = None  # what its lines matched in known_shape's first test


def shapes_of(items: list[tuple[bytes, int]],
              known: list[KnownKeys | None] | None = None) -> list[ItemShape | None]:
    """The shape of each (data, lines) item, or None where a line is not a JSON object or the
    column order is uncertain. `known`: per item, the keys its file's lines had last time (see
    known_shape), or None."""
    shapes = [known_shape(data, lines, keys) if keys else None
              for (data, lines), keys in zip(items, known)] if known else [None] * len(items)
    todo = [k for k, shape in enumerate(shapes) if shape is None]
    if not todo:
        return shapes
    # One decode of all the lines as one JSON array: per-call costs are most of a short line's.
    try:
        objects = _decode_lines(b"".join(items[k][0] for k in todo))
    except (ValueError, RecursionError):
        objects = None
    if objects is None or len(objects) != sum(items[k][1] for k in todo):
        for k in todo:  # a bad line somewhere: find it
            shapes[k] = shape_of(*items[k])
        return shapes
    at = 0
    for k in todo:
        data, lines = items[k]
        shapes[k] = _shape(objects[at:at + lines], data)
        at += lines
    return shapes


@dataclass(frozen=True)
class KnownKeys:
    """The keys of a file's last line (flat, plain), in order, and that line with its numbers
    left out (`skeleton`) and its quoted parts (`quoted`: its keys), for known_shape's byte
    test; without them (a string value, an escape) only the regex is tried."""

    keys: tuple[str, ...]
    skeleton: bytes | None = None
    quoted: tuple[bytes, ...] = ()


def same_keys(shape: ItemShape, data: bytes) -> KnownKeys | None:
    """What known_shape needs next time from an item (`data`) of this shape, where it is flat
    and plain: the keys of its last line and that line, else None. Only the last line: a
    file's lines may differ (an eval metric every 100 steps) and the next item is checked
    against the line anyway; what the keys must be is what that line holds, in its order."""
    if shape.known is not None:
        return shape.known  # its lines are that line but for their numbers
    if not shape.plain or not shape.leaves:
        return None
    # The decoded last line (a regex-matched item's lines all hold its leaves).
    keys = tuple(shape.objects[-1]) if shape.objects else tuple(shape.leaves)
    if not keys:
        return None
    line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
    quoted = tuple(line.split(b'"')[1::2])
    if b"\\" in line or len(quoted) != len(keys):
        return KnownKeys(keys)  # an escape, a string value or a key written twice: the regex decides
    return KnownKeys(keys, line.translate(None, _NUMBER_BYTES), quoted)


# The bytes a JSON number is written with: a line's skeleton leaves them out.
_NUMBER_BYTES = b"0123456789.eE+-"


# Flat JSON lines of known keys: what json.loads takes in a line of scalars, byte for byte
# (numbers, strings without raw control characters, null, and NaN/Infinity as Python writes
# them); no true/false/lists/objects, so that a match is a `plain` item.
_WS = rb"[ \t]*"
_VALUE = (rb'(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
          rb'|"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"|null|NaN|-?Infinity)')
_PATTERNS: dict[tuple[str, ...], re.Pattern[bytes]] = {}


def known_shape(data: bytes, lines: int, known: KnownKeys) -> ItemShape | None:
    """The shape of an item whose every line is a flat object of exactly `known.keys` in that
    order, told from its bytes instead of a JSON decode (a busy file's items mostly repeat its
    keys); None where it is not one (a key missing or added, a boolean, a non-ASCII byte that
    the known line does not hold: the decode then decides).

    First the cheapest test: every line is the known line but for its numbers (with the
    numbers' bytes left out, the lines are that line's skeleton, and their quoted parts, keys
    included, are byte for byte its own). Whatever those bytes then hold where the numbers
    were, polars reads as strictly as JSON (it rejects 01, 1., +1, 1e: the batch's read then
    fails and the item is fed alone, as a bad line would be). Else one regex match: the keys in
    order, each value a JSON scalar."""
    if known.skeleton is not None and b"\\" not in data \
            and data.translate(None, _NUMBER_BYTES) == known.skeleton * lines \
            and data.split(b'"')[1::2] == list(known.quoted) * lines:
        return ItemShape([], list(known.keys), plain=True, known=known)
    if not data.isascii():  # the pattern's keys are ASCII-escaped; invalid UTF-8 would pass it
        return None
    keys = known.keys
    pattern = _PATTERNS.get(keys)
    if pattern is None:
        if len(_PATTERNS) >= 1024:
            _PATTERNS.clear()
        fields = (_WS + rb",").join(_WS + re.escape(json.dumps(k).encode()) + _WS + rb":" + _WS + _VALUE
                                    for k in keys)
        pattern = _PATTERNS[keys] = re.compile(rb"(?:" + _WS + rb"\{" + fields + _WS + rb"\}" + _WS + rb"\n)+")
    return ItemShape([], list(keys), plain=True) if pattern.fullmatch(data) else None


def shape_of(data: bytes, lines: int) -> ItemShape | None:
    """The shape of one item of `lines` lines (see shapes_of)."""
    try:
        objects = _decode_lines(data)
    except (ValueError, RecursionError):
        return None
    return _shape(objects, data) if len(objects) == lines else None


def _decode_lines(data: bytes) -> list[Any]:
    """The lines (each ending in a newline) as JSON values; ValueError unless they are exactly
    one value a line (invalid UTF-8 included: UnicodeDecodeError is a ValueError)."""
    text = "[" + data[:-1].decode().replace("\n", ",") + "]"
    values, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra data")
    return values


def _shape(objects: list[Any], data: bytes) -> ItemShape | None:
    """The item's decoded lines merged into one key tree, if they all are objects whose key
    lists pass the prefix rule and whose leaves flatten to distinct names."""
    tree: dict[str, Any] = {}
    nested = data.count(b"{") > len(objects)  # one '{' a line: no nested object to walk (most)
    try:
        for obj in objects:
            if type(obj) is not dict:
                return None
            _merge(tree, obj, nested)
        leaves = _flatten(tree, "", [])
    except (_Unpredictable, RecursionError):  # deep lines go to polars' guard and json.loads
        return None
    if len(leaves) != len(set(leaves)):
        return None
    plain = flat_scalars(data, len(objects))
    return ItemShape(objects, leaves, plain)


def reads_back(shape: ItemShape, strings: frozenset[str]) -> bool:
    """False when a batch String column (`strings`) holds, for this item, only values a lone
    feed would have read as something else (booleans, objects, lists)."""
    if not strings or shape.plain:
        return True
    seen_str: set[str] = set()
    seen_other: set[str] = set()
    nested = any("/" in p for p in strings)
    try:
        for obj in shape.objects:
            _kinds(obj, "", strings, seen_str, seen_other, nested)
    except RecursionError:
        return False
    return not seen_other - seen_str


def _merge(tree: dict[str, Any], obj: dict[str, Any], nested: bool) -> None:
    """Add one object's keys to `tree` (name -> subtree, or None for a leaf)."""
    if len(obj) > len(tree):
        keys = list(obj)
        if list(tree) != keys[:len(tree)]:
            raise _Unpredictable  # neither key list is a prefix of the other
        for k in keys[len(tree):]:
            tree[k] = None
    elif list(obj) != list(tree)[:len(obj)]:
        raise _Unpredictable
    if nested:
        for k, v in obj.items():
            if type(v) is dict:
                if tree[k] is None:
                    tree[k] = {}
                _merge(tree[k], v, True)


def _kinds(obj: dict[str, Any], prefix: str, strings: frozenset[str], seen_str: set[str],
           seen_other: set[str], nested: bool) -> None:
    """Note which kinds of values the object holds under the String columns."""
    for path in strings:
        if path.startswith(prefix) and (v := obj.get(path[len(prefix):])) is not None:
            if type(v) is str:
                seen_str.add(path)
            elif isinstance(v, _OTHER):
                seen_other.add(path)
    if nested:  # some String column is nested (or has '/' in its name): walk the objects
        for k, v in obj.items():
            if type(v) is dict:
                _kinds(v, prefix + k + "/", strings, seen_str, seen_other, True)


def _flatten(tree: dict[str, Any], prefix: str, out: list[str]) -> list[str]:
    """Leaf names depth-first, as jsonl._leaves walks polars' structs."""
    for k, sub in tree.items():
        if sub is None:
            out.append(prefix + k)
        else:
            _flatten(sub, prefix + k + "/", out)
    return out
