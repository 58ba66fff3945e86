"""The mapping to the game's entities: directions, inserters, undergrounds, centre positions."""

from __future__ import annotations

import itertools

import pytest

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.game import (
    GAME_KINDS,
    facing_from_name,
    facing_name,
    from_game_entity,
    to_game_entity,
)

N, E, S, W = Direction.NORTH, Direction.EAST, Direction.SOUTH, Direction.WEST


@pytest.mark.parametrize(("facing", "number"), [(N, 0), (E, 4), (S, 8), (W, 12)])
def test_belts_use_the_16_way_cardinal_numbers(facing: Direction, number: int) -> None:
    assert to_game_entity(Entity.BELT, 0, 0, facing)["direction"] == number


@pytest.mark.parametrize("kind", [Entity.INSERTER, Entity.LONG_INSERTER])
@pytest.mark.parametrize(("moves", "points"), [(N, 8), (E, 12), (S, 0), (W, 4)])
def test_inserters_point_where_they_pick_up_not_where_items_go(kind: Entity, moves: Direction, points: int) -> None:
    entity = to_game_entity(kind, 3, 4, moves)
    assert entity["direction"] == points
    assert from_game_entity(entity).facing == moves


def test_a_north_pointing_game_inserter_moves_items_south() -> None:
    # pickup_position {0, -1}, insert_position {0, 1.2}: unrotated it picks north, drops south
    read = from_game_entity({"name": "inserter", "position": {"x": 0.5, "y": 0.5}})
    assert read.facing == S


@pytest.mark.parametrize("facing", list(Direction))
def test_both_underground_ends_record_the_way_items_move(facing: Direction) -> None:
    entrance = to_game_entity(Entity.UNDERGROUND, 0, 0, facing, UndergroundEnd.ENTRANCE)
    exit_ = to_game_entity(Entity.UNDERGROUND, 0, 3, facing, UndergroundEnd.EXIT)
    assert entrance["type"] == "input" and exit_["type"] == "output"
    assert entrance["direction"] == exit_["direction"] == facing.game
    assert from_game_entity(exit_).underground_end == UndergroundEnd.EXIT


def test_splitters_face_the_flow_and_are_centred_between_their_tiles() -> None:
    north = to_game_entity(Entity.SPLITTER, 2, 5, N)
    assert north["direction"] == 0 and north["position"] == {"x": 3.0, "y": 5.5}
    east = to_game_entity(Entity.SPLITTER, 2, 5, E)
    assert east["direction"] == 4 and east["position"] == {"x": 2.5, "y": 6.0}
    assert to_game_entity(Entity.SPLITTER, 2, 5, W)["position"] == {"x": 2.5, "y": 6.0}


def test_one_tile_entities_sit_on_tile_centres() -> None:
    assert to_game_entity(Entity.BELT, 7, 2, E)["position"] == {"x": 7.5, "y": 2.5}


def test_assemblers_sit_on_their_middle_tile_and_carry_the_recipe() -> None:
    entity = to_game_entity(Entity.ASSEMBLER, 1, 2, recipe_name="iron-gear-wheel")
    assert entity == {
        "name": "assembling-machine-1",
        "position": {"x": 2.5, "y": 3.5},
        "direction": 0,
        "recipe": "iron-gear-wheel",
    }
    assert "recipe" not in to_game_entity(Entity.ASSEMBLER, 0, 0)


@pytest.mark.parametrize("kind", [Entity.SOURCE, Entity.SINK, Entity.BLOCKED, Entity.EMPTY])
def test_markers_and_blocked_tiles_are_not_game_entities(kind: Entity) -> None:
    with pytest.raises(ValueError, match="not a game entity"):
        to_game_entity(kind, 0, 0)


def test_every_game_entity_round_trips() -> None:
    for kind, facing, x, y in itertools.product(sorted(GAME_KINDS), Direction, (0, 5), (0, 3)):
        ends = (UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT) if kind == Entity.UNDERGROUND else (UndergroundEnd.NONE,)
        recipe = "electronic-circuit" if kind == Entity.ASSEMBLER else None
        want_facing = N if kind == Entity.ASSEMBLER else facing
        for end in ends:
            read = from_game_entity(to_game_entity(kind, x, y, facing, end, recipe))
            assert tuple(read) == (kind, x, y, want_facing, end, recipe)


def test_a_missing_direction_means_north_as_in_game_blueprints() -> None:
    read = from_game_entity({"name": "transport-belt", "position": {"x": -3.5, "y": 10.5}})
    assert (read.kind, read.x, read.y, read.facing) == (Entity.BELT, -4, 10, N)


def test_game_entities_we_cannot_read_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValueError, match="fast-transport-belt"):
        from_game_entity({"name": "fast-transport-belt", "position": {"x": 0.5, "y": 0.5}})
    with pytest.raises(ValueError, match="not a cardinal"):
        from_game_entity({"name": "transport-belt", "position": {"x": 0.5, "y": 0.5}, "direction": 2})
    with pytest.raises(ValueError, match="off the tile grid"):
        from_game_entity({"name": "transport-belt", "position": {"x": 1.0, "y": 0.5}})
    with pytest.raises(ValueError, match="off the tile grid"):
        from_game_entity({"name": "assembling-machine-1", "position": {"x": 1.0, "y": 1.0}})
    with pytest.raises(ValueError, match="neither 'input' nor 'output'"):
        from_game_entity({"name": "underground-belt", "position": {"x": 0.5, "y": 0.5}, "type": "in"})


def test_facing_names_round_trip() -> None:
    assert [facing_name(d) for d in Direction] == ["north", "east", "south", "west"]
    assert all(facing_from_name(facing_name(d)) == d for d in Direction)
    with pytest.raises(ValueError, match="up"):
        facing_from_name("up")
