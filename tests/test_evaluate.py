"""`python -m training.evaluate`: held-out scores per kind, as JSON lines and a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluate import main, ordered_kinds
from training.lessons import KINDS, TRIAL_KINDS


def test_scores_the_expert_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "table.md"
    assert main(["--policy", "expert", "--seeds", "3", "--kinds", "one-belt", "trial-1", "--markdown", str(table)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["one-belt", "trial-1"]
    assert rows[0]["mean_score"] == 1.0 and rows[0]["solved"] == 1.0 and rows[0]["tasks"] == 3
    assert 0.0 <= rows[1]["mean_score"] <= 1.0
    text = table.read_text()
    assert text.startswith("| kind (expert, 11x11) |") and "| one-belt | 3 | 1.000 ± 0.000 | 100% |" in text


def test_refuses_unknown_policies_and_seed_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--policy", "oracle"])
    assert "unknown policy 'oracle'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--policy", "expert", "--seeds", "0"])
    assert "--seeds must be" in capsys.readouterr().err


def test_kinds_are_listed_lessons_first_then_trials() -> None:
    kinds = ordered_kinds()
    assert sorted(kinds) == sorted(KINDS)
    assert kinds[-3:] == sorted(TRIAL_KINDS)
