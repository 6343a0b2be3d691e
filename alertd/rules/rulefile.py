"""Rule files: YAML -> validated, frozen Rule objects; every problem reported as file:line.

    vars:   {num_classes: null, chance_tol: 0.02}       # defaults; null = must come from --var/meta
    series: {loss: [loss, train/loss, "*_loss"]}        # aliases: exact names, globs, re:regex
    groups:
      - name: loss
        rules:
          - alert: CrossEntropyAtChance
            expr: abs(loss - log(num_classes)) < chance_tol * log(num_classes)
            for_steps: 200                               # or for: 10m, or stale: 30m (live only)
            labels: {severity: critical}
            annotations: {summary: "...{{ value }}...", description: "what to check next"}
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from alertd.rules import template
from alertd.rules.compile import check_calls, lookback
from alertd.rules.expr import ExprError, Name, Node, parse, threshold_node, value_node, walk

SEVERITIES = ("critical", "warning", "info")
ACTIONS = ("stop",)
_RULE_KEYS = {"alert", "expr", "for", "for_steps", "for_step_span", "keep_firing_for_steps", "stale", "labels",
              "annotations", "severity", "series", "value", "action"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class RuleError(ValueError):
    """One or more problems in rule files; `problems` holds 'file:line: message' strings."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Rule:
    name: str
    file: str
    line: int
    group: str
    expr: str
    cond: Node | None          # None for a stale (no-data) rule
    value: Node | None
    threshold: Node | None     # the comparison's other side, when the condition compares `value`
    for_steps: int | str       # records, or the name of a variable holding them
    for_step_span: int | str   # training steps the streak must span (sparse logs), or a variable
    for_seconds: float
    keep_firing_steps: int     # a firing alert resolves only after this many false records (+1)
    stale_seconds: float | str | None  # seconds, or the name of a variable holding them
    severity: str
    labels: dict
    annotations: dict
    series: dict               # alias -> tuple of patterns
    vars: dict                 # variable defaults of the rule's file
    action: str | None
    lookback: int
    fingerprint: str           # changes when the rule's definition changes (hot reload)


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings remember the line of each key."""


def _construct_mapping(loader, node, deep=False):
    mapping = _Map(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.lines = {loader.construct_object(k, deep=True): k.start_mark.line + 1
                     for k, _ in node.value}
    return mapping


class _Map(dict):
    line = 0
    lines: dict = {}


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_duration(value) -> float:
    """'30s', '5m', '1.5h', '2d' or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise ValueError(f"bad duration {value!r} (use e.g. 30s, 5m, 2h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _patterns(value, where: str, problems: list[str]) -> tuple:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: a series alias is a name, glob or re:regex, or a list of them")
        return ()
    for v in value:
        if v.startswith("re:"):
            try:
                re.compile(v[3:])
            except re.error as e:
                problems.append(f"{where}: bad regex {v[3:]!r}: {e}")
    return tuple(value)


def _load_yaml(path: str, problems: list[str]):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}:1: cannot read: {e}")
        return None
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(f"{path}:{line}: invalid YAML: {getattr(e, 'problem', None) or e}")
        return None


def _rule(path: str, group: str, raw: _Map, file_vars: dict, file_series: dict,
          problems: list[str]) -> Rule | None:
    line = raw.line
    where = lambda key=None: f"{path}:{raw.lines.get(key, line) if key else line}"  # noqa: E731
    before = len(problems)
    for key in raw:
        if key not in _RULE_KEYS:
            problems.append(f"{where(key)}: unknown rule key {key!r}")
    name = raw.get("alert")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{where('alert')}: 'alert' must be a name like CrossEntropyAtChance")
        name = str(name)
    series = dict(file_series)
    if "series" in raw:
        if isinstance(raw["series"], dict):
            for alias, pats in raw["series"].items():
                series[alias] = _patterns(pats, where("series"), problems)
        else:
            problems.append(f"{where('series')}: 'series' maps aliases to names or globs")
    stale = None
    cond = value = None
    expr_text = raw.get("expr", "")
    if "stale" in raw:
        if isinstance(raw["stale"], str) and raw["stale"] in file_vars:
            stale = raw["stale"]  # a variable holding seconds: resolved per run
        else:
            try:
                stale = parse_duration(raw["stale"])
            except ValueError as e:
                problems.append(f"{where('stale')}: {e}")
        if "expr" in raw:
            problems.append(f"{where('stale')}: a rule has either 'expr' or 'stale', not both")
    elif not isinstance(expr_text, str) or not expr_text.strip():
        problems.append(f"{where()}: rule {name} needs an 'expr' (or 'stale: DURATION')")
    else:
        try:
            cond = parse(expr_text)
            value = parse(raw["value"]) if "value" in raw else value_node(cond)
            for p in check_calls(cond) + (check_calls(value) if "value" in raw else []):
                problems.append(f"{where('expr')}: {name}: {p}")
        except ExprError as e:
            key = "value" if "value" in raw and cond is not None else "expr"
            problems.append(f"{where(key)}: {name}: {e}")
    for_steps, for_step_span, for_seconds = 0, 0, 0.0
    for key in ("for_steps", "for_step_span"):
        if key not in raw:
            continue
        hold = raw[key]
        if isinstance(hold, str) and hold in file_vars:
            pass  # a variable: resolved per run, so a user can change the hold
        elif isinstance(hold, bool) or not isinstance(hold, int) or hold < 0:
            problems.append(f"{where(key)}: '{key}' must be a whole number >= 0 "
                            "or the name of a variable in 'vars'")
            continue
        if key == "for_steps":
            for_steps = hold
        else:
            for_step_span = hold
    keep = raw.get("keep_firing_for_steps", 0)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        problems.append(f"{where('keep_firing_for_steps')}: 'keep_firing_for_steps' must be a whole number >= 0")
        keep = 0
    if "for" in raw:
        try:
            for_seconds = parse_duration(raw["for"])
        except ValueError as e:
            problems.append(f"{where('for')}: {e}")
    labels = raw.get("labels") or {}
    annotations = raw.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        problems.append(f"{where()}: 'labels' and 'annotations' are mappings")
        labels, annotations = {}, {}
    labels = {str(k): str(v) for k, v in labels.items()}
    severity = str(raw.get("severity", labels.get("severity", "warning")))
    if severity not in SEVERITIES:
        problems.append(f"{where('severity')}: severity must be one of {', '.join(SEVERITIES)}")
    labels["severity"] = severity
    annotations = {str(k): str(v) for k, v in annotations.items()}
    for key, text in annotations.items():
        for p in template.check(text):
            problems.append(f"{where('annotations')}: {p}")
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        problems.append(f"{where('action')}: action must be one of {', '.join(ACTIONS)}")
    if len(problems) > before:
        return None
    definition = {k: raw[k] for k in sorted(raw)}
    definition.update(_series=series, _vars=file_vars)
    fingerprint = hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Rule(name=name, file=path, line=line, group=group, expr=str(expr_text), cond=cond,
                value=value, threshold=threshold_node(cond, value) if cond is not None else None,
                for_steps=for_steps, for_step_span=for_step_span, for_seconds=for_seconds,
                keep_firing_steps=keep,
                stale_seconds=stale,
                severity=severity, labels=labels, annotations=annotations, series=series,
                vars=dict(file_vars), action=action,
                lookback=max(lookback(cond), lookback(value)) if cond is not None else 0,
                fingerprint=fingerprint)


def load_file(path: str, problems: list[str]) -> list[Rule]:
    """Load one rule file, appending every problem to `problems`."""
    doc = _load_yaml(path, problems)
    if doc is None:
        return []
    if not isinstance(doc, dict):
        problems.append(f"{path}:1: a rule file is a mapping with 'groups'")
        return []
    for key in doc:
        if key not in ("vars", "series", "groups"):
            problems.append(f"{path}:{doc.lines.get(key, 1)}: unknown top-level key {key!r}")
    file_vars = doc.get("vars") or {}
    if not isinstance(file_vars, dict):
        problems.append(f"{path}:{doc.lines.get('vars', 1)}: 'vars' maps names to default values")
        file_vars = {}
    for k, v in file_vars.items():
        if not _NAME.match(str(k)) or (v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))):
            problems.append(f"{path}:{file_vars.lines.get(k, 1)}: var {k!r}: a name with a number or null")
    file_series = {}
    raw_series = doc.get("series") or {}
    if not isinstance(raw_series, dict):
        problems.append(f"{path}:{doc.lines.get('series', 1)}: 'series' maps aliases to patterns")
        raw_series = {}
    for alias, pats in raw_series.items():
        file_series[alias] = _patterns(pats, f"{path}:{raw_series.lines.get(alias, 1)}", problems)
    groups = doc.get("groups")
    if not isinstance(groups, list):
        problems.append(f"{path}:{doc.lines.get('groups', 1)}: 'groups' must be a list of groups")
        return []
    rules = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("rules"), list):
            problems.append(f"{path}:{getattr(g, 'line', 1)}: a group has a 'name' and a list of 'rules'")
            continue
        for raw in g["rules"]:
            if not isinstance(raw, dict):
                problems.append(f"{path}:{g.line}: each rule is a mapping")
                continue
            rule = _rule(path, str(g.get("name", "")), raw, dict(file_vars), file_series, problems)
            if rule is not None:
                rules.append(rule)
    return rules


def rule_files(paths: list[str]) -> list[str]:
    """Expand directories to the *.yaml/*.yml rule files they hold (not their tests/)."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.iterdir() if f.suffix in (".yaml", ".yml"))
        else:
            out.append(p)
    return out


def load_rules(paths: list[str]) -> RuleSet:
    """Load and validate rule files; raises RuleError listing every problem."""
    problems: list[str] = []
    files = rule_files(paths)
    if not files:
        raise RuleError([f"{', '.join(paths) or '(none)'}: no rule files found"])
    rules: list[Rule] = []
    for f in files:
        rules += load_file(f, problems)
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.name in seen:
            first = seen[r.name]
            problems.append(f"{r.file}:{r.line}: duplicate rule {r.name} (first at {first.file}:{first.line})")
        seen[r.name] = r
    if problems:
        raise RuleError(problems)
    return RuleSet(rules, files)


def referenced_names(rule: Rule) -> set[str]:
    """Bare and quoted names a rule's expressions use (for binding and checks)."""
    names = set()
    for root in (rule.cond, rule.value):
        if root is not None:
            names |= {n.name for n in walk(root) if isinstance(n, Name)}
    return names
