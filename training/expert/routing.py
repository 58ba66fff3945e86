"""Belt routing for the expert planner: one source marker to one sink marker.

`route_belt` runs A* over states (x, y, facing): "a belt-like tile of the route stands
at (x, y) and moves items `facing`", so the next tile is always the one it faces. A
step is a belt (cost 1, straight or a curve) or an underground pair (cost
`UNDERGROUND_BASE_COST + length`, so belts win whenever they can and tunnels only
cross what belts cannot). The heuristic is the Manhattan distance from the tile the
state feeds to the sink: every step advances at most one tile per unit of cost, so it
is admissible and consistent.

The route is kept isolated (MECHANICS.md / docs/MIMIC.md rules):
- it is built only on empty, buildable, unprotected tiles that no existing inserter
  picks from or drops into (an inserter would steal from or pollute the line);
- nothing already on the map points into a route tile (it would merge foreign flow),
  except the source into the first tile;
- each route tile points only into the next one, so the route never side-loads itself
  and never feeds anything else; the last one points into the sink from its back or a
  side (a head-on belt does not connect), and from its back if something else already
  side-loads the sink (a foreign feeder behind it leaves no route at all);
- an underground entrance faces the way it is fed (a side-loaded entrance passes only
  one lane), and its exit is 1..max_tunnel tiles ahead with no underground of the same
  axis in between, and neither end inside an existing same-facing pair (which would
  re-pair and break it).

Validity depends on the partial route (its own tiles and tunnels), which the state
does not hold; each candidate is checked against its ancestors. With a closed set on
(x, y, facing) that can, in contrived layouts, miss a route that must revisit a state;
every route it returns is valid (the property tests check this against the mimic).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel, World

BELT_COST = 1
UNDERGROUND_BASE_COST = 4  # a pair costs this plus its length (tiles from entrance to exit)

Tile = tuple[int, int]


@dataclass(frozen=True)
class BeltStep:
    """One placement of a route."""

    kind: Entity  # BELT or UNDERGROUND
    x: int
    y: int
    facing: Direction  # the way items move
    end: UndergroundEnd = UndergroundEnd.NONE


def step_cost(steps: list[BeltStep]) -> int:
    """The cost `route_belt` minimises: 1 per belt, base + length per underground pair."""
    cost = 0
    entrance: BeltStep | None = None
    for step in steps:
        if step.kind == Entity.BELT:
            cost += BELT_COST
        elif step.end == UndergroundEnd.ENTRANCE:
            entrance = step
        elif entrance is not None:
            cost += UNDERGROUND_BASE_COST + abs(step.x - entrance.x) + abs(step.y - entrance.y)
    return cost


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
    world: World,
    source: Tile,
    sink: Tile,
    *,
    protected: frozenset[Tile] = frozenset(),
    max_tunnel: int = 5,
) -> list[BeltStep] | None:
    """The cheapest belts and underground pairs carrying `source`'s items into `sink`.

    `sink` is a sink marker; `source` a source marker or anything else that pushes items
    the way it faces (a belt end, a splitter half). Returns the placements in flow order
    ([] if the source already feeds the sink), or None if no isolated route exists."""
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
    world: World,
    start: Tile,
    goal: Tile,
    entries: frozenset[Direction],
    *,
    protected: frozenset[Tile] = frozenset(),
    max_tunnel: int = 5,
) -> list[BeltStep] | None:
    """The cheapest isolated route from the belt-like entity at `start` (a source, a
    belt end, one half of a splitter: whatever pushes items the way it faces) into the
    belt-like tile `goal`, entering it moving one of `entries` (the caller knows which
    entries connect: a splitter takes only from behind, a belt not head-on). Returns the
    placements in flow order ([] if `start` already feeds `goal`), or None."""
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


def apply_route(world: World, steps: list[BeltStep]) -> None:
    """Place a route's belts and undergrounds on `world` (in place)."""
    for step in steps:
        world.place(step.kind, step.x, step.y, step.facing, underground=step.end)
