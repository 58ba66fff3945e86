"""Machine lessons: one assembling machine, or a row of them sharing belts.

- machine: a recipe of 1 to 4 ingredients; one source per ingredient and a sink for
  the product. The solution gives each ingredient an inserter arm (plain or
  long-handed) fed straight from its source or by a belt from it, and one output arm
  dropping into the sink or onto a belt to it.
- machine-row: 2 or 3 machines side by side on a recipe of 1 or 2 ingredients. Each
  ingredient runs on its own belt along the row (the second behind the first, reached
  by long-handed inserters), and the products leave on one shared belt to the sink.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from training.expert.machines import Arm, Row, arm_slots, build_machines, connect_row, row_skeleton
from training.lessons.base import Built, Tile, draw_until_built, register

AT_ARM = 0.35  # chance that a marker stands right where its arm picks or drops


@cache
def recipes_with(ingredients: int) -> tuple[int, ...]:
    """Recipe ids with exactly `ingredients` ingredients and one whole product that is
    not also an ingredient (a second product would clog a machine nothing empties)."""
    catalog = load_catalog()
    found = []
    for rid, recipe in enumerate(catalog.recipes):
        if recipe is None or len(recipe.ingredients) != ingredients or len(recipe.products) != 1:
            continue
        product, amount = recipe.products[0]
        if amount == int(amount) and product not in {name for name, _ in recipe.ingredients}:
            found.append(rid)
    return tuple(found)


def _marker_spot(task: World, rng: np.random.Generator, reserved: set[Tile], at: Tile | None) -> tuple[Tile, Direction]:
    """Where a marker goes: `at` when given (right at its arm), else a random free tile
    whose front is free too; its facing never points into a reserved tile."""
    size = task.width
    for _ in range(50):
        tile = at or (int(rng.integers(size)), int(rng.integers(size)))
        facing = Direction(int(rng.integers(4)))
        front = (tile[0] + facing.dx, tile[1] + facing.dy)
        if front in reserved or (at is None and (tile in reserved or not task.is_empty(*tile))):
            continue
        if at is None and not task.is_empty(*front):
            continue
        return tile, facing
    return (-1, -1), Direction.NORTH


def _place_marker(
    task: World, rng: np.random.Generator, kind: Entity, item: int, reserved: set[Tile], at: Tile | None
) -> Tile | None:
    tile, facing = _marker_spot(task, rng, reserved, at)
    if tile == (-1, -1) or not task.is_empty(*tile):
        return None
    task.place(kind, tile[0], tile[1], facing, item)
    reserved.add(tile)
    return tile


@register("machine")
def machine(rng: np.random.Generator, size: int) -> Built:
    catalog = load_catalog()

    def build(rng: np.random.Generator, size: int) -> Built | None:
        recipe_id = int(rng.choice(recipes_with(int(rng.integers(1, 5)))))
        recipe = catalog.recipe(recipe_id)
        anchor = (int(rng.integers(0, size - 2)), int(rng.integers(0, size - 2)))
        machine_tiles = {(anchor[0] + dx, anchor[1] + dy) for dx in range(3) for dy in range(3)}
        slots = [a for a in arm_slots(anchor) if all(0 <= c < size for t in a.tiles() for c in t)]
        rng.shuffle(slots)  # type: ignore[arg-type]
        arms: list[Arm] = []
        reserved = set(machine_tiles)
        for arm in slots:
            if len(arms) == len(recipe.ingredients) + 1:
                break
            if not reserved.intersection(arm.tiles()):
                arms.append(arm)
                reserved.update(arm.tiles())
        if len(arms) < len(recipe.ingredients) + 1:
            return None
        task = World.empty(size, size)
        sources = []
        for arm, (name, _) in zip(arms, recipe.ingredients, strict=False):
            at = arm.outer if rng.random() < AT_ARM else None
            tile = _place_marker(task, rng, Entity.SOURCE, catalog.item_id(name), reserved, at)
            if tile is None:
                return None
            sources.append(tile)
        at = arms[-1].outer if rng.random() < AT_ARM else None
        sink = _place_marker(task, rng, Entity.SINK, catalog.item_id(recipe.products[0][0]), reserved, at)
        if sink is None:
            return None
        inputs = list(zip(arms[:-1], sources, strict=True))
        solution = build_machines(task, [(recipe_id, anchor)], inputs, (arms[-1], sink))
        return None if solution is None else (task, frozenset(), solution)

    return draw_until_built(rng, size, build)


@register("machine-row")
def machine_row(rng: np.random.Generator, size: int) -> Built:
    catalog = load_catalog()

    def build(rng: np.random.Generator, size: int) -> Built | None:
        # drawn flowing east (training/expert/machines.py `Row`), then turned at random
        machines = int(rng.integers(2, 4)) if size >= 11 else 2
        recipe_id = int(rng.choice(recipes_with(int(rng.integers(1, 3)))))
        recipe = catalog.recipe(recipe_id)
        two = len(recipe.ingredients) == 2
        y0 = int(rng.integers(0, size - 7)) - (0 if two else 1)
        x0 = int(rng.integers(1, size - 3 * machines))  # a free column on either side
        columns = tuple(tuple(int(c) for c in rng.permutation(3)) for _ in range(machines))
        row = Row(machines, x0, y0, columns)  # type: ignore[arg-type]
        task = World.empty(size, size)
        skeleton = row_skeleton(task, recipe_id, row)
        if skeleton is None:
            return None
        out_end, out_y = row.out_end
        ys, xs = np.nonzero(skeleton[0].data[Channel.ENTITY])
        reserved = {(int(x), int(y)) for x, y in zip(xs, ys, strict=True)}
        # markers stand outside the row (inside, most are walled in), and the sources off
        # the product belt's way out
        reserved |= {(x, y) for x in range(x0, out_end + 1) for y in range(y0, out_y + 1)}
        below = {(x, y) for x in range(x0 - 1, out_end + 2) for y in (out_y, out_y + 1)}
        sources = []
        for name, _ in recipe.ingredients:
            source = _place_marker(task, rng, Entity.SOURCE, catalog.item_id(name), reserved | below, None)
            if source is None:
                return None
            reserved.add(source)
            sources.append(source)
        sink = _place_marker(task, rng, Entity.SINK, catalog.item_id(recipe.products[0][0]), reserved, None)
        if sink is None:
            return None
        world, starts = skeleton
        world.data[:, task.data[Channel.ENTITY] != 0] = task.data[:, task.data[Channel.ENTITY] != 0]  # the markers
        solution = connect_row(world, row, starts, sources, sink, frozenset())
        return None if solution is None else (task, frozenset(), solution)

    task, protected, solution = draw_until_built(rng, size, build)
    turns = int(rng.integers(4))
    task, solution = task.rotated(turns), solution.rotated(turns)
    if rng.random() < 0.5:
        task, solution = task.mirrored(), solution.mirrored()
    return task, protected, solution
