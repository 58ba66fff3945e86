"""`python -m training.sim FILE.yaml ...`: what a person checking fixtures sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURE_DIR

GOOD = """\
description: two belts carry a full belt
factory: |
  S> b> b> K>
items: [{x: 0, y: 0, item: iron-plate}, {x: 3, y: 0, item: iron-plate}]
throughput: [{item: iron-plate, per_second: 15}]
"""
BAD = """\
description: an inserter is not a belt
factory: |
  S> i> K>
items: [{x: 0, y: 0, item: iron-plate}, {x: 2, y: 0, item: iron-plate}]
throughput: [{item: iron-plate, per_second: 15}]
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "training.sim", *args], capture_output=True, text=True, check=False)


def test_passing_files_print_the_count_and_exit_0() -> None:
    result = run(str(FIXTURE_DIR / "belts.yaml"), str(FIXTURE_DIR / "splitters.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith("passed, 0 failed")


def test_a_failing_document_is_named_with_expected_and_got(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(GOOD + "---\n" + BAD)
    result = run(str(path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "1 passed, 1 failed"
    assert len(lines) == 2
    assert "mixed.yaml#2" in lines[0] and "an inserter is not a belt" in lines[0]
    assert "expected [('iron-plate', 15.0)]" in lines[0] and "got [('iron-plate', 0.86)]" in lines[0]


def test_explain_shows_sinks_and_every_entity(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = run("--explain", str(path))
    assert result.returncode == 0
    assert "sink (3, 0) iron-plate: 15/s" in result.stdout
    assert "belt> (1, 0): left 7.5 iron-plate | right 7.5 iron-plate" in result.stdout


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("factory: |\n  S> q>\n")
    result = run(str(path))
    assert result.returncode == 2
    assert "broken.yaml, document 1" in result.stderr and "unknown tile 'q>'" in result.stderr
