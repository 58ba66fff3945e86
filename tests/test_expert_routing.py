"""The expert planner's belt router: routes that the mimic says deliver a full belt."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.grid import apply_items, parse_grid
from shared_schema.world import Channel, World
from tests import reference_routing
from tests.conftest import world_of
from training.expert import routing
from training.expert.routing import BeltStep, apply_route, route_belt, step_cost
from training.sim import simulate
from training.sim.random_layouts import noisy_layout, routed_layout

IRON = "iron-plate"


def find(world: World, kind: Entity) -> list[tuple[int, int]]:
    return [(x, y) for k, x, y in world.entities() if k == kind]


def routed(grid: str, protected: frozenset[tuple[int, int]] = frozenset()) -> tuple[World, list[BeltStep] | None]:
    """Route the world's only source to its only sink; the returned world has the route."""
    world = parse_grid(grid)
    (source,), (sink,) = find(world, Entity.SOURCE), find(world, Entity.SINK)
    apply_items(world, [{"x": x, "y": y, "item": IRON} for x, y in (source, sink)])
    steps = route_belt(world, source, sink, protected=protected)
    if steps is not None:
        apply_route(world, steps)
    return world, steps


def rate_at(world: World, sink: tuple[int, int]) -> float:
    return next(s.per_second for s in simulate(world).sinks if (s.x, s.y) == sink)


def test_straight_route_on_an_empty_grid() -> None:
    world, steps = routed("S> .. .. .. K>")
    assert steps == [BeltStep(Entity.BELT, x, 0, Direction.EAST) for x in (1, 2, 3)]
    assert simulate(world).rates == [15.0]


def test_a_source_next_to_its_sink_needs_nothing() -> None:
    world, steps = routed("S> K>")
    assert steps == []
    assert simulate(world).rates == [15.0]


def test_bending_route_is_as_short_as_the_distance() -> None:
    world, steps = routed(
        """\
S> .. .. ..
.. .. .. ..
.. .. .. ..
.. .. .. Kv"""
    )
    assert steps is not None and len(steps) == 5  # (1,0) .. (3,2): Manhattan distance 5
    assert all(s.kind == Entity.BELT for s in steps)
    assert simulate(world).rates == [15.0]


def test_a_wall_is_crossed_by_an_underground_pair() -> None:
    world, steps = routed(
        """\
.. .. ## .. .. ..
S> .. ## .. .. ..
.. .. ## .. .. K>
.. .. ## .. .. .."""
    )
    assert steps is not None
    ends = [s.end for s in steps if s.kind == Entity.UNDERGROUND]
    assert ends == [UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT]
    assert simulate(world).rates == [15.0]


def test_a_four_thick_wall_is_crossed_but_a_five_thick_one_is_not() -> None:
    # the entrance and exit need a free tile each side of the wall: at most 4 between
    world, steps = routed("S> .. ## ## ## ## .. K>")
    assert steps is not None and [s.end for s in steps] == [UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT]
    assert simulate(world).rates == [15.0]
    world, steps = routed(
        """\
.. .. ## ## ## ## ## .. ..
S> .. ## ## ## ## ## .. K>
.. .. ## ## ## ## ## .. .."""
    )
    assert steps is None


def test_a_sink_facing_the_source_is_fed_from_its_back_or_side() -> None:
    world, steps = routed(
        """\
.. .. .. .. .. ..
S> .. .. .. K< ..
.. .. .. .. .. .."""
    )
    assert steps is not None
    last = steps[-1]
    assert (last.x, last.y) != (3, 1)  # the sink's front: a belt there would meet it head-on
    assert (last.x + last.facing.dx, last.y + last.facing.dy) == (4, 1)
    assert simulate(world).rates == [15.0]


def test_protected_tiles_are_never_built_on() -> None:
    protected = frozenset({(2, 1), (3, 1), (2, 0)})
    world, steps = routed(
        """\
.. .. .. .. ..
S> .. .. .. K>
.. .. .. .. ..""",
        protected=protected,
    )
    assert steps is not None
    assert not {(s.x, s.y) for s in steps} & protected
    assert simulate(world).rates == [15.0]


