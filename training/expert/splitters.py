"""Splitting and merging for the expert.

- `plan_split`: one source into two sinks through a splitter. Splitter positions are
  tried cheapest first (belt distance from the source to its input plus from its
  outputs to the sinks); the first whose three routes all fit is kept.
- `plan_merge`: two sources that no belt can take from (each faces a blocked tile or
  the edge of the grid) into one sink: an inserter arm picks from each source onto a
  belt end; the first belt runs into the sink, the second joins it from the side.
"""

from __future__ import annotations

from itertools import permutations
from typing import NamedTuple

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, footprint
from shared_schema.world import Channel, World
from training.expert.machines import Arm, _belt_end, drop_belt_facings
from training.expert.routing import apply_route, route, route_belt

Tile = tuple[int, int]
UNREACHABLE = 1 << 30  # the cost of a splitter position whose outputs cannot reach the sinks
CANDIDATE_SPLITTERS = 24  # splitter positions `plan_split` tries before giving up


def _dist(a: Tile, b: Tile) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def splitter_halves(x: int, y: int, facing: Direction) -> list[Tile]:
    """The two tiles of a splitter anchored at (x, y)."""
    w, h = footprint(Entity.SPLITTER, facing)
    return [(x + dx, y + dy) for dy in range(h) for dx in range(w)]


class SplitterSpot(NamedTuple):
    """A splitter position `plan_split` may try: its anchor, facing, which half takes the
    source's belt, and its cost (Manhattan belt distance from the source to that half's
    input plus from the outputs to the sinks, obstacles ignored)."""

    cost: int
    x: int
    y: int
    facing: Direction
    half: int


def splitter_spots(
    task: World, source: Tile, sinks: list[Tile], protected: frozenset[Tile] = frozenset()
) -> list[SplitterSpot]:
    """Every splitter position whose input and outputs are free, cheapest first (ties by
    position: top row first, then left, facing, half)."""
    H, W = task.height, task.width
    # open[y + 1, x + 1]: a route may use (x, y); the border is closed
    open_ = np.zeros((H + 2, W + 2), bool)
    open_[1:-1, 1:-1] = (task.data[Channel.ENTITY] == Entity.EMPTY) & (task.data[Channel.BUILDABLE] == 1)
    for x, y in protected:
        open_[y + 1, x + 1] = False

    def usable(xs: np.ndarray, ys: np.ndarray, target: Tile) -> np.ndarray:
        """Which tiles a route may use, or end at (`target`, the marker it runs to)."""
        return open_[ys + 1, xs + 1] | ((xs == target[0]) & (ys == target[1]))

    def dist(xs: np.ndarray, ys: np.ndarray, target: Tile) -> np.ndarray:
        return np.abs(xs - target[0]) + np.abs(ys - target[1])

    columns: list[list[np.ndarray]] = [[], [], [], [], []]  # cost, y, x, facing, input half
    for facing in Direction:
        w, h = footprint(Entity.SPLITTER, facing)
        free = open_[1:-1, 1:-1]
        ys, xs = np.nonzero(free[: H - h + 1, : W - w + 1] & free[h - 1 :, w - 1 :])
        half_tiles = [(xs, ys), (xs + w - 1, ys + h - 1)]  # the second half is east or south of the anchor
        (ax, ay), (bx, by) = [(hx + facing.dx, hy + facing.dy) for hx, hy in half_tiles]  # output tiles
        ahead = np.full(xs.shape, UNREACHABLE)
        for a, b in (sinks, sinks[::-1]):
            fits = usable(ax, ay, a) & usable(bx, by, b)
            ahead = np.where(fits, np.minimum(ahead, dist(ax, ay, a) + dist(bx, by, b)), ahead)
        for k, (hx, hy) in enumerate(half_tiles):
            behind_x, behind_y = hx - facing.dx, hy - facing.dy
            ok = usable(behind_x, behind_y, source) & (ahead < UNREACHABLE)
            cost = dist(behind_x, behind_y, source) + ahead
            values = (cost, ys, xs, np.full(xs.shape, int(facing)), np.full(xs.shape, k))
            for column, value in zip(columns, values, strict=True):
                column.append(value[ok])
    cost, ys, xs, fs, ks = (np.concatenate(column) for column in columns)
    order = np.lexsort((ks, fs, xs, ys, cost))
    return [
        SplitterSpot(c, x, y, Direction(f), k)
        for c, x, y, f, k in zip(*(a[order].tolist() for a in (cost, xs, ys, fs, ks)), strict=True)
    ]


