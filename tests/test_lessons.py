"""Lessons: deterministic, solvable as stated, and with nothing in a solution that idles."""

from __future__ import annotations

import pytest

from shared_schema.entities import Entity
from training.lessons import KINDS, generate
from training.sim import power_mean_score, simulate

SEEDS = range(25)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_lesson(kind: str) -> None:
    a, b = generate(kind, 7), generate(kind, 7)
    assert a.task == b.task and a.solution == b.solution and a.best == b.best
    assert any(generate(kind, seed).task != a.task for seed in range(8, 16))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("size", [8, 11, 32])
def test_solutions_deliver_what_the_lesson_says(kind: str, size: int) -> None:
    for seed in SEEDS:
        lesson = generate(kind, seed, size)
        assert all(rate > 0 for rate in lesson.best), (kind, seed)
        assert simulate(lesson.solution).rates == pytest.approx(list(lesson.best))
        assert power_mean_score(simulate(lesson.task).rates, list(lesson.best)) < 1.0  # not solved yet
        assert all(lesson.task.entity(x, y) == Entity.EMPTY for _, x, y in lesson.solution_entities)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_orphans_and_nothing_to_remove(kind: str) -> None:
    """Every entity of a solution is needed: removing any one never raises the score."""
    for seed in SEEDS:
        lesson = generate(kind, seed)
        best = list(lesson.best)
        for _, x, y in lesson.solution_entities:
            fewer = lesson.solution.copy()
            fewer.remove(x, y)
            assert power_mean_score(simulate(fewer).rates, best) < 1.0, (kind, seed, x, y)


def test_protected_tiles_are_left_alone() -> None:
    for seed in SEEDS:
        lesson = generate("belt-crossing", seed)
        assert lesson.protected
        for x, y in lesson.protected:
            assert lesson.solution.entity(x, y) == lesson.task.entity(x, y)
        assert all((x, y) not in lesson.protected for _, x, y in lesson.solution_entities)


def test_wall_and_crossing_lessons_need_undergrounds() -> None:
    for kind in ("belt-wall", "belt-crossing"):
        for seed in range(10):
            kinds = {k for k, _, _ in generate(kind, seed).solution_entities}
            assert Entity.UNDERGROUND in kinds, (kind, seed)


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown lesson kind 'belts'"):
        generate("belts", 0)
    with pytest.raises(ValueError, match="8 to 32 tiles a side, not 40"):
        generate("one-belt", 0, 40)
