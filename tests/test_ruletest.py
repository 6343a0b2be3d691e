"""`alertd test`: the pack's own tests pass, and fail naming the mismatch when a threshold moves."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.ruletest import expand

PACK = Path(__file__).resolve().parent.parent / "rules"


def alertd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "alertd", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("text,values", [
    ("1 0.5 0.25", [1.0, 0.5, 0.25]),
    ("5.99+0x3", [5.99] * 4),
    ("3-1x2", [3.0, 2.0, 1.0]),
    ("_ _x2 1", [None, None, None, 1.0]),
    ("nan inf -inf 1e-3+1e-3x1", None),
])
def test_expanding_notation(text, values):
    got = expand(text)
    if values is None:
        assert len(got) == 5 and got[0] != got[0] and got[1] == float("inf") and got[2] == float("-inf")
        assert got[3:] == [1e-3, 2e-3]
    else:
        assert got == values


def test_bad_notation_is_a_clear_error():
    with pytest.raises(ValueError, match="bad series term 'x5'"):
        expand("1 x5")


def test_pack_tests_pass():
    result = alertd("test", str(PACK / "tests"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")


def test_a_changed_threshold_fails_naming_the_mismatch(tmp_path):
    pack = tmp_path / "rules"
    shutil.copytree(PACK, pack, ignore=shutil.ignore_patterns("__pycache__"))
    loss = pack / "loss.yaml"
    loss.write_text(loss.read_text().replace("chance_steps: 150", "chance_steps: 170"))
    result = alertd("test", str(pack / "tests" / "loss_test.yaml"))
    assert result.returncode == 1
    assert "at step 258: CrossEntropyAtChance{loss=loss} in train.jsonl: expected firing, got pending" in result.stdout
    assert "missing event: {'step': 258, 'rule': 'CrossEntropyAtChance', 'state': 'firing'}" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("failed") and " 0 failed" not in result.stdout


def test_unusable_test_file_exits_2(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("tests: nope\n")
    result = alertd("test", str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr
