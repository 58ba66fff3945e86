"""The action mask: legal placements less those that can never connect (training.env.masks)."""

from __future__ import annotations

import numpy as np
import pytest

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd, footprint
from shared_schema.placement import Action, check
from shared_schema.world import Channel, World
from tests.conftest import world_of
from training.env.core import PLACEABLE, anchor_masks
from training.env.masks import action_masks, dead_placements, rollout_masks
from training.lessons import generate

BUILDING_KINDS = ["belt-routing", "belt-wall", "belt-crossing", "split", "merge", "machine", "machine-row"]
N, E, S, W = Direction.NORTH, Direction.EAST, Direction.SOUTH, Direction.WEST


def dead(world: World, kind: Entity, x: int, y: int, facing: Direction) -> bool:
    end = UndergroundEnd.ENTRANCE if kind == Entity.UNDERGROUND else UndergroundEnd.NONE
    assert check(world, Action(kind, x, y, facing, end=end)) is None, "the cases are legal placements"
    return bool(dead_placements(world.data[None])[0, PLACEABLE.index(kind), facing, y * world.width + x])


def test_a_belt_may_not_point_into_a_tile_that_refuses_it() -> None:
    world = world_of(".. .. .. ..\n.. b> .. ..\n.. .. .. ..\n.. .. .. ..")
    assert dead(world, Entity.BELT, 2, 1, W)  # head-on into the belt
    assert not dead(world, Entity.BELT, 0, 1, E)  # from behind: straight on
    assert not dead(world, Entity.BELT, 1, 0, S)  # from the side: a curve or a side-load
    assert not dead(world, Entity.BELT, 1, 2, N)
    sink = world_of(".. .. ..\n.. K> ..\n.. .. ..", [(1, 1, "iron-plate")])
    assert dead(sink, Entity.BELT, 2, 1, W)
    assert not dead(sink, Entity.BELT, 1, 0, S)


def test_splitters_take_only_from_behind() -> None:
    world = world_of(".. .. .. ..\n.. Y> .. ..\n.. Y> .. ..\n.. .. .. ..")
    assert not dead(world, Entity.BELT, 0, 1, E)  # into its back
    assert dead(world, Entity.BELT, 1, 0, S)  # into its side
    assert dead(world, Entity.BELT, 2, 1, W)  # into its front
    # a splitter fed from its side by a belt already there
    fed = world_of(".. .. .. ..\n.. bv .. ..\n.. .. .. ..\n.. .. .. ..")
    assert dead(fed, Entity.SPLITTER, 1, 2, E)  # the belt points into its upper half, from the side
    assert not dead(fed, Entity.SPLITTER, 0, 2, S)  # from behind
    assert dead(fed, Entity.SPLITTER, 1, 2, N)  # from its front
    assert dead(fed, Entity.SPLITTER, 0, 2, N)  # its right half points head-on into the belt


def test_undergrounds_and_their_ends() -> None:
    world = world_of(".. .. .. ..\n.. b> .. ..\n.. .. .. ..")
    assert dead(world, Entity.UNDERGROUND, 2, 1, W)  # fed head-on, whichever end it becomes
    assert not dead(world, Entity.UNDERGROUND, 2, 1, E)
    exit_ = world_of(".. .. .. ..\n.. u> .. ..\n.. .. .. ..")
    assert dead(exit_, Entity.BELT, 0, 1, E)  # into an exit's hood
    assert not dead(exit_, Entity.BELT, 1, 0, S)  # side-loading an exit
    entrance = world_of(".. .. .. ..\n.. d> .. ..\n.. .. .. ..")
    assert not dead(entrance, Entity.BELT, 0, 1, E)


def test_inserters_need_both_ends_usable() -> None:
    rows = "S> .. K> ## ..\n" + ".. .. .. .. ..\n" * 4
    world = world_of(rows, [(0, 0, "iron-plate"), (2, 0, "iron-plate")])
    assert not dead(world, Entity.INSERTER, 1, 0, E)  # from a source into a sink
    assert dead(world, Entity.INSERTER, 1, 0, W)  # from a sink into a source
    assert dead(world, Entity.INSERTER, 4, 0, W)  # picks off the grid
    assert dead(world, Entity.INSERTER, 4, 0, E)  # drops off the grid
    assert dead(world, Entity.LONG_INSERTER, 1, 0, E)  # picks two tiles back: off the grid
    assert not dead(world, Entity.INSERTER, 1, 1, N)  # picks from an empty tile: it may get a belt later
    assert dead(world, Entity.LONG_INSERTER, 3, 2, N)  # drops two tiles ahead: onto the blocked tile
    assert not dead(world, Entity.LONG_INSERTER, 2, 2, N)  # two tiles ahead: into the sink


