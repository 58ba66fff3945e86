"""The expert's machine, splitter and merge planners, and the tasks it reads off markers."""

from __future__ import annotations

import pytest

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import World
from tests.conftest import world_of
from training.evaluate import score_layout
from training.expert import expert_layout
from training.expert.machines import Arm, arm_slots, infer_chain, plan_chain
from training.lessons import generate
from training.sim import simulate


def test_arm_slots_surround_the_machine() -> None:
    slots = arm_slots((3, 3))
    assert len(slots) == 36  # 12 tiles beside it, a plain or long-handed arm on each, and a long one beyond
    plain = {a.tile for a in slots if a.kind == Entity.INSERTER}
    assert len(plain) == 12 and (2, 4) in plain and (6, 4) in plain and (4, 2) in plain and (4, 6) in plain
    west = Arm(Entity.LONG_INSERTER, (1, 4), slots[0].outward.turned(-1))
    assert west.outer == (-1, 4)


def test_infer_chain_reads_the_recipes_off_the_markers() -> None:
    catalog = load_catalog()
    gear, circuit, cable = (catalog.recipe_id(n) for n in ("iron-gear-wheel", "electronic-circuit", "copper-cable"))
    assert infer_chain("iron-gear-wheel", ["iron-plate"]) == [gear]
    assert infer_chain("electronic-circuit", ["iron-plate", "copper-plate"]) == [circuit, cable]
    assert infer_chain("electronic-circuit", ["iron-plate", "copper-cable"]) == [circuit]
    assert infer_chain("iron-gear-wheel", ["copper-plate"]) is None  # no iron plate to make them from


def test_plan_chain_makes_circuits_from_plates() -> None:
    catalog = load_catalog()
    task = World.empty(11, 11)
    task.place(Entity.SOURCE, 0, 0, Direction.EAST, catalog.item_id("iron-plate"))
    task.place(Entity.SOURCE, 0, 10, Direction.EAST, catalog.item_id("copper-plate"))
    task.place(Entity.SINK, 10, 5, Direction.EAST, catalog.item_id("electronic-circuit"))
    chain = [catalog.recipe_id("electronic-circuit"), catalog.recipe_id("copper-cable")]
    layout = plan_chain(task, chain, {"iron-plate": (0, 0), "copper-plate": (0, 10)}, (10, 5))
    assert layout is not None
    assert sum(k == Entity.ASSEMBLER for k, _, _ in layout.entities()) == 2
    assert simulate(layout).rates[0] > 0
    assert expert_layout(task) is not None


@pytest.mark.parametrize("kind", ["machine", "one-machine", "split", "merge"])
def test_the_expert_solves_what_it_builds(kind: str) -> None:
    for seed in range(15):
        lesson = generate(kind, seed)
        layout = expert_layout(lesson.task, lesson.protected)
        assert score_layout(lesson, layout) == pytest.approx(1.0), (kind, seed)


def test_the_expert_leaves_the_task_as_it_was_and_builds_on_free_tiles() -> None:
    for kind in ("machine", "trial-1", "trial-2", "split", "merge"):
        for seed in range(5):
            lesson = generate(kind, seed)
            before = lesson.task.copy()
            layout = expert_layout(lesson.task, lesson.protected)
            assert lesson.task == before
            if layout is not None:
                assert set(before.entities()) <= set(layout.entities())


def test_tasks_it_cannot_read_get_no_layout() -> None:
    two_items = world_of("S> .. .. K>", [(0, 0, "iron-plate"), (3, 0, "copper-plate")])
    assert expert_layout(two_items) is None  # copper plate is not made from iron plate
    no_sink = world_of("S> .. .. ..", [(0, 0, "iron-plate")])
    assert expert_layout(no_sink) is None


def test_the_expert_builds_rows_where_they_make_more() -> None:
    scores = []
    for seed in range(8):
        lesson = generate("machine-row", seed)
        layout = expert_layout(lesson.task, lesson.protected)
        assert layout is not None
        scores.append(score_layout(lesson, layout))
        machines = sum(k == Entity.ASSEMBLER for k, _, _ in layout.entities())
        if scores[-1] > 0.75:
            assert machines >= 2, seed
    assert sum(scores) / len(scores) > 0.8
