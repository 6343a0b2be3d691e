"""alertd: rule-based alerting over training-metric streams.

    from alertd import Engine, load_rules, make_parser
    engine = Engine(load_rules(["rules/"]), cli_vars={"num_classes": 400})
    parser = make_parser("auto", "train.log")
    for event in engine.feed("train.log", parser.feed(open("train.log", "rb").read())):
        print(event.to_json())

The torch probe is `alertd.probe.Probe` (imports torch only when used).
"""
from alertd.evaluate import Engine
from alertd.parse import make_parser
from alertd.record import AlertEvent, Parsed
from alertd.rules.rulefile import RuleError, load_rules

__version__ = "0.1.0"
__all__ = ["AlertEvent", "Engine", "Parsed", "RuleError", "load_rules", "make_parser"]