def test_a_belt_may_end_against_a_source_but_not_a_wall_or_the_edge() -> None:
    world = world_of("S> .. ..\n.. .. ##\n.. .. ..", [(0, 0, "iron-plate")])
    assert not dead(world, Entity.BELT, 0, 1, N)  # into a source: its last tile can feed an inserter
    assert dead(world, Entity.BELT, 1, 1, E)  # into the blocked tile
    assert dead(world, Entity.BELT, 2, 0, E)  # off the grid
    assert not dead(world, Entity.BELT, 2, 2, W)  # along the edge: it may end there, or go on


def test_action_masks_are_legality_less_dead_placements() -> None:
    lesson = generate("split", 7, 11)
    worlds = lesson.solution.data[None] if lesson.solution else lesson.task.data[None]
    masks = action_masks(worlds)
    assert np.array_equal(masks.astype(bool), anchor_masks(worlds).astype(bool) & ~dead_placements(worlds))


@pytest.mark.parametrize("kind", BUILDING_KINDS)
def test_no_reference_solution_uses_a_dead_placement(kind: str) -> None:
    for seed in range(1000, 1020):
        lesson = generate(kind, seed, 11)
        assert lesson.solution is not None
        task, solution = lesson.task.data, lesson.solution.data
        built = (solution[Channel.ENTITY] != task[Channel.ENTITY]) & (solution[Channel.PART] == 0)
        for y, x in zip(*np.nonzero(built), strict=True):
            entity, facing = Entity(solution[Channel.ENTITY, y, x]), int(solution[Channel.FACING, y, x])
            width, height = footprint(entity, facing)
            without = solution.copy()  # the solution with this entity not yet built
            without[:, y : y + height, x : x + width] = task[:, y : y + height, x : x + width]
            index = PLACEABLE.index(entity), facing, y * lesson.task.width + x
            assert not dead_placements(without[None])[0][index], (kind, seed, entity.name, x, y)


def done_legal(world: World) -> bool:
    done = rollout_masks(world.data[None], done_rule=True)[1]
    assert done is not None
    return bool(done[0])


def test_done_waits_for_every_sink_to_get_its_items() -> None:
    items = [(0, 0, "iron-plate"), (3, 0, "iron-plate")]
    assert not done_legal(world_of("S> .. .. K>\n.. .. .. ..", items))  # the sink gets nothing yet
    assert done_legal(world_of("S> b> b> K>\n.. .. .. ..", items))
    # a source's belt split to two sinks: 7.5/s each is their share
    split = [(0, 0, "iron-plate"), (2, 0, "iron-plate"), (2, 1, "iron-plate")]
    assert done_legal(world_of("S> Y> K>\n.. Y> K>\n.. .. ..", split))
    assert not done_legal(world_of("S> b> K>\n.. .. K>\n.. .. ..", split))  # one sink gets nothing


def test_done_waits_for_a_sink_far_below_what_its_sources_could_send() -> None:
    # an inserter from a source whose belt could run: 0.86/s of the 15 a belt would carry
    items = [(0, 0, "iron-plate"), (2, 0, "iron-plate")]
    assert not done_legal(world_of("S> i> K>\n.. .. ..", items))
    # a source facing a wall can only be emptied by inserters: 1.2/s is all there is to wait for
    walled = [(0, 0, "iron-plate"), (4, 0, "iron-plate")]
    assert done_legal(world_of("S< .. l> .. K>\n.. .. .. .. ..", walled))


def test_done_is_legal_when_nothing_else_is() -> None:
    world = world_of("S> ## K>", [(0, 0, "iron-plate"), (2, 0, "iron-plate")])
    masks, done = rollout_masks(world.data[None], done_rule=True)
    assert not masks.any() and done is not None and done[0] == 1  # the sink gets nothing, but nothing can be placed


@pytest.mark.parametrize("kind", BUILDING_KINDS + ["one-belt", "one-machine"])
def test_every_reference_solution_may_say_done(kind: str) -> None:
    for seed in range(30):
        assert done_legal(generate(kind, seed, 11).solution), (kind, seed)
