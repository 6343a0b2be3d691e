"""The state machine, walked record by record from a table (like Prometheus' alerting tests)."""
import polars as pl
import pytest

from alertd.record import STEP, TIME
from alertd.rules import alert
from alertd.rules.alert import Carry


def walk(conds, for_steps=0, for_seconds=0.0, times=None, cut=None, keep=0, span=0, steps=None):
    """Run the machine over conditions (True/False/None), optionally in two batches."""
    times = times or [float(i) for i in range(len(conds))]
    steps = steps or list(range(len(conds)))
    frame = pl.DataFrame({"c": conds, TIME: times, STEP: steps}, schema={"c": pl.Boolean, TIME: pl.Float64, STEP: pl.Int64})
    carry, out = Carry(), []
    parts = [frame] if cut is None else [frame.head(cut), frame.slice(cut)]
    for part in parts:
        row = alert.carry_row(carry, for_steps, "m_", span)
        rows = part.with_columns(pl.lit(v, dtype=t).alias(k) for (k, v), t in zip(row.items(), alert.CARRY_TYPES))
        for stage in alert.transitions("c", "m_", for_seconds, keep):
            rows = rows.with_columns(stage)
        for r in rows.iter_rows(named=True):
            out.append("F" if r["m_fire"] else "R" if r["m_resolve"] else ".")
        carry = alert.advance(carry, rows.row(-1, named=True), "m_")
    return "".join(out), carry


T, F, N = True, False, None


@pytest.mark.parametrize("conds,for_steps,expected", [
    ([F, T, T, F, T], 0, ".F.RF"),                      # no hold: fires at once, once per episode
    ([T, T, T, T], 3, "..F."),                          # fires on the 3rd consecutive true record
    ([T, T, F, T, T, T], 3, ".....F"),                  # one false record drops a pending alert
    ([T, T, T, F, F], 2, ".F.R."),                      # resolves on the first false record
    ([T, N, T, N, T], 3, "....F"),                      # unknown records neither count nor break
    ([T, T, N, F], 1, "F..R"),                          # ... nor resolve a firing alert
    ([N, N, N], 0, "..."),
])
def test_transitions(conds, for_steps, expected):
    got, _ = walk(conds, for_steps)
    assert got == expected
    for cut in range(1, len(conds)):
        assert walk(conds, for_steps, cut=cut)[0] == expected, f"cut at {cut}"


@pytest.mark.parametrize("conds,for_steps,keep,expected", [
    ([T, T, F, T, F, F, F, T], 2, 2, ".F....R."),   # short gaps keep it firing; 3 falses end it
    ([T, F, F, T, T, F, F, F], 1, 2, "F......R"),
    ([T, T, F, F, F, T, T], 2, 2, ".F..R.F"),       # a new episode needs the full hold again
    ([T, F, N, F, N, F], 1, 2, "F....R"),           # unknown records do not count as false
])
def test_keep_firing_damps_flapping(conds, for_steps, keep, expected):
    assert walk(conds, for_steps, keep=keep)[0] == expected
    for cut in range(1, len(conds)):
        assert walk(conds, for_steps, keep=keep, cut=cut)[0] == expected, f"cut at {cut}"


def test_step_span_hold_on_a_sparse_log():
    # A record every 10 steps: a 50-step span is met on the 6th true record (steps 0..50).
    conds, steps = [T] * 8, [i * 10 for i in range(8)]
    assert walk(conds, span=50, steps=steps)[0] == ".....F.."
    for cut in range(1, 8):
        assert walk(conds, span=50, steps=steps, cut=cut)[0] == ".....F..", f"cut at {cut}"
    assert walk(conds, span=50)[0] == "........"      # dense steps 0..7 never span 50


def test_time_hold():
    conds = [T, T, T, T, T, F]
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    got, _ = walk(conds, for_seconds=25.0, times=times)
    assert got == "...F.R"
    assert walk(conds, for_seconds=25.0, times=times, cut=2)[0] == "...F.R"


def test_carry_states():
    _, carry = walk([T, T], for_steps=3)
    assert carry.state() == alert.PENDING and carry.streak == 2
    _, carry = walk([T, T, T], for_steps=3)
    assert carry.state() == alert.FIRING
    _, carry = walk([T, F], for_steps=3)
    assert carry.state() == alert.INACTIVE
    assert Carry.from_dict(carry.to_dict()) == carry
