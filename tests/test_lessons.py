"""Lessons: deterministic, solvable as stated, and with nothing in a solution that idles."""

from __future__ import annotations

import numpy as np
import pytest

from shared_schema.catalog import load_catalog
from shared_schema.entities import Entity
from shared_schema.world import Channel
from training.lessons import HELD_OUT_SEEDS, KINDS, TRIAL_KINDS, generate
from training.lessons.trials import chain_bound, chain_leaves, random_chain
from training.sim import power_mean_score, simulate
from training.sim.paths import on_path_fraction

SEEDS = range(25)
LESSONS = sorted(set(KINDS) - TRIAL_KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_lesson(kind: str) -> None:
    a, b = generate(kind, 7), generate(kind, 7)
    assert a.task == b.task and a.solution == b.solution and a.best == b.best
    assert any(generate(kind, seed).task != a.task for seed in range(8, 16))


@pytest.mark.parametrize("kind", LESSONS)
@pytest.mark.parametrize("size", [8, 11, 32])
def test_solutions_deliver_what_the_lesson_says(kind: str, size: int) -> None:
    for seed in SEEDS:
        lesson = generate(kind, seed, size)
        assert lesson.solution is not None
        assert all(rate > 0 for rate in lesson.best), (kind, seed)
        assert simulate(lesson.solution).rates == pytest.approx(list(lesson.best))
        assert power_mean_score(simulate(lesson.task).rates, list(lesson.best)) < 1.0  # not solved yet
        assert all(lesson.task.entity(x, y) == Entity.EMPTY for _, x, y in lesson.solution_entities)


@pytest.mark.parametrize("kind", LESSONS)
def test_no_orphans_and_nothing_to_remove(kind: str) -> None:
    """Every entity of a solution is needed: removing any one lowers the score."""
    for seed in SEEDS:
        lesson = generate(kind, seed)
        assert lesson.solution is not None
        best = list(lesson.best)
        for _, x, y in lesson.solution_entities:
            fewer = lesson.solution.copy()
            fewer.remove(x, y)
            assert power_mean_score(simulate(fewer).rates, best) < 1.0, (kind, seed, x, y)


def test_protected_tiles_are_left_alone() -> None:
    for seed in SEEDS:
        lesson = generate("belt-crossing", seed)
        assert lesson.protected
        assert lesson.solution is not None
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


def test_kinds_cover_the_curriculum() -> None:
    assert set(KINDS) >= {"split", "merge", "machine", "machine-row", "trial-1", "trial-2", "trial-3"}
    assert TRIAL_KINDS == {"trial-1", "trial-2", "trial-3"}


def test_machine_lessons_use_one_to_four_ingredients_and_both_inserters() -> None:
    catalog = load_catalog()
    counts, arms = set(), set()
    for seed in range(40):
        lesson = generate("machine", seed)
        assert lesson.solution is not None
        recipes = {
            int(lesson.solution.data[Channel.ITEM, y, x])
            for k, x, y in lesson.solution_entities
            if k == Entity.ASSEMBLER
        }
        assert len(recipes) == 1
        counts.add(len(catalog.recipe(recipes.pop()).ingredients))
        arms |= {k for k, _, _ in lesson.solution_entities if k in (Entity.INSERTER, Entity.LONG_INSERTER)}
    assert counts == {1, 2, 3, 4} and arms == {Entity.INSERTER, Entity.LONG_INSERTER}


def test_machine_rows_have_two_or_three_machines_on_one_product_belt() -> None:
    for seed in range(15):
        lesson = generate("machine-row", seed)
        machines = [e for e in lesson.solution_entities if e[0] == Entity.ASSEMBLER]
        assert 2 <= len(machines) <= 3
        assert len([k for k, _, _ in lesson.task.entities() if k == Entity.SINK]) == 1


def test_split_lessons_use_a_splitter_and_fill_both_sinks_halfway() -> None:
    for seed in range(10):
        lesson = generate("split", seed)
        assert Entity.SPLITTER in {k for k, _, _ in lesson.solution_entities}
        assert lesson.best == (7.5, 7.5)


def test_merge_sources_can_only_be_reached_by_inserters() -> None:
    for seed in range(10):
        lesson = generate("merge", seed)
        sources = [(x, y) for k, x, y in lesson.task.entities() if k == Entity.SOURCE]
        assert len(sources) == 2
        for x, y in sources:
            f = lesson.task.facing(x, y)
            front = (x + f.dx, y + f.dy)
            assert not lesson.task.is_empty(*front) or not (0 <= front[0] < 11 and 0 <= front[1] < 11)
        assert lesson.best[0] > max(1.2, 0.86)  # both sources feed the sink


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_trials_pose_only_markers_with_an_upper_bound(depth: int) -> None:
    catalog = load_catalog()
    for seed in SEEDS:
        lesson = generate(f"trial-{depth}", seed)
        assert lesson.solution is None and lesson.solution_entities == []
        kinds = [k for k, _, _ in lesson.task.entities()]
        assert set(kinds) == {Entity.SOURCE, Entity.SINK} and kinds.count(Entity.SINK) == 1
        assert len(lesson.best) == 1 and 0 < lesson.best[0] <= 15
        items = [catalog.items[int(lesson.task.data[Channel.ITEM, y, x])] for _, x, y in lesson.task.entities()]
        assert len(set(items)) == len(items)  # one source per ingredient, every item once


def test_chains_have_the_depth_asked_and_distinct_leaves() -> None:
    rng = np.random.default_rng(0)
    catalog = load_catalog()
    for depth in (1, 2, 3):
        for _ in range(20):
            chain = random_chain(rng, depth)
            assert len(chain) == depth
            for parent, child in zip(chain, chain[1:], strict=False):
                made = catalog.recipe(child).products[0][0]
                assert made in dict(catalog.recipe(parent).ingredients)
            leaves = chain_leaves(chain)
            assert len(set(leaves)) == len(leaves) <= 4


def test_chain_bound_by_hand() -> None:
    catalog = load_catalog()
    gear, circuit, cable = (catalog.recipe_id(n) for n in ("iron-gear-wheel", "electronic-circuit", "copper-cable"))
    assert chain_bound([gear]) == pytest.approx(1.0)  # 0.5 / 0.5 s
    # one cable machine makes 2 cables/s; a circuit takes 3, so 2/3 circuit/s (the circuit machine could do 1)
    assert chain_bound([circuit, cable]) == pytest.approx(2 / 3)
    accumulator = catalog.recipe_id("accumulator")
    assert chain_bound([accumulator]) == pytest.approx(0.05)


def test_held_out_seeds_are_kept_apart() -> None:
    assert len(HELD_OUT_SEEDS) >= 100 and min(HELD_OUT_SEEDS) > 10**6


@pytest.mark.parametrize("kind", LESSONS)
def test_every_solution_entity_is_on_a_source_to_sink_path(kind: str) -> None:
    for size in (8, 11, 32):
        for seed in range(40):
            lesson = generate(kind, seed, size)
            assert lesson.solution is not None
            assert on_path_fraction(lesson.solution) == 1.0, (kind, size, seed)
