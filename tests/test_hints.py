"""The distance hints the policy reads: path costs to a sink and from a source, with
underground jumps over walls, and what is already built counted from the source side."""

from __future__ import annotations

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import CHANNELS, Channel
from training.env import FactoryVectorEnv
from training.hints import EXITS, HINTS, distance_hints


def world(rows: list[str]) -> np.ndarray:
    """int16[1, 6, H, W] from letters: S source, K sink, # blocked, b belt, . empty."""
    letters = {".": Entity.EMPTY, "S": Entity.SOURCE, "K": Entity.SINK, "#": Entity.BLOCKED, "b": Entity.BELT}
    data = np.zeros((1, CHANNELS, len(rows), len(rows[0])), np.int16)
    for y, row in enumerate(rows):
        for x, letter in enumerate(row):
            data[0, Channel.ENTITY, y, x] = letters[letter]
            data[0, Channel.BUILDABLE, y, x] = letter != "#"
    return data


def costs(rows: list[str], field: int) -> np.ndarray:
    """The path costs back from the closeness (1 - cost / (H + W)); -1 where unreachable."""
    closeness = distance_hints(world(rows))[0, field]
    h, w = closeness.shape
    return np.where(closeness > 0, np.rint((1 - closeness) * (h + w)), -1).astype(int)


def test_costs_count_steps_to_the_sink_over_empty_tiles() -> None:
    to_sink = costs(["S...K", "....."], field=0)
    assert to_sink[0].tolist() == [-1, 3, 2, 1, 0]
    assert to_sink[1].tolist() == [5, 4, 3, 2, 1]


def test_a_wall_is_crossed_only_by_an_underground_jump_of_at_most_five_tiles() -> None:
    near = costs(["S.#.K"], field=0)
    assert near[0].tolist() == [-1, 4, -1, 1, 0]  # from x=1 a jump of two tiles (cost 3) lands beside the sink
    far = costs(["S.....######.K"], field=0)
    assert far[0, 5] == -1 and far[0, 12] == 1  # six blocked tiles: no underground reaches across


def test_built_entities_carry_the_source_field_but_block_the_sink_field() -> None:
    rows = ["Sbbb.K"]
    assert costs(rows, field=1)[0].tolist() == [0, 1, 2, 3, 4, -1]  # sinks are not passable from the source side
    assert costs(rows, field=0)[0].tolist() == [-1, -1, -1, -1, 1, 0]  # belts block the way to the sink


def test_belts_are_drawn_to_a_machine_once_it_stands() -> None:
    rows = ["S....", "....."]
    assert (costs(rows, field=2) == -1).all()  # no machine, no splitter: nothing to be drawn to
    data = world(rows)
    data[0, Channel.ENTITY, :, 3:] = Entity.ASSEMBLER  # a stand-in footprint: the field reads only the kind
    closeness = distance_hints(data)[0, 2]
    assert closeness[0, 2] > closeness[0, 1] > closeness[0, 0] == 0.0  # the source tile is not passable


def test_hints_have_one_shape_per_world_and_no_markers_means_zero() -> None:
    batch = np.concatenate([world(["S..K"]), world(["...."])])
    hints = distance_hints(batch)
    assert hints.shape == (2, HINTS, 1, 4) and hints.dtype == np.float32
    assert (hints[1] == 0).all()


def test_an_exit_pairs_only_in_line_with_an_open_entrance_facing_its_way() -> None:
    data = world(["......."] * 3)
    data[0, Channel.ENTITY, 1, 1] = Entity.UNDERGROUND
    data[0, Channel.FACING, 1, 1] = Direction.EAST
    data[0, Channel.UNDERGROUND, 1, 1] = UndergroundEnd.ENTRANCE
    east = distance_hints(data)[0, EXITS + Direction.EAST]
    assert east[1].tolist() == [0, 0, 1, 1, 1, 1, 1]  # 1 to 5 tiles past the entrance
    assert east[0].sum() == east[2].sum() == 0  # not off its row
    assert distance_hints(data)[0, EXITS + Direction.WEST].sum() == 0  # nor facing another way
    data[0, Channel.ENTITY, 1, 4] = Entity.UNDERGROUND  # an exit already there pairs with it
    data[0, Channel.FACING, 1, 4] = Direction.EAST
    data[0, Channel.UNDERGROUND, 1, 4] = UndergroundEnd.EXIT
    assert distance_hints(data)[0, EXITS + Direction.EAST][1].tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_threads_split_the_batch_and_change_nothing() -> None:
    env = FactoryVectorEnv(num_envs=37, size=9, prefill=0.5)  # an odd count: chunks of unequal length
    obs, _ = env.reset(seed=5)
    worlds = obs["world"]
    assert np.array_equal(distance_hints(worlds, threads=2), distance_hints(worlds))
    assert distance_hints(worlds[:0], threads=2).shape == (0, HINTS, 9, 9)
