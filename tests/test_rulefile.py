"""Rule files: load, validate every problem with file:line, never half-load."""
import textwrap

import pytest

from alertd.cli import builtin_rules, main
from alertd.rules.rulefile import RuleError, load_rules, parse_duration


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_builtin_pack_loads_and_has_the_core_rules():
    rules = {r.name: r for r in load_rules([builtin_rules()]).rules}
    assert rules["NonFiniteMetric"].for_steps == 0 and rules["NonFiniteMetric"].severity == "critical"
    assert rules["CrossEntropyAtChance"].for_step_span == "chance_steps"
    assert rules["CrossEntropyAtChance"].vars["num_classes"] is None
    assert rules["RunStalled"].stale_seconds == "stall_seconds" and rules["RunStalled"].vars["stall_seconds"] == 1800


def test_every_problem_is_listed_with_file_and_line(tmp_path):
    path = write(tmp_path, "bad.yaml", """\
        vars:
          tol: 0.1
        groups:
          - name: g
            rules:
              - alert: A
                expr: loss >
              - alert: B
                expr: nosuch(loss)
                severity: loud
              - alert: C
                expr: mean(loss, tol) > 1
                for: soon
                bogus: 1
        """)
    with pytest.raises(RuleError) as e:
        load_rules([path])
    problems = e.value.problems
    assert f"{path}:7: A: unexpected 'end of expression' (at column 7)" in problems
    assert f"{path}:9: B: unknown function 'nosuch'" in problems
    assert any(p.startswith(f"{path}:10: severity") for p in problems)
    assert any(p.startswith(f"{path}:12: C: mean(): the window") for p in problems)
    assert any(p.startswith(f"{path}:13: bad duration") for p in problems)
    assert f"{path}:14: unknown rule key 'bogus'" in problems


def test_invalid_yaml_names_its_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "groups:\n  - name: g\n    rules: [\n")
    with pytest.raises(RuleError) as e:
        load_rules([path])
    assert e.value.problems[0].startswith(f"{path}:4: invalid YAML")


def test_duplicate_rule_names_across_files(tmp_path):
    body = "groups:\n  - name: g\n    rules:\n      - alert: Same\n        expr: x > 1\n"
    a, b = write(tmp_path, "a.yaml", body), write(tmp_path, "b.yaml", body)
    with pytest.raises(RuleError) as e:
        load_rules([a, b])
    assert e.value.problems == [f"{b}:4: duplicate rule Same (first at {a}:4)"]


def test_durations():
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300 and parse_duration(2) == 2
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_check_command(tmp_path, capsys):
    assert main(["check", builtin_rules()]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = write(tmp_path, "bad.yaml", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: (x\n")
    assert main(["check", bad]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}:5: A: expected ')', found 'end of expression' (at column 3)"
