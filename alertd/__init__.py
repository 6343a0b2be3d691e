"""alertd: rule-based alerting over training-metric streams.

    from alertd import Engine, load_rules, make_parser
    engine = Engine(load_rules(["rules/"]), cli_vars={"num_classes": 400})
    parser = make_parser("auto", "train.log")
    for event in engine.feed("train.log", parser.feed(open("train.log", "rb").read())):
        print(event.to_json())

The torch probe is `alertd.probe.Probe` (imports torch only when used).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["AlertEvent", "Engine", "Parsed", "RuleError", "load_rules", "make_parser"]

# Imported on first use (PEP 562), so that importing a submodule does not import polars: the
# command line sizes polars' thread pool (alertd.launch) before polars is first imported.
_WHERE = {"Engine": "alertd.evaluate", "make_parser": "alertd.parse", "AlertEvent": "alertd.record",
          "Parsed": "alertd.record", "RuleError": "alertd.rules.rulefile", "load_rules": "alertd.rules.rulefile"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'alertd' has no attribute {name!r}")
