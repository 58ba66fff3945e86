"""A slow, plain-Python reference of the expert's belt router, to check the kernels against.

This is the router as it was before the numba kernels (`training/expert/route_kernel.py`):
the A* over (x, y, facing) written the obvious way, with `_Node` dataclasses, a heapq
keyed (f, h, push order), a closed set of tuples, and the partial route's tiles, ends and
tunnels rebuilt by walking the parents (`_history`) at every expansion. The rules are in
`training/expert/routing.py`'s docstring; `tests/test_expert_routing.py` holds the two to
identical steps on random worlds. Only `BeltStep` and the costs come from the real module.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel, World
from training.expert.routing import BELT_COST, UNDERGROUND_BASE_COST, BeltStep

Tile = tuple[int, int]
Tiles = frozenset[Tile]
Facings = frozenset[Direction]


@dataclass
class _Node:
    x: int
    y: int
    facing: Direction
    parent: int  # index into the node list, -1 for the source
    steps: tuple[BeltStep, ...]  # placed by the move into this node
    g: int


def _ahead(x: int, y: int, facing: Direction, n: int = 1) -> Tile:
    return x + n * facing.dx, y + n * facing.dy


class _Map:
    """What the existing world allows, precomputed once per query."""

    def __init__(self, world: World, source: Tile, protected: frozenset[Tile]) -> None:
        self.world, self.source = world, source
        self.w, self.h = world.width, world.height
        ent = world.data[Channel.ENTITY]
        self.free = (ent == Entity.EMPTY) & (world.data[Channel.BUILDABLE] == 1)
        for x, y in protected:
            if self.in_grid(x, y):
                self.free[y, x] = False
        self.fed: set[Tile] = set()  # tiles something other than our source points into
        self.inside: set[tuple[int, int, Direction]] = set()  # strictly inside an existing pair
        for y_, x_ in zip(*np.nonzero(ent), strict=True):  # only tiles that hold something
            x, y = int(x_), int(y_)
            kind = Entity(int(ent[y, x]))
            facing = world.facing(x, y)
            end = UndergroundEnd(int(world.data[Channel.UNDERGROUND, y, x]))
            if (x, y) == source:
                continue  # the route's own start: what it points into is the route
            if kind in (Entity.BELT, Entity.SPLITTER, Entity.SOURCE):
                self.fed.add(_ahead(x, y, facing))
            elif kind == Entity.UNDERGROUND and end == UndergroundEnd.EXIT:
                self.fed.add(_ahead(x, y, facing))
            elif kind == Entity.UNDERGROUND and end == UndergroundEnd.ENTRANCE:
                exit_k = self._pair_length(x, y, facing)
                for k in range(1, exit_k):
                    self.inside.add((*_ahead(x, y, facing, k), facing))
            elif kind in (Entity.INSERTER, Entity.LONG_INSERTER):
                reach = 1 if kind == Entity.INSERTER else 2
                for tx, ty in (_ahead(x, y, facing, reach), _ahead(x, y, facing, -reach)):
                    if self.in_grid(tx, ty):
                        self.free[ty, tx] = False

    def feeds(self, tile: Tile, target: Tile) -> bool:
        """Whether an existing entity at `tile`, other than our source, points into `target`."""
        x, y = tile
        if not self.in_grid(x, y) or tile == self.source:
            return False
        kind, facing = self.world.entity(x, y), self.world.facing(x, y)
        end = UndergroundEnd(int(self.world.data[Channel.UNDERGROUND, y, x]))
        pointer = kind in (Entity.BELT, Entity.SPLITTER, Entity.SOURCE) or end == UndergroundEnd.EXIT
        return pointer and _ahead(x, y, facing) == target

    def in_grid(self, x: int, y: int) -> bool:
        return 0 <= x < self.w and 0 <= y < self.h

    def underground(self, x: int, y: int) -> tuple[Direction, UndergroundEnd] | None:
        if self.world.entity(x, y) != Entity.UNDERGROUND:
            return None
        return self.world.facing(x, y), UndergroundEnd(int(self.world.data[Channel.UNDERGROUND, y, x]))

    def _pair_length(self, x: int, y: int, facing: Direction) -> int:
        """Distance to the exit this entrance pairs with (docs/MIMIC.md: each is the
        other's nearest same-facing end), or 0 if it is unpaired."""
        for k in range(1, 6):
            tx, ty = _ahead(x, y, facing, k)
            if not self.in_grid(tx, ty):
                return 0
            found = self.underground(tx, ty)
            if found is None or found[0] != facing:
                continue
            if found[1] == UndergroundEnd.ENTRANCE:
                return 0
            return k  # the nearest exit; nothing same-facing lies between, so it is mutual
        return 0


def route_belt(
    world: World, source: Tile, sink: Tile, *, protected: Tiles = frozenset(), max_tunnel: int = 5
) -> list[BeltStep] | None:
    """As `training.expert.routing.route_belt`."""
    if not _pushes(world, *source):
        raise ValueError(f"{source} is not a source marker or anything else that pushes items")
    if world.entity(*sink) != Entity.SINK:
        raise ValueError(f"{sink} is not a sink marker")
    m = _Map(world, source, protected)
    sink_facing = world.facing(*sink)
    if sink in m.fed and m.feeds(_ahead(*sink, sink_facing, -1), sink):
        return None  # something else already fills the sink from behind: no full belt fits
    # head-on into the sink does not connect; beside a foreign side feeder only a
    # straight entry keeps both lanes (flow from behind has priority)
    if sink in m.fed and any(m.feeds(_ahead(*sink, sink_facing.turned(t)), sink) for t in (-1, 1)):
        entries = frozenset({sink_facing})
    else:
        entries = frozenset(Direction) - {sink_facing.opposite}
    return _search(m, sink, entries, max_tunnel)


def route(
    world: World, start: Tile, goal: Tile, entries: Facings, *, protected: Tiles = frozenset(), max_tunnel: int = 5
) -> list[BeltStep] | None:
    """As `training.expert.routing.route`."""
    return _search(_Map(world, start, protected), goal, entries, max_tunnel)


def _search(m: _Map, goal: Tile, entries: frozenset[Direction], max_tunnel: int) -> list[BeltStep] | None:
    """A* from `m.source` into `goal` (see the module docstring)."""

    def heuristic(x: int, y: int, facing: Direction) -> int:
        nx, ny = _ahead(x, y, facing)
        return abs(nx - goal[0]) + abs(ny - goal[1])

    start = m.source
    nodes = [_Node(start[0], start[1], m.world.facing(*start), -1, (), 0)]
    heap: list[tuple[int, int, int, int]] = [(heuristic(nodes[0].x, nodes[0].y, nodes[0].facing), 0, 0, 0)]
    seq = 1  # insertion counter: ties break by push order, which is deterministic
    closed: set[tuple[int, int, Direction]] = set()
    goal_parent: dict[int, int] = {}  # goal node id -> the node that feeds the goal

    def push(node: _Node, h: int) -> None:
        nonlocal seq
        nodes.append(node)
        heapq.heappush(heap, (node.g + h, h, seq, len(nodes) - 1))
        seq += 1

    while heap:
        _, _, _, nid = heapq.heappop(heap)
        if nid in goal_parent:
            return _steps_to(nodes, goal_parent[nid])
        node = nodes[nid]
        key = (node.x, node.y, node.facing)
        if key in closed:
            continue
        closed.add(key)
        qx, qy = _ahead(node.x, node.y, node.facing)
        if (qx, qy) == goal:
            if node.facing in entries:
                push(_Node(qx, qy, node.facing, nid, (), node.g), 0)
                goal_parent[len(nodes) - 1] = nid
            continue
        occupied, own_ends, own_inside = _history(nodes, nid)
        if not _buildable(m, occupied, qx, qy):
            continue
        f = node.facing
        for g in (f, f.turned(-1), f.turned(1)):  # never f.opposite: head-on to the feeder
            if (qx, qy, g) not in closed:
                step = BeltStep(Entity.BELT, qx, qy, g)
                push(_Node(qx, qy, g, nid, (step,), node.g + BELT_COST), heuristic(qx, qy, g))
        # the entrance faces its feeder's way: a side-loaded entrance passes only one lane
        if (qx, qy, f) in m.inside or (qx, qy, f) in own_inside:
            continue
        for k in range(1, max_tunnel + 1):
            ex, ey = _ahead(qx, qy, f, k)
            if not m.in_grid(ex, ey):
                break
            inside = (ex, ey, f) in m.inside or (ex, ey, f) in own_inside
            if not inside and _buildable(m, occupied, ex, ey) and (ex, ey, f) not in closed:
                steps = (
                    BeltStep(Entity.UNDERGROUND, qx, qy, f, UndergroundEnd.ENTRANCE),
                    BeltStep(Entity.UNDERGROUND, ex, ey, f, UndergroundEnd.EXIT),
                )
                push(_Node(ex, ey, f, nid, steps, node.g + UNDERGROUND_BASE_COST + k), heuristic(ex, ey, f))
            # an underground of this axis under the tunnel could take either end's pairing,
            # so no longer tunnel may pass it
            found = m.underground(ex, ey)
            own = own_ends.get((ex, ey))
            if (found is not None and found[0] % 2 == f % 2) or (own is not None and own % 2 == f % 2):
                break
    return None


def _pushes(world: World, x: int, y: int) -> bool:
    kind = world.entity(x, y)
    if kind == Entity.UNDERGROUND:
        return int(world.data[Channel.UNDERGROUND, y, x]) == UndergroundEnd.EXIT
    return kind in (Entity.SOURCE, Entity.BELT, Entity.SPLITTER)


def _buildable(m: _Map, occupied: set[Tile], x: int, y: int) -> bool:
    return m.in_grid(x, y) and bool(m.free[y, x]) and (x, y) not in occupied and (x, y) not in m.fed


def _history(nodes: list[_Node], nid: int) -> tuple[set[Tile], dict[Tile, Direction], set[tuple[int, int, Direction]]]:
    """For the partial route ending at `nid`: the tiles it occupies, its underground ends
    (tile -> facing), and (x, y, facing) of the tiles strictly inside its own pairs."""
    occupied: set[Tile] = set()
    ends: dict[Tile, Direction] = {}
    inside: set[tuple[int, int, Direction]] = set()
    while nid > 0:
        node = nodes[nid]
        for step in node.steps:
            occupied.add((step.x, step.y))
        if len(node.steps) == 2:
            entrance, exit_ = node.steps
            ends[(entrance.x, entrance.y)] = ends[(exit_.x, exit_.y)] = entrance.facing
            length = abs(exit_.x - entrance.x) + abs(exit_.y - entrance.y)
            for k in range(1, length):
                inside.add((*_ahead(entrance.x, entrance.y, entrance.facing, k), entrance.facing))
        nid = node.parent
    return occupied, ends, inside


def _steps_to(nodes: list[_Node], nid: int) -> list[BeltStep]:
    chain: list[BeltStep] = []
    while nid > 0:
        chain[:0] = nodes[nid].steps
        nid = nodes[nid].parent
    return chain