def test_an_existing_belt_line_is_crossed_not_merged() -> None:
    world = world_of(
        """\
.. .. .. Sv .. .. ..
.. .. .. bv .. .. ..
S> .. .. bv .. .. K>
.. .. .. bv .. .. ..
.. .. .. Kv .. .. ..""",
        [(3, 0, "copper-plate"), (3, 4, "copper-plate"), (0, 2, IRON), (6, 2, IRON)],
    )
    steps = route_belt(world, (0, 2), (6, 2))
    assert steps is not None
    assert [s.end for s in steps if s.kind == Entity.UNDERGROUND] == [UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT]
    apply_route(world, steps)
    assert rate_at(world, (6, 2)) == 15.0
    assert rate_at(world, (3, 4)) == 15.0


def test_a_route_does_not_take_a_tile_another_belt_points_into() -> None:
    # the copper belt at (2, 1) points into (2, 2), on the straight path: a belt there
    # would merge copper in, so the route goes round that tile
    world = world_of(
        """\
.. .. Sv .. ..
.. .. bv .. ..
S> .. .. .. K>
.. .. .. .. ..""",
        [(2, 0, "copper-plate"), (0, 2, IRON), (4, 2, IRON)],
    )
    steps = route_belt(world, (0, 2), (4, 2))
    assert steps is not None
    assert (2, 2) not in {(s.x, s.y) for s in steps}
    apply_route(world, steps)
    assert simulate(world).rates == [15.0]


def test_a_source_pointing_into_the_only_way_out_gives_none() -> None:
    world = world_of(
        """\
.. Sv ..
S> .. K>""",
        [(1, 0, "copper-plate"), (0, 1, IRON), (2, 1, IRON)],
    )
    assert route_belt(world, (0, 1), (2, 1)) is None


def test_an_inserter_s_tiles_are_avoided() -> None:
    world, steps = routed(
        """\
.. .. iv .. ..
S> .. .. .. K>
.. .. .. .. .."""
    )
    assert steps is not None
    assert (2, 1) not in {(s.x, s.y) for s in steps}
    assert simulate(world).rates == [15.0]


def test_routing_is_deterministic() -> None:
    grid = """\
.. .. .. ## .. .. ..
S> .. .. ## .. .. ..
.. .. .. .. .. .. ..
.. ## .. ## .. .. Kv
.. .. .. .. .. .. .."""
    world = parse_grid(grid)
    first = route_belt(world, (0, 1), (6, 3))
    assert first is not None
    for _ in range(3):
        assert route_belt(parse_grid(grid), (0, 1), (6, 3)) == first
    assert world == parse_grid(grid)  # routing does not touch the world


def test_a_source_pushing_off_the_grid_gives_none() -> None:
    assert routed("S< .. K>")[1] is None


def test_markers_are_checked() -> None:
    with pytest.raises(ValueError, match="source"):
        route_belt(parse_grid(".. K>"), (0, 0), (1, 0))


@st.composite
def random_worlds(draw: st.DrawFn, blocked: bool = True) -> tuple[World, tuple[int, int], tuple[int, int]]:
    w = draw(st.integers(6, 11))
    h = draw(st.integers(6, 11))
    margin = 0 if blocked else 2
    tiles = st.tuples(st.integers(margin, w - 1 - margin), st.integers(margin, h - 1 - margin))
    source = draw(tiles)
    # a source pushing off the grid has no route at all: not worth the examples
    facing = draw(st.sampled_from(Direction).filter(lambda f: 0 <= source[0] + f.dx < w and 0 <= source[1] + f.dy < h))
    # a sink right where the source pushes is unbuildable: leave that to the other test
    ahead = (source[0] + facing.dx, source[1] + facing.dy)
    sink = draw(tiles.filter(lambda t: t != source and (blocked or t != ahead)))
    world = World.empty(w, h)
    world.place(Entity.SOURCE, *source, facing)
    world.place(Entity.SINK, *sink, Direction(draw(st.integers(0, 3))))
    apply_items(world, [{"x": source[0], "y": source[1], "item": IRON}, {"x": sink[0], "y": sink[1], "item": IRON}])
    if blocked:
        # foreign copper markers: any copper merged into the route would show at our sink
        for kind in (Entity.SOURCE, Entity.SINK) * draw(st.integers(0, 2)):
            x, y = draw(st.tuples(st.integers(0, w - 1), st.integers(0, h - 1)))
            if world.entity(x, y) == Entity.EMPTY:
                world.place(kind, x, y, Direction(draw(st.integers(0, 3))))
                apply_items(world, [{"x": x, "y": y, "item": "copper-plate"}])
        if draw(st.booleans()):  # a wall across the grid: only a tunnel crosses it
            left, thick = draw(st.integers(0, w - 1)), draw(st.integers(1, 5))
            for y in range(h):
                for x in range(left, min(w, left + thick)):
                    if world.entity(x, y) == Entity.EMPTY:
                        world.place(Entity.BLOCKED, x, y)
        density = draw(st.sampled_from([0.0, 0.1, 0.25, 0.4]))
        for y in range(h):
            for x in range(w):
                if world.entity(x, y) == Entity.EMPTY and draw(st.floats(0, 1)) < density:
                    world.place(Entity.BLOCKED, x, y)
    return world, source, sink


