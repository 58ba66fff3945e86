"""Entities on a source-to-sink path: flow in the mimic's steady state, grouped by entity."""

from __future__ import annotations

import numpy as np
import pytest

from shared_schema.entities import SPECS, footprint
from shared_schema.world import Channel, World
from tests.conftest import world_of
from training.sim import simulate
from training.sim.paths import on_path, on_path_fraction, on_path_fractions
from training.sim.random_layouts import noisy_layout, routed_layout, stack

PLATE = "iron-plate"


def _marked(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for y, x in np.argwhere(mask)}


def test_a_dead_end_branch_is_off_the_path() -> None:
    # the splitter's lower output runs into a dead end, which fills and takes nothing
    world = world_of("S> Y> b> K>\n.. Y> b> b>", [(0, 0, PLATE), (3, 0, PLATE)])
    assert _marked(on_path(world)) == {(1, 0), (1, 1), (2, 0)}  # both splitter tiles, the upper belt
    assert on_path_fraction(world) == pytest.approx(2 / 4)  # splitter and one belt of four entities


def test_markers_are_never_counted_and_a_straight_line_is_all_on_path() -> None:
    world = world_of("S> b> b> K>", [(0, 0, PLATE), (3, 0, PLATE)])
    assert _marked(on_path(world)) == {(1, 0), (2, 0)}
    assert on_path_fraction(world) == 1.0


def test_an_unconnected_belt_and_an_idle_inserter_are_off_the_path() -> None:
    world = world_of("S> b> K>\n.. i^ ..\n.. b> ..", [(0, 0, PLATE), (2, 0, PLATE)])
    # the inserter picks from a belt that carries nothing and drops onto the working belt
    assert _marked(on_path(world)) == {(1, 0)}
    assert on_path_fraction(world) == pytest.approx(1 / 3)


def test_an_assembler_counts_once_and_marks_all_its_tiles() -> None:
    world = world_of(
        ".. .. aaaaaaaa .. ..\nS> i> aa    aa i> K>\n.. .. aaaaaaaa .. ..",
        [(0, 1, PLATE), (2, 1, "iron-gear-wheel"), (6, 1, "iron-gear-wheel")],
    )
    mask = on_path(world)
    assert mask[0:3, 2:5].all() and mask[1, 1] and mask[1, 5]
    assert on_path_fraction(world) == 1.0
    # a machine whose product cannot leave crafts nothing, nor does what feeds it
    world.remove(5, 1)
    assert not on_path(world).any()
    assert on_path_fraction(world) == 0.0


def test_an_empty_world_wastes_nothing() -> None:
    world = World.empty(4, 4)
    assert not on_path(world).any()
    assert on_path_fraction(world) == 1.0


def _reference_on_path(world: World) -> np.ndarray:
    """The definition read off `simulate`'s flows, tile by tile, then entity by entity."""
    result = simulate(world)
    flowing = result.lane_flow.sum(axis=(2, 3)) > 1e-9
    for (x, y), moved in result.inserter_flow.items():
        flowing[y, x] |= sum(moved.values()) > 1e-9
    for (x, y), crafts in result.crafts.items():
        flowing[y, x] |= crafts > 1e-9
    mask = np.zeros_like(flowing)
    for kind, x, y in world.entities():
        w, h = footprint(kind, int(world.data[Channel.FACING, y, x]))
        if SPECS[kind].placeable and flowing[y : y + h, x : x + w].any():
            mask[y : y + h, x : x + w] = True
    return mask


@pytest.mark.parametrize("layout", ["routed", "noisy"])
def test_kernel_agrees_with_the_flows_simulate_reports(layout: str) -> None:
    rng = np.random.default_rng(11)
    worlds = [routed_layout(rng, 11) if layout == "routed" else noisy_layout(rng, 9, 0.4) for _ in range(60)]
    fractions = on_path_fractions(stack(worlds))
    for world, fraction in zip(worlds, fractions, strict=True):
        expected = _reference_on_path(world)
        assert np.array_equal(on_path(world), expected)
        anchors = [(x, y) for kind, x, y in world.entities() if SPECS[kind].placeable]
        share = sum(bool(expected[y, x]) for x, y in anchors) / len(anchors) if anchors else 1.0
        assert fraction == pytest.approx(share)
