"""Every broken sample fires its family's rule after the bug's onset; no healthy sample fires
anything of severity warning or above. The logs come from real tiny trainings (samples/)."""
from pathlib import Path

import pytest
import yaml

from alertd.cli import builtin_rules
from alertd.evaluate import Engine
from alertd.replay import replay_file
from alertd.rules.rulefile import load_rules

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MANIFEST = yaml.safe_load((SAMPLES / "MANIFEST.yaml").read_text())["samples"]
PACK = load_rules([builtin_rules()])


def replay(entry) -> list:
    events = []
    engine = Engine(PACK, entry.get("vars") or {})
    replay_file(engine, str(SAMPLES / entry["file"]), "auto", events.append)
    return events


def first_firing(events, rule):
    steps = [e.step for e in events if e.rule == rule and e.state == "firing"]
    return min(steps) if steps else None


@pytest.mark.parametrize("entry", [e for e in MANIFEST if not e["healthy"]], ids=lambda e: Path(e["file"]).stem)
def test_broken_sample_fires_its_rules_after_onset(entry):
    events = replay(entry)
    for rule in entry["expect"]:
        step = first_firing(events, rule)
        assert step is not None, f"{rule} never fired on {entry['file']}"
        assert step >= entry["onset_step"], f"{rule} fired at {step}, before the bug's onset {entry['onset_step']}"
    allowed = set(entry["expect"]) | set(entry.get("may_fire") or [])
    early = [(e.rule, e.step) for e in events
             if e.state == "firing" and e.step < entry["onset_step"] and e.severity != "info"]
    assert not early, f"alerts before the onset: {early}"
    unexpected = {e.rule for e in events if e.state == "firing" and e.severity != "info"} - allowed
    assert not unexpected, f"rules that have no business firing on {entry['file']}: {unexpected}"


@pytest.mark.parametrize("entry", [e for e in MANIFEST if e["healthy"]], ids=lambda e: Path(e["file"]).stem)
def test_healthy_sample_raises_nothing_of_warning_or_above(entry):
    loud = [(e.rule, e.step, e.summary) for e in replay(entry) if e.severity in ("warning", "critical")]
    assert not loud