@settings(derandomize=True, deadline=None, max_examples=60)
@given(random_worlds())
def test_any_route_found_delivers_a_full_belt(case: tuple[World, tuple[int, int], tuple[int, int]]) -> None:
    world, source, sink = case
    steps = route_belt(world, source, sink)
    if steps is None:
        return
    for s in steps:
        assert world.entity(s.x, s.y) == Entity.EMPTY and world.data[Channel.BUILDABLE, s.y, s.x] == 1
    built = world.copy()
    apply_route(built, steps)
    result = simulate(built)
    assert next(r.per_second for r in result.sinks if (r.x, r.y) == sink) == pytest.approx(15.0)
    lanes = result.lane_flow[sink[1], sink[0]].sum(axis=-1)
    assert lanes == pytest.approx([7.5, 7.5])


@settings(derandomize=True, deadline=None, max_examples=60)
@given(random_worlds(blocked=False))
def test_open_ground_routes_are_near_the_manhattan_bound(
    case: tuple[World, tuple[int, int], tuple[int, int]],
) -> None:
    world, source, sink = case
    steps = route_belt(world, source, sink)
    assert steps is not None  # markers are away from the edge: there is always room to turn
    facing = world.facing(*source)
    first = (source[0] + facing.dx, source[1] + facing.dy)
    bound = abs(first[0] - sink[0]) + abs(first[1] - sink[1])
    assert step_cost(steps) <= bound + 2  # a U-turn or coming round a head-on sink costs 2
    assert all(s.kind == Entity.BELT for s in steps)


def test_a_sink_already_fed_from_a_side_is_entered_from_behind() -> None:
    # copper side-loads the sink from the north; a straight entry keeps our full belt
    world = world_of(
        """\
.. .. .. Sv .. ..
.. .. .. K> .. ..
.. .. .. .. .. ..
.. S^ .. .. .. ..""",
        [(3, 0, "copper-plate"), (3, 1, IRON), (1, 3, IRON)],
    )
    steps = route_belt(world, (1, 3), (3, 1))
    assert steps is not None
    assert (steps[-1].x, steps[-1].y, steps[-1].facing) == (2, 1, Direction.EAST)
    apply_route(world, steps)
    assert simulate(world).rates == [15.0]


def test_a_sink_already_fed_from_behind_gives_none() -> None:
    world = world_of("S> K> .. S<", [(0, 0, "copper-plate"), (1, 0, IRON), (3, 0, IRON)])
    assert route_belt(world, (3, 0), (1, 0)) is None


# The kernel router against the plain-Python reference: identical steps, or both None.

PUSHERS = (Entity.SOURCE, Entity.BELT, Entity.SPLITTER)


def _random_world(rng: np.random.Generator, largest: int) -> World:
    """A lesson-like or a noisy world, 8 to `largest` tiles a side, plus a few underground
    pairs whose insides a route must not use (a noisy world cut to a random aspect may
    hold half a splitter or machine: to the router that is one more obstacle)."""
    w, h = (int(v) for v in rng.integers(8, largest + 1, size=2))
    if rng.random() < 0.35:
        world = routed_layout(rng, min(w, h))
    else:
        noisy = noisy_layout(rng, max(w, h), fill=float(rng.uniform(0.0, 0.4)))
        world = World(noisy.data[:, :h, :w].copy())
    for _ in range(int(rng.integers(4))):
        x, y = int(rng.integers(world.width)), int(rng.integers(world.height))
        facing, length = Direction(int(rng.integers(4))), int(rng.integers(1, 7))  # 6: too far to pair
        exit_ = (x + length * facing.dx, y + length * facing.dy)
        if world.is_empty(x, y) and world.is_empty(*exit_):
            world.place(Entity.UNDERGROUND, x, y, facing, underground=UndergroundEnd.ENTRANCE)
            world.place(Entity.UNDERGROUND, *exit_, facing, underground=UndergroundEnd.EXIT)
    return world


