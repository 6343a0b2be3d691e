"""Metric selectors: which series of a run a rule applies to, and how they pair up.

A selector is an exact name, a glob (`*loss*`, `dbg/grad_*`) or `re:REGEX`. A glob's `*` parts
(or a regex's `key` group, else its first group) are the series' key: when a rule uses two
selectors that both capture a key (`dbg/*_has_grad` and `dbg/*_trainable`), their series are
paired on equal keys; otherwise every combination is an instance of the rule.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

from alertd.rules.expr import Name, walk
from alertd.rules.rulefile import Rule

MAX_INSTANCES = 1000  # per rule and run: a bound, so one bad glob cannot eat the machine


def _glob_regex(pattern: str) -> str:
    """A glob as a regex in which each `*` is a capture group (the series key)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("(.*)")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[re.Pattern, bool]:
    """A pattern as a regex, and whether it captures a key."""
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return rx, rx.groups > 0
    if any(ch in pattern for ch in "*?["):
        return re.compile(_glob_regex(pattern)), "*" in pattern
    return re.compile(re.escape(pattern)), False


def match(pattern: str, name: str) -> tuple[bool, str | None]:
    """Whether `name` matches, and the key it captures (None for exact names)."""
    rx, keyed = _compile(pattern)
    m = rx.fullmatch(name)
    if not m:
        return False, None
    if not keyed:
        return True, None
    if "key" in rx.groupindex:
        return True, m.group("key")
    return True, "/".join(g or "" for g in m.groups())


def matches(patterns: tuple, columns: list[str]) -> list[tuple[str, str | None]]:
    """(column, key) for every column any pattern matches, in column order."""
    out = []
    for col in columns:
        for p in patterns:
            ok, key = match(p, col)
            if ok:
                out.append((col, key))
                break
    return out


@dataclass(frozen=True)
class Ref:
    """One metric reference of a rule: its label key (None: unlabelled exact name) and patterns."""

    ref: str            # the name as written in the expression
    label: str | None
    patterns: tuple


def references(rule: Rule, declared_vars: set[str]) -> list[Ref]:
    """The metric references of a rule, in order of first use."""
    refs: dict[str, Ref] = {}
    quoted = 0
    for root in (rule.cond, rule.value):
        if root is None:
            continue
        for n in walk(root):
            if not isinstance(n, Name) or n.name in refs:
                continue
            if n.quoted:
                quoted += 1
                label = "metric" if quoted == 1 else f"metric_{quoted}"
                refs[n.name] = Ref(n.name, label, (n.name,))
            elif n.name == "step" or n.name in declared_vars:
                continue
            elif n.name in rule.series:
                refs[n.name] = Ref(n.name, n.name, rule.series[n.name])
            else:
                refs[n.name] = Ref(n.name, None, (n.name,))
    return list(refs.values())


def instances(refs: list[Ref], columns: list[str]) -> list[dict[str, str]]:
    """Every binding {ref: column} of the references to a run's columns, keys paired."""
    options = [matches(r.patterns, columns) for r in refs]
    if not refs or any(not o for o in options):
        return [] if refs else [{}]
    out = []
    for combo in itertools.product(*options):
        keys = {k for _, k in combo if k is not None}
        if len(keys) > 1:
            continue
        if len({c for c, _ in combo}) < len(combo) and len(refs) > 1:
            continue  # two aliases bound to the same column is never what a rule means
        out.append({r.ref: c for r, (c, _) in zip(refs, combo)})
        if len(out) >= MAX_INSTANCES:
            break
    return out
