"""The crash window between "notification put in the outbox" and "state saved", made deterministic:
the first daemon's save is disabled (as if it died right before it), a second one starts on the same
state dir and evaluates the same records again. Nothing is printed or notified twice."""
import pytest
from alertd_proc import TEST_RULES, jsonl_line
from receivers import HTTPReceiver

from alertd.daemon import Daemon, Options
from alertd.evaluate import Engine
from alertd.notify.apprise_sink import AppriseSink
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import Outbox
from alertd.notify.policy import Policy
from alertd.rules.rulefile import load_rules


@pytest.fixture(autouse=True, scope="module")
def apprise_worker_pool():
    """Start apprise's process-wide worker pool (it lives as long as the process, by design) before
    the per-test thread-leak check looks."""
    from apprise.apprise import get_shared_executor
    get_shared_executor().submit(lambda: None).result()
    yield


def daemon(tmp_path, rx, printed):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    state = tmp_path / "state"
    outbox = Outbox(str(state / "outbox"), AppriseSink([f"json://{rx.url}/h"]).send)
    opts = Options(patterns=[str(tmp_path / "a.jsonl")], state_dir=str(state), force_poll=True)
    return Daemon(Engine(load_rules([str(rules)])), opts, printed.append, Delivery(outbox),
                  Policy(group_by_run=False))


def close(d):
    d.waker.close()
    d.tailer.close()


@pytest.mark.parametrize("delivered_before_crash", [False, True])
def test_crash_before_save_neither_prints_nor_notifies_twice(tmp_path, delivered_before_crash):
    (tmp_path / "a.jsonl").write_text(jsonl_line(0, 1.0) + "\n" + jsonl_line(1, float("nan")) + "\n")
    with HTTPReceiver() as rx:
        first_printed, second_printed = [], []
        first = daemon(tmp_path, rx, first_printed)
        first.store.save = lambda *args: None  # dies right after queuing, before saving its state
        assert first.step() == 1
        outbox = first.delivery.outbox
        assert outbox.pending() == 1
        if delivered_before_crash:
            assert outbox.pump() == 1  # the receiver has it; the state still says "not read"
        close(first)

        second = daemon(tmp_path, rx, second_printed)
        assert second.store.offsets is None  # nothing was saved: it reads the records again
        assert second.step() == 0            # ... evaluates them again, prints nothing again
        assert second.delivery.outbox.pending() == (0 if delivered_before_crash else 1)
        second.delivery.outbox.pump()
        with open(tmp_path / "a.jsonl", "a") as f:
            f.write(jsonl_line(2, 1.0) + "\n")
        assert second.step() == 1            # the resolve is new: printed and notified once
        second.delivery.outbox.pump()
        close(second)
    assert [(e.rule, e.state, e.step) for e in first_printed] == [("LossNaN", "firing", 1)]
    assert [(e.rule, e.state, e.step) for e in second_printed] == [("LossNaN", "resolved", 2)]
    assert [m["title"].split(" ·")[0] for m in rx.messages()] == ["[FIRING] LossNaN", "[RESOLVED] LossNaN"]
