"""Policy: the resend predicate (table), repeats, silences, grouping by run, storm digest, restart."""
import os
import stat

import pytest

from alertd.notify.policy import Policy, needs_sending
from alertd.notify.silence import Silence, Silences
from alertd.record import FIRING, RESOLVED, AlertEvent

H = 3600.0


@pytest.mark.parametrize("state,last_sent,now,repeat,expected", [
    (FIRING, None, 100.0, H, True),          # new alert
    (FIRING, 100.0, 100.0, H, False),        # just sent
    (FIRING, 100.0, 100.0 + H - 1, H, False),
    (FIRING, 100.0, 100.0 + H, H, True),     # repeat interval reached
    (FIRING, 100.0, 1e9, None, False),       # repeats off
    (FIRING, None, 100.0, None, True),       # never sent (silence ended): send even without repeats
    (RESOLVED, 100.0, 101.0, H, True),       # announced, now over
    (RESOLVED, None, 101.0, H, False),       # never announced (silenced): no resolve either
])
def test_needs_sending_table(state, last_sent, now, repeat, expected):
    assert needs_sending(state, last_sent, now, repeat) is expected


def ev(rule="LossSpike", state=FIRING, run="a.jsonl", step=10, **labels):
    return AlertEvent(rule=rule, state=state, run=run, step=step, value=1.0, severity="warning",
                      labels=labels, summary=f"{rule} {step}")


def test_firing_repeat_resolve():
    p = Policy(repeat_interval=100.0)
    assert p.decide([ev()], 0.0) == [ev()]
    assert p.decide([ev(step=11)], 10.0) == []   # same incident fires again: not a new page
    assert p.next_due(10.0) == 90.0
    assert p.tick(50.0) == []
    assert p.tick(100.0) == [ev(step=11)]        # repeat carries the latest event
    assert p.decide([ev(state=RESOLVED, step=12)], 120.0) == [ev(state=RESOLVED, step=12)]
    assert p.tick(1e6) == [] and p.next_due(1e6) is None
    assert p.decide([ev(state=RESOLVED, step=13)], 130.0) == []  # resolve of nothing announced


def test_silence_mutes_then_expires(tmp_path):
    s = Silences(str(tmp_path))
    sid = s.add(Silence(rule="Loss*", matchers={"run": "*/exp7/*", "gpu": "0"}, expires=50.0))
    p = Policy(repeat_interval=None, silences=Silences(str(tmp_path)))  # reloaded from disk
    muted = ev(run="/r/exp7/t.jsonl", gpu="0")
    other = ev(run="/r/exp8/t.jsonl", gpu="0")
    assert p.decide([muted, other], 0.0) == [other]
    assert p.next_due(0.0) == 50.0                # look again when the silence ends
    assert p.tick(49.0) == []
    assert p.tick(50.0) == [muted]                # still firing after the silence: announce once
    assert p.tick(60.0) == []
    assert s.remove(sid) and not s.remove(sid)
    assert stat.S_IMODE(os.stat(tmp_path / "silences.json").st_mode) == 0o600


def test_silenced_alert_resolving_sends_nothing():
    sil = Silences()
    sil.add(Silence(rule="LossSpike", expires=100.0))
    p = Policy(silences=sil)
    assert p.decide([ev()], 0.0) == []
    assert p.decide([ev(state=RESOLVED)], 200.0) == []


def test_group_by_run():
    p = Policy()
    out = p.decide([ev("A", run="x.jsonl"), ev("B", run="x.jsonl"), ev("C", run="y.jsonl")], 0.0)
    assert len(out) == 2
    group, single = out
    assert group.run == "x.jsonl" and group.rule == "group (2 alerts)"
    assert "A 10" in group.description and "B 10" in group.description
    assert single.rule == "C"
    assert len(Policy(group_by_run=False).decide([ev("A"), ev("B")], 0.0)) == 2


def test_storm_becomes_one_digest():
    p = Policy(storm_limit=3, storm_window=60.0, group_by_run=False)
    out = p.decide([ev(f"R{i}") for i in range(10)], 0.0)
    assert [e.rule for e in out] == ["R0", "R1", "R2"]
    assert p.decide([ev("R10")], 30.0) == []      # still within the minute: held
    assert p.next_due(30.0) == 30.0
    assert p.tick(59.0) == []
    (d,) = p.tick(60.0)
    assert d.rule == "storm digest (8 alerts)"
    assert all(f"R{i} 10" in d.description for i in range(3, 11))
    assert p.tick(61.0) == []


def test_restart_does_not_page_twice(tmp_path):
    p = Policy(repeat_interval=H, state_dir=str(tmp_path))
    assert p.decide([ev()], 0.0) == [ev()]
    again = Policy(repeat_interval=H, state_dir=str(tmp_path))
    assert again.decide([ev(step=5)], 60.0) == []  # engine re-fired after its restart
    assert again.decide([ev(state=RESOLVED)], 70.0) == [ev(state=RESOLVED)]
    assert stat.S_IMODE(os.stat(tmp_path / "policy.json").st_mode) == 0o600
