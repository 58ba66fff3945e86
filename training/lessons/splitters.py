"""Splitting and merging lessons, solved by the expert (training/expert/splitters.py).

- split: one source and two sinks of its item, a few blocked tiles; a full belt cannot
  fill both sinks, a splitter gives each half.
- merge: two sources and one sink of their item. A source is a full belt, so merging
  two of them into one sink could never beat one alone; here each source faces a
  blocked tile (or the grid's edge) and only inserters can take from it, so the sink
  gets most when both sources' inserters feed one belt into it.
"""

from __future__ import annotations

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import World
from training.expert.splitters import plan_merge, plan_split
from training.lessons.base import Built, Tile, draw_until_built, register
from training.lessons.routing import item_for, scatter_blocked, spot


def _far_enough(a: Tile, b: Tile) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) >= 3


@register("split")
def split(rng: np.random.Generator, size: int) -> Built:
    def build(rng: np.random.Generator, size: int) -> Built | None:
        task = World.empty(size, size)
        scatter_blocked(task, rng, size * size // 12)
        item = item_for(rng)
        whole = (0, 0, size, size)
        found = spot(task, rng, whole)
        if found is None:
            return None
        source = found[:2]
        task.place(Entity.SOURCE, *source, found[2], item)
        sinks: list[Tile] = []
        for _ in range(2):
            found = spot(task, rng, whole)
            if found is None or not _far_enough(found[:2], source):
                return None
            task.place(Entity.SINK, *found[:2], found[2], item)
            sinks.append(found[:2])
        solution = plan_split(task, source, sinks)
        return None if solution is None else (task, frozenset(), solution)

    return draw_until_built(rng, size, build)


@register("merge")
def merge(rng: np.random.Generator, size: int) -> Built:
    def build(rng: np.random.Generator, size: int) -> Built | None:
        task = World.empty(size, size)
        scatter_blocked(task, rng, size * size // 20)
        item = item_for(rng)
        sources: list[Tile] = []
        for _ in range(2):
            x, y = int(rng.integers(size)), int(rng.integers(size))
            facing = Direction(int(rng.integers(4)))
            front = (x + facing.dx, y + facing.dy)
            if not task.is_empty(x, y):
                return None
            if task.is_empty(*front):
                task.place(Entity.BLOCKED, *front)  # a wall in front: only inserters can take
            elif 0 <= front[0] < size and 0 <= front[1] < size and task.entity(*front) != Entity.BLOCKED:
                return None
            task.place(Entity.SOURCE, x, y, facing, item)
            sources.append((x, y))
        found = spot(task, rng, (0, 0, size, size))
        if found is None or not all(_far_enough(found[:2], s) for s in sources):
            return None
        task.place(Entity.SINK, *found[:2], found[2], item)
        solution = plan_merge(task, sources, found[:2])
        return None if solution is None else (task, frozenset(), solution)

    return draw_until_built(rng, size, build)
