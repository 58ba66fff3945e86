"""The text grid format: exact round trip, clear errors, and the world tensor behind it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd, footprint
from shared_schema.grid import GridParseError, apply_items, item_list, parse_grid, render_grid
from shared_schema.world import Channel, PlacementError, World
from tests.conftest import FIXTURE_FILES
from training.sim.random_layouts import noisy_layout

ALL_KINDS = """\
S> b> d> .. u> K>
.. .. .. .. .. ..
aaaaaaaa Y^YY^ ##
aa    aa iv lv Y>
aaaaaaaa .. .. Y>"""


def test_round_trip_of_every_entity_kind() -> None:
    world = parse_grid(ALL_KINDS)
    assert render_grid(world) == ALL_KINDS
    assert world.entity(0, 2) == Entity.ASSEMBLER and world.entity(1, 3) == Entity.ASSEMBLER
    assert world.entity(5, 3) == world.entity(5, 4) == Entity.SPLITTER
    assert world.data[Channel.UNDERGROUND, 0, 2] == UndergroundEnd.ENTRANCE
    assert world.data[Channel.UNDERGROUND, 0, 4] == UndergroundEnd.EXIT
    assert world.data[Channel.BUILDABLE, 2, 5] == 0  # blocked
    assert world.data[Channel.BUILDABLE, 0, 0] == 0  # a marker's tile is not buildable either
    assert world.data[Channel.BUILDABLE, 1, 0] == 1


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_round_trip_of_every_fixture_grid(path) -> None:  # type: ignore[no-untyped-def]
    for doc in yaml.safe_load_all(path.read_text()):
        grid = doc["factory"].rstrip("\n")
        assert render_grid(parse_grid(grid)) == grid


def test_adjacent_splitters_and_assemblers_stay_apart() -> None:
    grid = "Y^YY^ Y^YY^\nY> .. .. ..\nY> .. .. ..\nY> .. .. ..\nY> .. .. .."
    world = parse_grid(grid)
    assert render_grid(world) == grid
    assert [e for e in world.entities() if e[0] == Entity.SPLITTER] == [
        (Entity.SPLITTER, 0, 0),
        (Entity.SPLITTER, 2, 0),
        (Entity.SPLITTER, 0, 1),
        (Entity.SPLITTER, 0, 3),
    ]
    two = "aaaaaaaa aaaaaaaa\naa    aa aa    aa\naaaaaaaa aaaaaaaa"
    assert len(parse_grid(two).entities()) == 2


@pytest.mark.parametrize(
    ("grid", "line", "column", "words"),
    [
        ("S> q> ..", 1, 4, "unknown tile 'q>'"),
        ("S> b>\n.. b> b>", 1, 7, "row 1 has 2 tiles, the widest has 3"),
        ("S>xb> ..", 1, 3, "separator 'x'"),
        ("S> b> .", 1, 7, "3n-1"),
        (".. Y^ ..", 1, 4, "north-facing splitter is drawn Y^YY^"),
        ("Y>\n..", 1, 1, "two stacked rows"),
        ("aaaaaaaa\naa ..  aa\naaaaaaaa", 2, 9, "3n-1"),
        ("aaaaaaaa\naa b> aa\naaaaaaaa", 2, 4, "assembler tile should be '  '"),
        ("", 1, 1, "empty"),
    ],
)
def test_malformed_grids_name_line_and_column(grid: str, line: int, column: int, words: str) -> None:
    with pytest.raises(GridParseError) as error:
        parse_grid(grid)
    assert (error.value.line, error.value.column) == (line, column)
    assert words in str(error.value)


def test_items_name_sources_sinks_and_assemblers_from_any_tile() -> None:
    world = parse_grid(ALL_KINDS)
    apply_items(
        world,
        [
            {"x": 0, "y": 0, "item": "iron-plate"},
            {"x": 5, "y": 0, "item": "iron-gear-wheel"},
            {"x": 2, "y": 4, "item": "iron-gear-wheel"},  # bottom-right tile of the assembler
        ],
    )
    assert item_list(world) == [
        {"x": 0, "y": 0, "item": "iron-plate"},
        {"x": 5, "y": 0, "item": "iron-gear-wheel"},
        {"x": 0, "y": 2, "item": "iron-gear-wheel"},
    ]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"x": 0, "y": 0, "item": "unobtainium"}, "unknown item 'unobtainium'"),
        ({"x": 1, "y": 0, "item": "iron-plate"}, "names a belt"),
        ({"x": 9, "y": 0, "item": "iron-plate"}, "off the 6x5 grid"),
        ({"x": 0, "y": 2, "item": "sulfur"}, "no assembling-machine-1 recipe"),
    ],
)
def test_bad_item_entries_are_refused_by_name(entry, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=words):
        apply_items(parse_grid(ALL_KINDS), [entry])


def test_world_placement_contract() -> None:
    world = World.empty(5, 5)
    world.place(Entity.ASSEMBLER, 1, 1, item=1)
    with pytest.raises(PlacementError, match="overlaps"):
        world.place(Entity.BELT, 3, 3, Direction.EAST)
    with pytest.raises(PlacementError, match="does not fit"):
        world.place(Entity.SPLITTER, 4, 0, Direction.NORTH)
    with pytest.raises(PlacementError, match="needs an end"):
        world.place(Entity.UNDERGROUND, 0, 0, Direction.EAST)
    world.remove(2, 3)  # any tile of the assembler removes all of it
    assert not world.data[Channel.ENTITY].any()
    with pytest.raises(ValueError, match="1 to 32"):
        World.empty(33, 4)


def _turned_entity_by_entity(world: World, rotate: bool) -> World:
    """Rotation or mirror by re-placing every entity at its new anchor: the plain
    definition the tensor transform must agree with."""
    out = World.empty(world.height, world.width) if rotate else World.empty(world.width, world.height)
    for kind, x, y in world.entities():
        facing = world.facing(x, y)
        w, h = footprint(kind, facing)
        tile = world.data[:, y, x]
        if rotate:
            nx, ny, new_facing = world.height - (y + h), x, facing.turned(1)
        else:
            nx, ny = world.width - (x + w), y
            new_facing = Direction((4 - facing) % 4) if facing in (Direction.EAST, Direction.WEST) else facing
        if kind in (Entity.ASSEMBLER, Entity.BLOCKED):
            new_facing = Direction.NORTH
        out.place(kind, nx, ny, new_facing, int(tile[Channel.ITEM]), UndergroundEnd(int(tile[Channel.UNDERGROUND])))
    return out


def test_rotation_and_mirror_move_every_entity_whole() -> None:
    rng = np.random.default_rng(0)
    worlds = [parse_grid(ALL_KINDS)] + [noisy_layout(rng, 9, 0.6) for _ in range(200)]
    for world in worlds:
        assert world.rotated() == _turned_entity_by_entity(world, rotate=True)
        assert world.mirrored() == _turned_entity_by_entity(world, rotate=False)
        assert world.rotated(2) == world.rotated().rotated()
        assert world.rotated(3) == world.rotated(-1) == world.rotated().rotated().rotated()


def test_rotation_and_mirror_are_exact_inverses() -> None:
    world = parse_grid(ALL_KINDS)
    assert world.rotated().rotated().rotated().rotated() == world
    assert world.mirrored().mirrored() == world
    turned = world.rotated()
    assert (turned.width, turned.height) == (world.height, world.width)
    assert turned.facing(turned.width - 1, 0) == Direction.SOUTH  # the source, turned