def _tiles(world: World, kinds: tuple[Entity, ...]) -> list[tuple[int, int]]:
    ys, xs = np.nonzero(np.isin(world.data[Channel.ENTITY], kinds))
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def _new_marker(world: World, rng: np.random.Generator, kind: Entity) -> tuple[int, int]:
    """A marker of `kind` on a random empty tile (one is made empty if none is), facing
    an empty tile where there is one."""
    empty = _tiles(world, (Entity.EMPTY,))
    x, y = empty[int(rng.integers(len(empty)))] if empty else (0, 0)
    world.remove(x, y)
    facings = [f for f in Direction if world.is_empty(x + f.dx, y + f.dy)] or list(Direction)
    world.place(kind, x, y, facings[int(rng.integers(len(facings)))])
    return x, y


def random_query(seed: int, largest: int = 32) -> tuple[str, World, tuple[object, ...], dict[str, object]]:
    """A router call (function name, world, positional and keyword arguments) on a random
    world: from a source, belt end, splitter half or underground exit into a sink, a
    splitter half (from behind), a belt (from a side) or any tile with any entries."""
    rng = np.random.default_rng(seed)
    world = _random_world(rng, largest)
    pushers = _tiles(world, PUSHERS) + [t for t in _tiles(world, (Entity.UNDERGROUND,)) if _is_exit(world, t)]
    if rng.random() < 0.85:  # mostly ends with room in front, as the planners route from
        pushers = [(x, y) for x, y in pushers if world.is_empty(x + world.facing(x, y).dx, y + world.facing(x, y).dy)]
    start = pushers[int(rng.integers(len(pushers)))] if pushers and rng.random() < 0.6 else None
    if start is None:
        start = _new_marker(world, rng, Entity.SOURCE)
    kwargs: dict[str, object] = {"max_tunnel": int(rng.choice([0, 1, 2, 3, 4, 5, 5, 5, 5, 6, 9]))}
    if rng.random() < 0.5:
        w, h = world.width, world.height
        if rng.random() < 0.5:  # a row or column, as the crossing lessons protect a line
            at = int(rng.integers(min(w, h)))
            line = [(at, y) for y in range(h)] if rng.random() < 0.5 else [(x, at) for x in range(w)]
        else:
            line = [(int(rng.integers(-1, w + 1)), int(rng.integers(-1, h + 1))) for _ in range(int(rng.integers(8)))]
        kwargs["protected"] = frozenset(line)
    goal_kind = int(rng.integers(5))
    if goal_kind <= 1:
        sinks = _tiles(world, (Entity.SINK,))
        sink = sinks[int(rng.integers(len(sinks)))] if sinks and rng.random() < 0.5 else None
        return "route_belt", world, (start, sink or _new_marker(world, rng, Entity.SINK)), kwargs
    if goal_kind == 2 and _tiles(world, (Entity.SPLITTER,)):
        halves = _tiles(world, (Entity.SPLITTER,))
        goal = halves[int(rng.integers(len(halves)))]
        entries = frozenset({world.facing(*goal)})
    elif goal_kind == 3 and _tiles(world, (Entity.BELT,)):
        belts = _tiles(world, (Entity.BELT,))
        goal = belts[int(rng.integers(len(belts)))]
        entries = frozenset({world.facing(*goal).turned(-1), world.facing(*goal).turned(1)})
    else:
        goal = (int(rng.integers(world.width)), int(rng.integers(world.height)))
        entries = frozenset(d for d in Direction if rng.random() < 0.6)
    return "route", world, (start, goal, entries), kwargs


def _is_exit(world: World, tile: tuple[int, int]) -> bool:
    return int(world.data[Channel.UNDERGROUND, tile[1], tile[0]]) == UndergroundEnd.EXIT


def test_the_kernel_router_matches_the_reference() -> None:
    for seed in range(300):
        name, world, args, kwargs = random_query(seed, largest=32 if seed % 10 == 0 else 16)
        expected = getattr(reference_routing, name)(world, *args, **kwargs)
        assert getattr(routing, name)(world, *args, **kwargs) == expected, (seed, name, args, kwargs)
