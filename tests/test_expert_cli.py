"""`python -m training.expert`: a lesson's task and the expert's layout, as text grids."""

from __future__ import annotations

import subprocess
import sys

from shared_schema.grid import parse_grid
from training.expert import expert_layout
from training.lessons import generate
from training.sim import simulate


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "training.expert", *args], capture_output=True, text=True, check=False)


def test_prints_task_layout_and_score() -> None:
    result = run("--kind", "belt-wall", "--seed", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("task (belt-wall, seed 3):")
    assert "expert layout:" in out and out.rstrip().endswith("score 1.000")
    grid = out.split("expert layout:\n")[1].split("\n\n")[0]
    assert "d" in grid and "u" in grid  # the wall is tunnelled
    parse_grid(grid)


def test_says_so_when_it_has_no_layout() -> None:
    # a chain of three machines rarely fits between its markers on 8x8
    seed = next(s for s in range(50) if expert_layout(generate("trial-3", s, 8).task) is None)
    result = run("--kind", "trial-3", "--seed", str(seed), "--size", "8")
    assert result.returncode == 0
    assert "the expert found no layout for this task: score 0.000 (upper bound" in result.stdout


def test_trials_are_scored_against_their_upper_bound() -> None:
    result = run("--kind", "trial-2", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "expert layout:" in result.stdout and "(upper bound " in result.stdout


def test_the_expert_solves_every_lesson_it_generated() -> None:
    for kind in ("belt-routing", "belt-wall", "belt-crossing", "split", "merge"):
        for seed in range(10):
            lesson = generate(kind, seed)
            layout = expert_layout(lesson.task, lesson.protected)
            assert layout is not None, (kind, seed)
            assert simulate(layout).rates == list(lesson.best)


def test_unknown_kind_is_refused() -> None:
    result = run("--kind", "spaghetti")
    assert result.returncode == 2 and "invalid choice: 'spaghetti'" in result.stderr


def test_grid_size_is_checked() -> None:
    result = run("--kind", "split", "--size", "40")
    assert result.returncode == 2 and "--size must be 8 to 32, not 40" in result.stderr
