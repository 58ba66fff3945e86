"""Seeded random layouts for benchmarks and property tests.

`routed_layout` makes lesson-like worlds: a source, a belt route with the odd
underground, splitter, inserter arm and assembler, and sinks where the route ends.
`noisy_layout` scatters any entity anywhere, to shake out crashes.
"""

from __future__ import annotations

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd, footprint
from shared_schema.world import Channel, PlacementError, World

ITEMS = ("iron-plate", "copper-plate", "iron-gear-wheel", "copper-cable")
RECIPES = ("iron-gear-wheel", "copper-cable", "electronic-circuit")


def routed_layout(rng: np.random.Generator, size: int = 11) -> World:
    """A source, a self-avoiding belt route from it, and a sink at the route's end,
    with side branches (splitter, inserter into an assembler) along the way."""
    catalog = load_catalog()
    world = World.empty(size, size)
    item = catalog.item_id(str(rng.choice(ITEMS[:2])))
    x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
    facing = Direction(int(rng.integers(4)))
    world.place(Entity.SOURCE, x, y, facing, item)
    for _ in range(int(rng.integers(4, 3 * size))):
        nx, ny = x + facing.dx, y + facing.dy
        if not (0 <= nx < size and 0 <= ny < size) or world.entity(nx, ny) != Entity.EMPTY:
            break
        x, y = nx, ny
        roll = rng.random()
        if roll < 0.06:
            # an underground hop of 2..4 tiles if it fits
            hop = int(rng.integers(2, 5))
            ex, ey = x + facing.dx * hop, y + facing.dy * hop
            if 0 <= ex < size and 0 <= ey < size and world.entity(ex, ey) == Entity.EMPTY:
                world.place(Entity.UNDERGROUND, x, y, facing, underground=UndergroundEnd.ENTRANCE)
                world.place(Entity.UNDERGROUND, ex, ey, facing, underground=UndergroundEnd.EXIT)
                x, y = ex, ey
                continue
        world.place(Entity.BELT, x, y, facing)
        if roll > 0.8:
            facing = facing.turned(1 if rng.random() < 0.5 else -1)
        elif roll > 0.7:
            _try_arm(world, rng, x, y, facing, catalog)
    nx, ny = x + facing.dx, y + facing.dy
    if 0 <= nx < size and 0 <= ny < size and world.entity(nx, ny) == Entity.EMPTY:
        world.place(Entity.SINK, nx, ny, facing, item)
    _scatter(world, rng, int(rng.integers(0, 6)))
    return world


def _try_arm(world: World, rng: np.random.Generator, x: int, y: int, facing: Direction, catalog) -> None:  # type: ignore[no-untyped-def]
    """An inserter beside the belt at (x, y) into an assembler, and an output arm to a sink."""
    side = facing.turned(1 if rng.random() < 0.5 else -1)
    ix, iy = x + side.dx, y + side.dy
    recipe = str(rng.choice(RECIPES))
    try:
        world.place(Entity.INSERTER, ix, iy, side)
        # the assembler's tile nearest the inserter is one step further along `side`
        ax, ay = ix + side.dx, iy + side.dy
        ax -= 1 if side in (Direction.NORTH, Direction.SOUTH) else (0 if side == Direction.EAST else 2)
        ay -= 1 if side in (Direction.EAST, Direction.WEST) else (0 if side == Direction.SOUTH else 2)
        world.place(Entity.ASSEMBLER, ax, ay, Direction.NORTH, catalog.recipe_id(recipe))
        product = catalog.item_id(catalog.recipe(recipe).products[0][0])
        ox, oy = ax + 1 + side.dx * 2, ay + 1 + side.dy * 2
        world.place(Entity.INSERTER, ox, oy, side)
        world.place(Entity.SINK, ox + side.dx, oy + side.dy, side, product)
    except PlacementError:
        return


def noisy_layout(rng: np.random.Generator, size: int = 8, fill: float = 0.5) -> World:
    """Any entity anywhere, facing anything: the engine must not crash on it."""
    world = World.empty(size, size)
    _scatter(world, rng, int(fill * size * size))
    return world


def _scatter(world: World, rng: np.random.Generator, count: int) -> None:
    catalog = load_catalog()
    kinds = [
        Entity.BELT,
        Entity.BELT,
        Entity.BELT,
        Entity.UNDERGROUND,
        Entity.SPLITTER,
        Entity.INSERTER,
        Entity.LONG_INSERTER,
        Entity.ASSEMBLER,
        Entity.SOURCE,
        Entity.SINK,
        Entity.BLOCKED,
    ]
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        facing = Direction(int(rng.integers(4)))
        w, h = footprint(kind, facing)
        x, y = int(rng.integers(0, world.width - w + 1)), int(rng.integers(0, world.height - h + 1))
        if world.data[Channel.ENTITY, y : y + h, x : x + w].any():
            continue
        item = 0
        end = UndergroundEnd.NONE
        if kind in (Entity.SOURCE, Entity.SINK):
            item = catalog.item_id(str(rng.choice(ITEMS)))
        elif kind == Entity.ASSEMBLER:
            item = catalog.recipe_id(str(rng.choice(RECIPES)))
        elif kind == Entity.UNDERGROUND:
            end = UndergroundEnd.ENTRANCE if rng.random() < 0.5 else UndergroundEnd.EXIT
        world.place(kind, x, y, facing, item, end)


def stack(worlds: list[World]) -> np.ndarray:
    """Worlds of one size as int16[B, C, H, W] for `sink_rates_batch`."""
    return np.stack([w.data for w in worlds])
