"""Properties of the mimic on random layouts: symmetry, and never beyond a belt."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared_schema.entities import BELT_LANE_RATE, BELT_LIKE, Entity
from shared_schema.world import World
from training.sim import simulate
from training.sim.random_layouts import noisy_layout, routed_layout

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def sorted_rates(world: World) -> list[float]:
    return sorted((s.item, round(s.per_second, 7)) for s in simulate(world).sinks)  # type: ignore[misc]


def drops_along_a_belt(world: World) -> bool:
    """An inserter dropping onto a belt that runs along its path: the game's fixed
    right-lane choice is not mirror-symmetric, so such layouts may change when mirrored."""
    for kind, x, y in world.entities():
        if kind not in (Entity.INSERTER, Entity.LONG_INSERTER):
            continue
        reach = 1 if kind == Entity.INSERTER else 2
        f = world.facing(x, y)
        dx, dy = x + f.dx * reach, y + f.dy * reach
        if 0 <= dx < world.width and 0 <= dy < world.height and world.entity(dx, dy) in BELT_LIKE:
            if world.facing(dx, dy) % 2 == f % 2:
                return True
    return False


@st.composite
def layouts(draw: st.DrawFn) -> World:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        return routed_layout(rng, draw(st.integers(6, 11)))
    return noisy_layout(rng, draw(st.integers(4, 9)), draw(st.floats(0.2, 0.8)))


@SETTINGS
@given(layouts(), st.integers(1, 3))
def test_rotating_a_layout_keeps_its_throughputs(world: World, turns: int) -> None:
    turned = world
    for _ in range(turns):
        turned = turned.rotated()
    assert sorted_rates(turned) == sorted_rates(world)


@SETTINGS
@given(layouts())
def test_mirroring_a_layout_keeps_its_throughputs(world: World) -> None:
    assume(not drops_along_a_belt(world))
    assert sorted_rates(world.mirrored()) == sorted_rates(world)


@SETTINGS
@given(layouts())
def test_random_layouts_never_exceed_what_a_belt_carries(world: World) -> None:
    result = simulate(world)
    for sink in result.sinks:
        assert 0.0 <= sink.per_second <= 2 * BELT_LANE_RATE + 1e-9
    assert (result.lane_flow >= -1e-9).all()
    assert (result.lane_flow.sum(axis=-1) <= BELT_LANE_RATE + 1e-9).all()
    assert np.isfinite(result.lane_flow).all()
