"""Rendering of alert events into notification title, body and apprise type."""
import math

import pytest

from alertd.notify import render
from alertd.record import FIRING, RESOLVED, AlertEvent


def ev(state=FIRING, severity="critical", value=2.302585, **kw):
    return AlertEvent(rule="CEAtChance", state=state, run="/runs/exp7/train.jsonl", step=312,
                      value=value, severity=severity, labels={"head": "cls", "gpu": "0"},
                      summary="CE stuck at log(10)", description="The model predicts uniformly.", **kw)


def test_title_names_state_rule_run_step():
    assert render.title(ev()) == "[FIRING] CEAtChance · run train.jsonl · step 312"
    assert render.title(ev(RESOLVED)).startswith("[RESOLVED] CEAtChance")


def test_body_names_everything():
    b = render.body(ev(action="stop"))
    for part in ["/runs/exp7/train.jsonl", "CEAtChance", "312", "2.30259", "firing", "critical",
                 "gpu=0, head=cls", "CE stuck at log(10)", "The model predicts uniformly.", "stop"]:
        assert part in b
    assert "resolved" in render.body(ev(RESOLVED))


@pytest.mark.parametrize("value,text", [(None, "n/a"), (math.nan, "nan"), (math.inf, "inf"),
                                        (1e-9, "1e-09"), (3.0, "3")])
def test_value_format(value, text):
    assert f"value:    {text}" in render.body(ev(value=value))


@pytest.mark.parametrize("state,severity,kind", [
    (FIRING, "critical", "failure"), (FIRING, "warning", "warning"), (FIRING, "info", "info"),
    (FIRING, "unknown", "warning"), (RESOLVED, "critical", "success"), (RESOLVED, "info", "success"),
])
def test_notify_type(state, severity, kind):
    assert render.notify_type(ev(state, severity)) == kind
