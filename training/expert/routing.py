"""Belt routing for the expert planner: one source marker to one sink marker.

`route_belt` runs A* over states (x, y, facing): "a belt-like tile of the route stands
at (x, y) and moves items `facing`", so the next tile is always the one it faces. A
step is a belt (cost 1, straight or a curve) or an underground pair (cost
`UNDERGROUND_BASE_COST + length`, so belts win whenever they can and tunnels only
cross what belts cannot). The heuristic is the Manhattan distance from the tile the
state feeds to the sink: every step advances at most one tile per unit of cost, so it
is admissible and consistent. Ties pop by (f, h, push order), so routes are deterministic.

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

The search itself is a numba kernel over the world tensor (`route_kernel.py`): lesson
generation routes thousands of times, and the plain-Python A* spent milliseconds per
call on Python objects. This module only validates, packs the query into arrays and
turns the kernel's rows into `BeltStep`s. `tests/reference_routing.py` keeps the
plain-Python router, and the tests hold the two to identical steps on random worlds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel, World
from training.expert.route_kernel import BELT_COST, UNDERGROUND_BASE_COST, search, sink_entries

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
    # head-on into the sink does not connect; beside a foreign side feeder only a
    # straight entry keeps both lanes; a foreign feeder behind leaves no entry (0)
    entries = int(sink_entries(world.data, source[0], source[1], sink[0], sink[1]))
    if entries == 0:
        return None
    return _search(world, source, sink, entries, protected, max_tunnel)


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
    mask = 0
    for facing in entries:
        mask |= 1 << int(facing)
    return _search(world, start, goal, mask, protected, max_tunnel)


def _search(
    world: World, start: Tile, goal: Tile, entries: int, protected: frozenset[Tile], max_tunnel: int
) -> list[BeltStep] | None:
    """Run the kernel; `entries` is a bit mask of facings (bit d for Direction d)."""
    tiles = np.array(tuple(protected), np.int64).reshape(-1, 2)
    found, rows = search(world.data, start[0], start[1], goal[0], goal[1], entries, tiles, int(max_tunnel))
    if not found:
        return None
    return [_step(x, y, f, end) for x, y, f, end in rows.tolist()]


@cache
def _step(x: int, y: int, facing: int, end: int) -> BeltStep:
    """A kernel row as a BeltStep; they are frozen, so equal ones are shared (building
    the dataclass and its enums cost more than the search on small grids)."""
    kind = Entity.UNDERGROUND if end else Entity.BELT
    return BeltStep(kind, x, y, Direction(facing), UndergroundEnd(end))


def _pushes(world: World, x: int, y: int) -> bool:
    kind = world.entity(x, y)
    if kind == Entity.UNDERGROUND:
        return int(world.data[Channel.UNDERGROUND, y, x]) == UndergroundEnd.EXIT
    return kind in (Entity.SOURCE, Entity.BELT, Entity.SPLITTER)


def apply_route(world: World, steps: list[BeltStep]) -> None:
    """Place a route's belts and undergrounds on `world` (in place)."""
    for step in steps:
        world.place(step.kind, step.x, step.y, step.facing, underground=step.end)
