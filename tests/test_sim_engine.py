"""The mimic's public API: single and batched evaluation, the explain view, the score."""

from __future__ import annotations

import re

import numpy as np
import pytest

from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from tests.conftest import world_of
from training.sim import power_mean_score, simulate, sink_rates_batch
from training.sim.engine import MalformedWorldError, check_worlds
from training.sim.explain import explain
from training.sim.random_layouts import routed_layout, stack


def test_simulate_reports_each_sink_with_its_item() -> None:
    world = world_of(
        "S> b> Y> b> K>\n.. .. Y> b> K>",
        [(0, 0, "iron-plate"), (4, 0, "iron-plate"), (4, 1, "copper-plate")],
    )
    result = simulate(world)
    assert [(s.x, s.y, s.item) for s in result.sinks] == [(4, 0, "iron-plate"), (4, 1, "copper-plate")]
    # the copper sink consumes the iron that reaches it but counts none of it
    assert result.rates == pytest.approx([7.5, 0.0])
    assert result.lane_flow.shape == (2, 5, 2, 2)


def test_batch_agrees_with_single_evaluation() -> None:
    rng = np.random.default_rng(7)
    worlds = [routed_layout(rng, 11) for _ in range(40)]
    rates, counts = sink_rates_batch(stack(worlds))
    for world, row, count in zip(worlds, rates, counts, strict=True):
        single = simulate(world).rates
        assert count == len(single)
        assert row[:count] == pytest.approx(single, abs=1e-12)


def test_batch_rejects_a_wrong_shape() -> None:
    with pytest.raises(MalformedWorldError, match=r"int16\[B, 6, H, W\]"):
        sink_rates_batch(np.zeros((6, 4, 4), np.int16))


def _broken(change: str) -> np.ndarray:
    world = world_of("S> Y> K>\n.. Y> ..\naaaaaaaa\naa    aa\naaaaaaaa", [(0, 0, "iron-plate"), (2, 0, "iron-plate")])
    data = world.data.copy()
    if change == "facing":
        data[Channel.FACING, 0, 2] = 7
    elif change == "item":
        data[Channel.ITEM, 0, 0] = 9999
    elif change == "half splitter":
        data[:, 1, 1] = 0  # the splitter's second tile gone
    elif change == "assembler part":
        data[Channel.PART, 3, 1] = 0  # a second anchor inside the machine
    return data[None]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("facing", "world 0, tile (2, 0): facing must be 0..3"),
        ("item", "world 0, tile (0, 0): item id not in the catalog"),
        ("half splitter", "splitter tiles do not make up a whole splitter"),
        ("assembler part", "assembler tiles do not make up a whole assembler"),
    ],
)
def test_malformed_tensors_are_refused_before_the_kernels_read_them(change: str, words: str) -> None:
    with pytest.raises(MalformedWorldError, match=re.escape(words)):
        sink_rates_batch(_broken(change))


def test_well_formed_tensors_pass_the_check() -> None:
    check_worlds(_broken("nothing"))
    rng = np.random.default_rng(3)
    check_worlds(stack([routed_layout(rng, 11) for _ in range(50)]))


def test_a_tile_two_splitters_claim_is_refused() -> None:
    # (1, 1) is the second tile of the north-facing splitter at (0, 1) and, by its own
    # facing, of a west-facing one at (1, 0): two entities cannot share a tile
    world = World.empty(3, 2)
    world.place(Entity.SPLITTER, 0, 1, Direction.NORTH)
    world.data[[Channel.ENTITY, Channel.FACING, Channel.PART], 0, 1] = (Entity.SPLITTER, Direction.WEST, 0)
    world.data[Channel.FACING, 1, 1] = Direction.WEST
    with pytest.raises(MalformedWorldError, match=re.escape("tile (0, 1): splitter tiles do not make up a whole")):
        check_worlds(world.data[None])


def test_threads_split_the_batch_without_changing_the_answer() -> None:
    rng = np.random.default_rng(5)
    worlds = stack([routed_layout(rng, 11) for _ in range(37)])
    rates, counts = sink_rates_batch(worlds)
    for threads in (2, 3, 64):
        split_rates, split_counts = sink_rates_batch(worlds, threads=threads)
        assert np.array_equal(split_rates, rates) and np.array_equal(split_counts, counts)
    with pytest.raises(ValueError, match="threads"):
        sink_rates_batch(worlds, threads=0)


def test_explain_says_why_a_mixed_lane_carries_nothing() -> None:
    # iron and copper merged by a splitter share both lanes; the belt dead-ends and only
    # iron is ever taken off, so copper clogs it
    world = world_of(
        """\
S> Y> b> b> ..
S> Y> b> .. ..
.. .. iv .. ..
aaaaaaaa .. ..
aa    aa i> K>
aaaaaaaa .. ..""",
        [(0, 0, "iron-plate"), (0, 1, "copper-plate"), (0, 3, "iron-gear-wheel"), (4, 4, "iron-gear-wheel")],
    )
    result = simulate(world)
    assert result.rates == [0.0]
    assert "clogged" in explain(world, result)


def test_power_mean_score() -> None:
    assert power_mean_score([15.0], [15.0]) == 1.0
    assert power_mean_score([7.5, 7.5], [7.5, 7.5]) == 1.0
    # a starved sink costs more than the arithmetic mean would say
    assert power_mean_score([7.5, 0.0], [7.5, 7.5]) == pytest.approx(0.25)
    assert power_mean_score([20.0], [15.0]) == 1.0  # clipped
    with pytest.raises(ValueError, match="positive"):
        power_mean_score([1.0], [0.0])
