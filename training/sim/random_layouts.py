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
from shared_schema.world import Channel, World

ITEMS = ("iron-plate", "copper-plate", "iron-gear-wheel", "copper-cable")
RECIPES = ("iron-gear-wheel", "copper-cable", "electronic-circuit")


def routed_layout(rng: np.random.Generator, size: int = 11) -> World:
    """A lesson-like world: a source on the edge, a winding belt route (with the odd
    underground hop, splitter branch or inserter arm into an assembler) and a sink
    where the route ends, plus a few blocked tiles."""
    catalog = load_catalog()
    world = World.empty(size, size)
    for _ in range(int(rng.integers(0, size))):
        x, y = int(rng.integers(size)), int(rng.integers(size))
        if world.entity(x, y) == Entity.EMPTY:
            world.place(Entity.BLOCKED, x, y)
    item = catalog.item_id(str(rng.choice(ITEMS[:2])))
    facing = Direction(int(rng.integers(4)))
    # start on the edge the route leaves from
    along = int(rng.integers(1, size - 1))
    x, y = {
        Direction.NORTH: (along, size - 1),
        Direction.SOUTH: (along, 0),
        Direction.EAST: (0, along),
        Direction.WEST: (size - 1, along),
    }[facing]
    world.remove(x, y)
    world.place(Entity.SOURCE, x, y, facing, item)
    _route(world, rng, x, y, facing, item, int(rng.integers(6, 4 * size)), catalog, branches=2)
    return world


def _route(world, rng, x, y, facing, item, length, catalog, branches):  # type: ignore[no-untyped-def]
    """Extend a belt from (x, y) going `facing` for up to `length` tiles, ending in a sink."""
    for _ in range(length):
        turn = rng.random() < 0.2 or not world.is_empty(x + facing.dx, y + facing.dy)
        if turn:
            # only a plain belt can turn: re-place it facing the new way (it then curves)
            options = [f for f in (facing.turned(1), facing.turned(-1)) if world.is_empty(x + f.dx, y + f.dy)]
            if not options or world.entity(x, y) != Entity.BELT:
                if not world.is_empty(x + facing.dx, y + facing.dy):
                    break
            else:
                facing = options[int(rng.integers(len(options)))]
                world.remove(x, y)
                world.place(Entity.BELT, x, y, facing)
        nx, ny = x + facing.dx, y + facing.dy
        roll = rng.random()
        if roll < 0.08:
            hop = int(rng.integers(2, 6))
            ex, ey = nx + facing.dx * hop, ny + facing.dy * hop
            if world.is_empty(ex, ey):
                world.place(Entity.UNDERGROUND, nx, ny, facing, underground=UndergroundEnd.ENTRANCE)
                world.place(Entity.UNDERGROUND, ex, ey, facing, underground=UndergroundEnd.EXIT)
                x, y = ex, ey
                continue
        if roll > 0.93 and branches > 0:
            side = facing.turned(1)
            sx, sy = nx + side.dx, ny + side.dy
            if world.is_empty(sx, sy):
                world.place(Entity.SPLITTER, min(nx, sx), min(ny, sy), facing)
                _route(world, rng, sx, sy, facing, item, int(rng.integers(2, 8)), catalog, branches - 1)
                x, y = nx, ny
                continue
        world.place(Entity.BELT, nx, ny, facing)
        x, y = nx, ny
        if roll > 0.86 and branches > 0:
            _try_arm(world, rng, x, y, facing, catalog)
    nx, ny = x + facing.dx, y + facing.dy
    if world.is_empty(nx, ny):
        world.place(Entity.SINK, nx, ny, facing, item)


def _try_arm(world: World, rng: np.random.Generator, x: int, y: int, facing: Direction, catalog) -> None:  # type: ignore[no-untyped-def]
    """An inserter beside the belt at (x, y) into an assembler, and an output arm to a sink."""
    side = facing.turned(1 if rng.random() < 0.5 else -1)
    ix, iy = x + side.dx, y + side.dy
    recipe = str(rng.choice(RECIPES))
    # the assembler's middle tile is two steps further along `side`
    cx, cy = ix + 2 * side.dx, iy + 2 * side.dy
    ox, oy = cx + 2 * side.dx, cy + 2 * side.dy
    tiles = [(ix, iy), (ox, oy), (ox + side.dx, oy + side.dy)]
    tiles += [(cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    if not all(world.is_empty(tx, ty) for tx, ty in tiles):
        return
    world.place(Entity.INSERTER, ix, iy, side)
    world.place(Entity.ASSEMBLER, cx - 1, cy - 1, Direction.NORTH, catalog.recipe_id(recipe))
    product = catalog.item_id(catalog.recipe(recipe).products[0][0])
    world.place(Entity.INSERTER, ox, oy, side)
    world.place(Entity.SINK, ox + side.dx, oy + side.dy, side, product)


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
