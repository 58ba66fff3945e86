"""Sanity lessons: the smallest tasks, to show that learning happens at all.

- one-belt: a source, one empty tile, then a sink; the answer is one belt.
- one-machine: a source and a sink three tiles apart across a gap that fits an
  assembling machine (gears); the answer is inserter, machine, inserter.
"""

from __future__ import annotations

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import World
from training.lessons.base import register


def _turn_to(world: World, facing: Direction) -> World:
    """`world` drawn facing east, turned so that its flow goes `facing`."""
    return world.rotated(int(facing) - int(Direction.EAST))


@register("one-belt")
def one_belt(rng: np.random.Generator, size: int) -> tuple[World, frozenset[tuple[int, int]], World]:
    catalog = load_catalog()
    item = catalog.item_id(str(rng.choice(["iron-plate", "copper-plate"])))
    x, y = int(rng.integers(0, size - 2)), int(rng.integers(0, size))
    task = World.empty(size, size)
    task.place(Entity.SOURCE, x, y, Direction.EAST, item)
    task.place(Entity.SINK, x + 2, y, Direction.EAST, item)
    solution = task.copy()
    solution.place(Entity.BELT, x + 1, y, Direction.EAST)
    facing = Direction(int(rng.integers(4)))
    return _turn_to(task, facing), frozenset(), _turn_to(solution, facing)


@register("one-machine")
def one_machine(rng: np.random.Generator, size: int) -> tuple[World, frozenset[tuple[int, int]], World]:
    catalog = load_catalog()
    # drawn facing east: S i [a a a] i K on row y, the machine's middle row
    x, y = int(rng.integers(0, size - 6)), int(rng.integers(1, size - 1))
    task = World.empty(size, size)
    task.place(Entity.SOURCE, x, y, Direction.EAST, catalog.item_id("iron-plate"))
    task.place(Entity.SINK, x + 6, y, Direction.EAST, catalog.item_id("iron-gear-wheel"))
    solution = task.copy()
    solution.place(Entity.INSERTER, x + 1, y, Direction.EAST)
    solution.place(Entity.ASSEMBLER, x + 2, y - 1, Direction.NORTH, catalog.recipe_id("iron-gear-wheel"))
    solution.place(Entity.INSERTER, x + 5, y, Direction.EAST)
    facing = Direction(int(rng.integers(4)))
    return _turn_to(task, facing), frozenset(), _turn_to(solution, facing)
