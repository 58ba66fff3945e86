"""Blueprint strings: what the game imports, what we accept back, and exact round trips."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema.blueprint import (
    BLUEPRINT_VERSION,
    BlueprintError,
    blueprint_json,
    decode_blueprint,
    decode_version,
    encode_blueprint,
    encode_version,
)
from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.grid import parse_grid, render_grid
from shared_schema.world import Channel, PlacementError, World
from tests.conftest import world_of

CATALOG = load_catalog()

FACTORY = """\
S> b> d> ## u> i> K>
aaaaaaaa Y^YY^ .. l<
aa    aa .. .. .. ..
aaaaaaaa .. .. .. .."""


def factory() -> World:
    return world_of(FACTORY, [(0, 0, "iron-plate"), (6, 0, "iron-plate"), (1, 2, "iron-gear-wheel")])


def without_markers(world: World) -> World:
    out = world.copy()
    for kind, x, y in world.entities():
        if kind in (Entity.SOURCE, Entity.SINK, Entity.BLOCKED):
            out.remove(x, y)
    return out


def string_of(data: Any) -> str:
    return "0" + base64.b64encode(zlib.compress(json.dumps(data).encode())).decode()


def test_the_string_is_version_byte_then_base64_zlib_json() -> None:
    string = encode_blueprint(factory(), label="gears")
    assert string[0] == "0"
    data = json.loads(zlib.decompress(base64.b64decode(string[1:])))
    blueprint = data["blueprint"]
    assert blueprint["item"] == "blueprint" and blueprint["label"] == "gears"
    assert blueprint["version"] == BLUEPRINT_VERSION
    assert decode_version(blueprint["version"])[:2] == (2, 0)


def test_the_version_packs_four_16_bit_fields() -> None:
    assert encode_version(2, 0, 7, 0) == 562949953880064
    assert decode_version(encode_version(1, 1, 110, 3)) == (1, 1, 110, 3)


def test_markers_and_blocked_tiles_stay_out_and_entities_are_numbered_from_one() -> None:
    entities = blueprint_json(encode_blueprint(factory()))["blueprint"]["entities"]
    assert [e["entity_number"] for e in entities] == list(range(1, len(entities) + 1))
    names = sorted(e["name"] for e in entities)
    assert names == sorted(
        ["transport-belt", "underground-belt", "underground-belt", "inserter", "long-handed-inserter"]
        + ["assembling-machine-1", "splitter"]
    )


def test_entities_carry_game_fields() -> None:
    by_name = {e["name"]: e for e in blueprint_json(encode_blueprint(factory()))["blueprint"]["entities"]}
    assert by_name["assembling-machine-1"]["recipe"] == "iron-gear-wheel"
    assert by_name["assembling-machine-1"]["position"] == {"x": 1.5, "y": 2.5}
    assert by_name["inserter"]["direction"] == 12  # moves items east, points west
    assert by_name["long-handed-inserter"]["direction"] == 4  # moves items west
    assert "direction" not in by_name["splitter"]  # north: the game omits it


def test_round_trip_gives_the_same_world_minus_markers() -> None:
    world = factory()
    decoded = decode_blueprint(encode_blueprint(world), world.width, world.height, origin=(0, 0))
    assert decoded == without_markers(world)
    assert render_grid(decoded).splitlines()[0] == ".. b> d> .. u> i> .."


def test_without_size_or_origin_the_world_is_the_entities_bounding_box() -> None:
    decoded = decode_blueprint(encode_blueprint(factory()))
    assert (decoded.width, decoded.height) == (7, 4)  # column 0 (source) only had a marker above the machine
    world = parse_grid(".. .. ..\n.. b> i^\n.. .. ..")
    assert render_grid(decode_blueprint(encode_blueprint(world))) == "b> i^"


def test_an_origin_places_the_blueprint_in_a_larger_world() -> None:
    world = parse_grid("b> b>")
    decoded = decode_blueprint(encode_blueprint(world), width=4, height=2, origin=(-1, -1))
    assert render_grid(decoded) == ".. .. .. ..\n.. b> b> .."


def test_a_game_exported_blueprint_decodes() -> None:
    # as the game writes it: centred near 0, negative positions, north omitted, 2.0 version
    data = {
        "blueprint": {
            "icons": [{"signal": {"name": "transport-belt"}, "index": 1}],
            "entities": [
                {"entity_number": 1, "name": "transport-belt", "position": {"x": -1.5, "y": -0.5}, "direction": 4},
                {"entity_number": 2, "name": "inserter", "position": {"x": -0.5, "y": -0.5}, "direction": 12},
                {"entity_number": 3, "name": "underground-belt", "position": {"x": 0.5, "y": -0.5}, "type": "input"},
                {"entity_number": 4, "name": "splitter", "position": {"x": 1.5, "y": -1}, "direction": 4},
                {"entity_number": 5, "name": "splitter", "position": {"x": 3, "y": -0.5}, "direction": 8},
            ],
            "item": "blueprint",
            "version": 562949954928640,
        }
    }
    assert render_grid(decode_blueprint(string_of(data))) == ".. .. .. Y> .. ..\nb> i> d^ Y> YvYYv"


def test_a_1_1_blueprint_has_its_8_way_directions_converted() -> None:
    data = {
        "blueprint": {
            "item": "blueprint",
            "version": encode_version(1, 1, 110),
            "entities": [
                {"entity_number": 1, "name": "transport-belt", "position": {"x": 0.5, "y": 0.5}, "direction": 2},
                {"entity_number": 2, "name": "inserter", "position": {"x": 1.5, "y": 0.5}, "direction": 6},
                {"entity_number": 3, "name": "underground-belt", "position": {"x": 2.5, "y": 0.5}, "direction": 4},
            ],
        }
    }
    assert render_grid(decode_blueprint(string_of(data))) == "b> i> dv"


def test_unmodelled_entities_are_all_named_with_counts() -> None:
    entities = [
        {"entity_number": i + 1, "name": name, "position": {"x": i + 0.5, "y": 0.5}}
        for i, name in enumerate(["fast-transport-belt", "stone-furnace", "transport-belt", "fast-transport-belt"])
    ]
    with pytest.raises(ValueError, match=r"fast-transport-belt x2, stone-furnace x1") as raised:
        decode_blueprint(string_of({"blueprint": {"item": "blueprint", "entities": entities}}))
    assert "transport-belt x" not in str(raised.value).replace("fast-transport-belt", "")


def test_unknown_recipes_are_rejected() -> None:
    entities = [{"entity_number": 1, "name": "assembling-machine-1", "position": {"x": 1.5, "y": 1.5}, "recipe": "x"}]
    with pytest.raises(ValueError, match="unknown recipe 'x'"):
        decode_blueprint(string_of({"blueprint": {"item": "blueprint", "entities": entities}}))


@pytest.mark.parametrize(
    ("string", "says"),
    [
        ("", "empty"),
        ("1eJyrVkrKTM9QsqpWyk", "bad version byte '1'"),
        ("0!!!not base64!!!", "bad base64"),
        ("0" + base64.b64encode(b"not zlib at all").decode(), "bad zlib"),
        ("0" + base64.b64encode(zlib.compress(b"{not json")).decode(), "bad JSON"),
        ("0" + base64.b64encode(zlib.compress(b"[1, 2]")).decode(), "expected an object"),
        (string_of({"blueprint_book": {"blueprints": []}}), "blueprint book"),
        (string_of({"upgrade_planner": {}}), "not a blueprint"),
    ],
)
def test_malformed_strings_say_what_is_wrong(string: str, says: str) -> None:
    with pytest.raises(BlueprintError, match=says):
        decode_blueprint(string)
    assert issubclass(BlueprintError, ValueError)


def test_entities_that_do_not_fit_or_overlap_are_rejected() -> None:
    string = encode_blueprint(parse_grid("b> b> b>"))
    with pytest.raises(ValueError, match="does not fit"):
        decode_blueprint(string, width=2, height=1, origin=(0, 0))
    overlapping = [
        {"entity_number": 1, "name": "transport-belt", "position": {"x": 0.5, "y": 0.5}},
        {"entity_number": 2, "name": "inserter", "position": {"x": 0.5, "y": 0.5}},
    ]
    with pytest.raises(ValueError, match="overlaps"):
        decode_blueprint(string_of({"blueprint": {"item": "blueprint", "entities": overlapping}}))


def test_an_empty_blueprint_needs_a_size() -> None:
    string = encode_blueprint(parse_grid("S> K>"))
    with pytest.raises(ValueError, match="width and height"):
        decode_blueprint(string)
    assert decode_blueprint(string, width=2, height=1) == World.empty(2, 1)


# ---------------------------------------------------------------------------- property

KINDS = [k for k in Entity if k != Entity.EMPTY]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    world = World.empty(draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(KINDS))
        facing = draw(st.sampled_from(list(Direction)))
        end = UndergroundEnd.NONE
        item = 0
        if kind == Entity.UNDERGROUND:
            end = draw(st.sampled_from([UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT]))
        elif kind in (Entity.SOURCE, Entity.SINK):
            item = draw(st.integers(1, len(CATALOG.items) - 1))
        elif kind == Entity.ASSEMBLER:
            item = draw(st.integers(0, len(CATALOG.recipes) - 1))
        x, y = draw(st.integers(0, world.width - 1)), draw(st.integers(0, world.height - 1))
        try:
            world.place(kind, x, y, facing, item, end)
        except PlacementError:
            pass
    return world


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_random_worlds_round_trip(world: World) -> None:
    decoded = decode_blueprint(encode_blueprint(world), world.width, world.height, origin=(0, 0))
    assert decoded == without_markers(world)


@settings(max_examples=100, deadline=None)
@given(worlds())
def test_random_worlds_decode_to_their_bounding_box(world: World) -> None:
    bare = without_markers(world)
    occupied = bare.data[Channel.ENTITY].nonzero()
    if not occupied[0].size:
        return
    top, left = int(occupied[0].min()), int(occupied[1].min())
    bottom, right = int(occupied[0].max()) + 1, int(occupied[1].max()) + 1
    decoded = decode_blueprint(encode_blueprint(world))
    assert (decoded.width, decoded.height) == (right - left, bottom - top)
    assert (decoded.data == bare.data[:, top:bottom, left:right]).all()