def split_through(
    task: World, source: Tile, sinks: list[Tile], spot: SplitterSpot, protected: frozenset[Tile] = frozenset()
) -> World | None:
    """`task` with a splitter at `spot` (unless one stands there already) and belts from
    `source` into it and from its halves into `sinks`, or None when a route does not fit."""
    world = task.copy()
    if world.entity(spot.x, spot.y) != Entity.SPLITTER:
        world.place(Entity.SPLITTER, spot.x, spot.y, spot.facing)
    halves = splitter_halves(spot.x, spot.y, spot.facing)
    steps = route(world, source, halves[spot.half], frozenset({spot.facing}), protected=protected)
    if steps is None:
        return None
    apply_route(world, steps)
    for order in permutations(sinks):
        done = world.copy()
        for half, sink in zip(halves, order, strict=True):
            out = route_belt(done, half, sink, protected=protected)
            if out is None:
                break
            apply_route(done, out)
        else:
            return done
    return None


def plan_split(task: World, source: Tile, sinks: list[Tile], protected: frozenset[Tile] = frozenset()) -> World | None:
    """The expert's layout carrying `source` through one splitter into both `sinks`: the
    first of the `CANDIDATE_SPLITTERS` cheapest spots whose three routes all fit."""
    for spot in splitter_spots(task, source, sinks, protected)[:CANDIDATE_SPLITTERS]:
        layout = split_through(task, source, sinks, spot, protected)
        if layout is not None:
            return layout
    return None


def _arms_from(world: World, source: Tile) -> list[Arm]:
    """Arms that pick from `source` (a 1x1 entity) and drop away from it, on the grid,
    plain before long-handed."""
    arms = []
    for kind, start in ((Entity.INSERTER, 1), (Entity.LONG_INSERTER, 2)):
        for side in Direction:
            arm = Arm(kind, (source[0] + start * side.dx, source[1] + start * side.dy), side)
            if all(world.is_empty(*t) for t in arm.tiles()):
                arms.append(arm)
    return arms


def _arm_onto_belt(world: World, arm: Arm, toward: Tile, protected: frozenset[Tile]) -> list[World]:
    """`world` with the arm placed and a belt end on its drop tile, one world per belt
    facing, the facings nearest `toward` first."""
    worlds = []
    for facing in drop_belt_facings(arm, toward):
        trial = world.copy()
        trial.place(arm.kind, *arm.tile, arm.outward)
        if _belt_end(trial, arm.outer, facing, protected):
            worlds.append(trial)
    return worlds


def plan_merge(task: World, sources: list[Tile], sink: Tile, protected: frozenset[Tile] = frozenset()) -> World | None:
    """The expert's layout bringing both (belt-less) `sources` into `sink`."""
    first, second = sorted(sources, key=lambda s: _dist(s, sink))
    for arm in sorted(_arms_from(task, first), key=lambda a: (_dist(a.outer, sink), a.reach)):
        for world in _arm_onto_belt(task, arm, sink, protected):
            steps = route_belt(world, arm.outer, sink, protected=protected)
            if steps is None:
                continue
            apply_route(world, steps)
            joined = _join(world, second, [arm.outer, *((s.x, s.y) for s in steps if s.kind == Entity.BELT)], protected)
            if joined is not None:
                return joined
    return None


def _join(world: World, source: Tile, line: list[Tile], protected: frozenset[Tile]) -> World | None:
    """`world` plus an arm from `source` and a belt that side-loads onto a tile of `line`."""
    for arm in sorted(_arms_from(world, source), key=lambda a: (min(_dist(a.outer, t) for t in line), a.reach)):
        nearest = min(line, key=lambda t: _dist(arm.outer, t))
        for trial in _arm_onto_belt(world, arm, nearest, protected):
            for tile in sorted(line, key=lambda t: _dist(arm.outer, t)):
                along = trial.facing(*tile)
                entries = frozenset({along.turned(-1), along.turned(1)})
                steps = route(trial, arm.outer, tile, entries, protected=protected)
                if steps is not None:
                    apply_route(trial, steps)
                    return trial
    return None
