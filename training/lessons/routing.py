"""Belt routing lessons: carry one source's items into one sink.

- belt-routing: random source and sink (positions and facings) and random blocked
  tiles; the expert's A* route is the solution.
- belt-wall: a wall of blocked tiles (1 to 4 thick) between source and sink, crossed
  only by underground belts.
- belt-crossing: a protected belt line (its own source and sink, already working)
  between source and sink; the route must cross it underground without touching it.
Each generator redraws until the expert finds a route, so every lesson is solvable.
"""

from __future__ import annotations

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import World
from training.expert.routing import apply_route, route_belt
from training.lessons.base import Built, Tile, draw_until_built, register

ITEMS = ("iron-plate", "copper-plate", "iron-gear-wheel", "electronic-circuit")


def spot(
    world: World, rng: np.random.Generator, region: tuple[int, int, int, int]
) -> tuple[int, int, Direction] | None:
    """A free tile in `region` (x0, y0, x1, y1, upper bounds exclusive) and a facing whose
    front tile is free too, or None after a few tries."""
    x0, y0, x1, y1 = region
    for _ in range(20):
        sx, sy = int(rng.integers(x0, x1)), int(rng.integers(y0, y1))
        facing = Direction(int(rng.integers(4)))
        if not (world.is_empty(sx, sy) and world.is_empty(sx + facing.dx, sy + facing.dy)):
            continue
        return sx, sy, facing
    return None


def _finish(task: World, source: Tile, sink: Tile, protected: frozenset[Tile] = frozenset()) -> Built | None:
    steps = route_belt(task, source, sink, protected=protected)
    if steps is None or not steps:
        return None
    solution = task.copy()
    apply_route(solution, steps)
    return task, protected, solution


def _markers(
    task: World, rng: np.random.Generator, item: int, source_cols: Tile, sink_cols: Tile
) -> tuple[Tile, Tile] | None:
    """Place a source in columns `source_cols` and a sink in `sink_cols` (ranges, upper
    bound exclusive); their tiles, or None if no room was found."""
    size = task.width
    src = spot(task, rng, (source_cols[0], 0, source_cols[1], size))
    if src is None:
        return None
    task.place(Entity.SOURCE, src[0], src[1], src[2], item)
    dst = spot(task, rng, (sink_cols[0], 0, sink_cols[1], size))
    if dst is None:
        return None
    task.place(Entity.SINK, dst[0], dst[1], dst[2], item)
    return (src[0], src[1]), (dst[0], dst[1])


def item_for(rng: np.random.Generator) -> int:
    return load_catalog().item_id(str(rng.choice(ITEMS)))


def scatter_blocked(task: World, rng: np.random.Generator, below: int) -> None:
    """Block fewer than `below` random tiles of `task` (fewer still where draws repeat)."""
    for _ in range(int(rng.integers(0, below))):
        x, y = int(rng.integers(task.width)), int(rng.integers(task.height))
        if task.is_empty(x, y):
            task.place(Entity.BLOCKED, x, y)


@register("belt-routing")
def belt_routing(rng: np.random.Generator, size: int) -> Built:
    def build(rng: np.random.Generator, size: int) -> Built | None:
        task = World.empty(size, size)
        scatter_blocked(task, rng, size * size // 6)
        ends = _markers(task, rng, item_for(rng), (0, size), (0, size))
        if ends is None or abs(ends[0][0] - ends[1][0]) + abs(ends[0][1] - ends[1][1]) < 3:
            return None
        return _finish(task, ends[0], ends[1])

    return draw_until_built(rng, size, build)


@register("belt-wall")
def belt_wall(rng: np.random.Generator, size: int) -> Built:
    def build(rng: np.random.Generator, size: int) -> Built | None:
        task = World.empty(size, size)
        thick = int(rng.integers(1, min(4, size - 6) + 1))  # a tunnel spans at most 4 tiles
        x0 = int(rng.integers(3, size - 2 - thick))  # two free columns on either side
        for x in range(x0, x0 + thick):
            for y in range(size):
                task.place(Entity.BLOCKED, x, y)
        ends = _markers(task, rng, item_for(rng), (0, x0 - 1), (x0 + thick + 1, size))
        if ends is None:
            return None
        return _finish(task, ends[0], ends[1])

    lesson = draw_until_built(rng, size, build)
    if rng.random() < 0.5:  # the wall runs across the other axis half the time
        lesson = (lesson[0].rotated(), lesson[1], lesson[2].rotated())
    return lesson


@register("belt-crossing")
def belt_crossing(rng: np.random.Generator, size: int) -> Built:
    def build(rng: np.random.Generator, size: int) -> Built | None:
        task = World.empty(size, size)
        # the protected line runs north to south down column x0, already working
        x0 = int(rng.integers(3, size - 3))
        line_item = item_for(rng)
        task.place(Entity.SOURCE, x0, 0, Direction.SOUTH, line_item)
        for y in range(1, size - 1):
            task.place(Entity.BELT, x0, y, Direction.SOUTH)
        task.place(Entity.SINK, x0, size - 1, Direction.SOUTH, line_item)
        protected = frozenset((x0, y) for y in range(size))
        ends = _markers(task, rng, item_for(rng), (0, x0 - 1), (x0 + 2, size))
        if ends is None:
            return None
        return _finish(task, ends[0], ends[1], protected=protected)

    lesson = draw_until_built(rng, size, build)
    if rng.random() < 0.5:
        task, protected, solution = lesson
        turned = frozenset((size - 1 - y, x) for x, y in protected)
        lesson = (task.rotated(), turned, solution.rotated())
    return lesson
