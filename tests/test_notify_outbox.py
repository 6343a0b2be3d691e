"""Outbox: durable journal, ordered delivery, backoff with an injected clock, restart recovery."""
import json
import math
import os
import stat

from alertd.notify.outbox import Outbox
from alertd.record import FIRING, RESOLVED, AlertEvent


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Receiver:
    """A send function that records what it took and fails while told to."""

    def __init__(self) -> None:
        self.got: list[AlertEvent] = []
        self.down = False
        self.calls = 0

    def __call__(self, event: AlertEvent) -> bool:
        self.calls += 1
        if self.down:
            return False
        self.got.append(event)
        return True


def ev(step: int, state: str = FIRING) -> AlertEvent:
    return AlertEvent(rule="LossSpike", state=state, run="r.jsonl", step=step, value=float("nan"),
                      severity="warning", labels={}, summary=f"s{step}", action="stop")


def test_delivers_in_order_and_keeps_values(tmp_path):
    rx = Receiver()
    box = Outbox(str(tmp_path), rx, clock=Clock())
    for i in range(5):
        box.put(ev(i))
    assert box.pending() == 5 and box.next_due() == 0.0
    assert box.pump() == 5
    assert [e.step for e in rx.got] == [0, 1, 2, 3, 4]
    assert box.pending() == 0 and box.next_due() is None


def test_backoff_head_of_line_then_all_in_order(tmp_path):
    clock, rx = Clock(), Receiver()
    box = Outbox(str(tmp_path), rx, clock=clock, base_backoff=1.0, max_backoff=4.0)
    box.put(ev(1))
    box.put(ev(2, RESOLVED))
    rx.down = True
    delays = []
    for _ in range(5):
        assert box.pump() == 0
        delays.append(box.next_due())
        assert box.pump() == 0  # not due yet: no new attempt
        clock.t += box.next_due()
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert rx.calls == 5  # one attempt per due time, only ever the head
    rx.down = False
    assert box.pump() == 2
    assert [(e.step, e.state) for e in rx.got] == [(1, FIRING), (2, RESOLVED)]
    box.put(ev(3))  # success reset the backoff
    assert box.next_due() == 0.0


def test_restart_sends_pending_only(tmp_path):
    rx = Receiver()
    box = Outbox(str(tmp_path), rx, clock=Clock())
    for i in range(3):
        box.put(ev(i))
    assert box.pump() == 3
    rx.down = True
    for i in range(3, 6):
        box.put(ev(i))
    box.pump()
    del box  # the process "dies" with 3 pending
    rx.down = False
    again = Outbox(str(tmp_path), rx, clock=Clock())
    assert again.pending() == 3
    assert again.pump() == 3
    assert [e.step for e in rx.got] == [0, 1, 2, 3, 4, 5]  # none twice, none lost
    reloaded = rx.got[3]  # read back from the journal: NaN and action survive
    assert math.isnan(reloaded.value) and reloaded.action == "stop" and reloaded.summary == "s3"
    again.put(ev(6))  # sequence continues after the restart
    assert Outbox(str(tmp_path), Receiver()).pending() == 1


def test_torn_journal_line_is_dropped(tmp_path):
    box = Outbox(str(tmp_path), Receiver())
    box.put(ev(1))
    with open(tmp_path / "outbox.jsonl", "a") as f:
        f.write('{"seq": 2, "event": {"rule"')  # a crash mid-append
    rx = Receiver()
    again = Outbox(str(tmp_path), rx)
    again.put(ev(3))
    assert again.pump() == 2 and [e.step for e in rx.got] == [1, 3]


def test_state_files_are_private(tmp_path):
    state = tmp_path / "state"
    rx = Receiver()
    clock = Clock()
    box = Outbox(str(state), rx, clock=clock, name="ops")
    box.put(ev(1))
    rx.down = True
    box.put(ev(2))
    box.pump()
    rx.down = False
    clock.t += 1.0
    assert box.pump() == 2
    assert sorted(os.listdir(state)) == ["ops.done.json", "ops.jsonl"]
    for name in os.listdir(state):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert json.loads((state / "ops.done.json").read_text()) == {"done": 2}


def test_in_memory_still_retries():
    clock, rx = Clock(), Receiver()
    box = Outbox(None, rx, clock=clock, base_backoff=0.5)
    box.put(ev(1))
    rx.down = True
    box.pump()
    assert box.next_due() == 0.5
    rx.down = False
    clock.t += 0.5
    assert box.pump() == 1


def test_raising_sender_counts_as_failure():
    def boom(event: AlertEvent) -> bool:
        raise RuntimeError("json://u:secret@h")

    box = Outbox(None, boom, clock=Clock())
    box.put(ev(1))
    assert box.pump() == 0 and box.pending() == 1 and box.next_due() == 1.0
