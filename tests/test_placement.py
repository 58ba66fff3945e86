"""The shared placement validator: reasons for illegal actions, and masks that agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.placement import Action, Illegal, IllegalActionError, apply, check, legal_anchors
from shared_schema.world import World
from tests.conftest import world_of
from training.sim.random_layouts import noisy_layout

GEAR = load_catalog().recipe_id("iron-gear-wheel")


def test_reasons_for_illegal_actions() -> None:
    world = world_of("S> .. .. ##\n.. .. .. ..\n.. .. .. ..", [(0, 0, "iron-plate")])
    assert check(world, Action(Entity.BELT, 1, 0, Direction.EAST)) is None
    assert check(world, Action(Entity.SOURCE, 1, 0)) == Illegal.NOT_PLACEABLE
    assert check(world, Action(Entity.BELT, 0, 0)) == Illegal.OCCUPIED
    assert check(world, Action(Entity.BELT, 3, 0)) == Illegal.OCCUPIED  # blocked tiles hold an entity
    assert check(world, Action(Entity.ASSEMBLER, 2, 0, recipe=GEAR)) == Illegal.OFF_GRID
    assert check(world, Action(Entity.ASSEMBLER, 1, 0, recipe=GEAR)) == Illegal.OCCUPIED
    assert check(world, Action(Entity.ASSEMBLER, 0, 1, recipe=GEAR)) == Illegal.OFF_GRID
    assert check(world, Action(Entity.ASSEMBLER, 1, 0)) == Illegal.NEEDS_RECIPE
    assert check(world, Action(Entity.BELT, 1, 1, recipe=GEAR)) == Illegal.UNEXPECTED_RECIPE
    assert check(world, Action(Entity.UNDERGROUND, 1, 1)) == Illegal.NEEDS_END
    assert check(world, Action(Entity.BELT, 1, 1, end=UndergroundEnd.EXIT)) == Illegal.UNEXPECTED_END
    assert check(world, Action(Entity.SPLITTER, 3, 1, Direction.NORTH)) == Illegal.OFF_GRID
    assert check(world, Action(Entity.SPLITTER, 3, 1, Direction.EAST)) is None


def test_apply_refuses_and_leaves_the_world_unchanged() -> None:
    world = World.empty(4, 4)
    apply(world, Action(Entity.INSERTER, 1, 1, Direction.EAST))
    before = world.copy()
    with pytest.raises(IllegalActionError, match="already holds an entity") as error:
        apply(world, Action(Entity.BELT, 1, 1))
    assert error.value.reason == Illegal.OCCUPIED
    assert world == before


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from(list(Entity)), st.sampled_from(list(Direction)))
def test_mask_agrees_with_check_everywhere(seed: int, kind: Entity, facing: Direction) -> None:
    world = noisy_layout(np.random.default_rng(seed), 7, 0.3)
    mask = legal_anchors(world, kind, facing)
    recipe = GEAR if kind == Entity.ASSEMBLER else 0
    end = UndergroundEnd.ENTRANCE if kind == Entity.UNDERGROUND else UndergroundEnd.NONE
    for y in range(world.height):
        for x in range(world.width):
            legal = check(world, Action(kind, x, y, facing, recipe, end)) is None
            assert mask[y, x] == legal, (kind, facing, x, y)
