"""Factorio 2.0 blueprint strings: encode a World, decode one back.

A blueprint string is one version byte, `0`, then base64 of zlib-deflated UTF-8 JSON
(wiki.factorio.com/Blueprint_string_format; the Factorix::Blueprint docs say the same:
"version_byte + Base64(zlib(JSON)), only version byte '0'"). The JSON is

    {"blueprint": {"item": "blueprint", "label": ..., "icons": [...],
                   "entities": [{"entity_number": 1, "name": ..., "position": {...}, ...}, ...],
                   "version": <64-bit number>}}

`version` packs the game version as four 16-bit fields, major << 48 | minor << 32 |
patch << 16 | build (factorio-draftsman 4.0.1, `draftsman/utils.py: encode_version`).
Entity fields follow `shared_schema.game` (directions, inserters, underground ends,
centre positions).

Only game entities go into a blueprint: sources, sinks and blocked tiles are the
player's markers and terrain, not things to build, so `encode_blueprint` leaves them
out and a decoded world never has them. Assemblers carry their `recipe` (the catalog
id in the world's ITEM channel becomes the recipe's game name).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections import Counter
from typing import Any

from shared_schema.catalog import Catalog, UnknownNameError, load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import GAME_NAMES, Entity, UndergroundEnd, footprint
from shared_schema.game import GAME_KINDS, GameEntity, from_game_entity, to_game_entity
from shared_schema.world import Channel, PlacementError, World

STRING_VERSION = "0"  # the only blueprint string version byte there has ever been
GAME_NAME = {kind: name for name, kind in GAME_NAMES.items()}


def encode_version(major: int, minor: int, patch: int = 0, build: int = 0) -> int:
    """The game's 64-bit version number: four 16-bit fields, major first."""
    for part in (major, minor, patch, build):
        if not 0 <= part <= 0xFFFF:
            raise ValueError(f"version part {part} does not fit in 16 bits")
    return major << 48 | minor << 32 | patch << 16 | build


def decode_version(number: int) -> tuple[int, int, int, int]:
    """(major, minor, patch, build) of a 64-bit version number."""
    return (number >> 48) & 0xFFFF, (number >> 32) & 0xFFFF, (number >> 16) & 0xFFFF, number & 0xFFFF


# 2.0.7, the first public 2.0 release: any 2.x game imports it and reads its directions
# as 16-way. (A version below 2.0 would make the game convert them from 8-way.)
BLUEPRINT_VERSION = encode_version(2, 0, 7, 0)
DEFAULT_LABEL = "Factorion"


class BlueprintError(ValueError):
    """A blueprint string or blueprint we cannot read; the message says what is wrong."""


def world_entities(world: World, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """The world's game entities (`to_game_entity` form) in row-major anchor order;
    sources, sinks and blocked tiles left out."""
    catalog = catalog or load_catalog()
    out = []
    for kind, x, y in world.entities():
        if kind not in GAME_KINDS:
            continue
        tile = world.data[:, y, x]
        recipe = None
        if kind == Entity.ASSEMBLER and int(tile[Channel.ITEM]):
            recipe = catalog.recipe(int(tile[Channel.ITEM])).name
        out.append(
            to_game_entity(
                kind, x, y, Direction(int(tile[Channel.FACING])), UndergroundEnd(int(tile[Channel.UNDERGROUND])), recipe
            )
        )
    return out


def world_to_blueprint(world: World, label: str = DEFAULT_LABEL, catalog: Catalog | None = None) -> dict[str, Any]:
    """The blueprint JSON object for `world`, positions in the world's own tile frame."""
    entities = []
    for number, entity in enumerate(world_entities(world, catalog), start=1):
        entry: dict[str, Any] = {"entity_number": number, "name": entity["name"], "position": entity["position"]}
        if entity["direction"]:  # the game omits north
            entry["direction"] = entity["direction"]
        for key in ("type", "recipe"):
            if key in entity:
                entry[key] = entity[key]
        entities.append(entry)
    blueprint: dict[str, Any] = {"item": "blueprint", "label": label}
    if entities:
        commonest = Counter(e["name"] for e in entities).most_common(1)[0][0]
        blueprint["icons"] = [{"signal": {"type": "item", "name": commonest}, "index": 1}]
    blueprint["entities"] = entities
    blueprint["version"] = BLUEPRINT_VERSION
    return {"blueprint": blueprint}


def encode_blueprint(world: World, label: str = DEFAULT_LABEL, catalog: Catalog | None = None) -> str:
    """`world` as a blueprint string the game imports (markers and blocked tiles left out)."""
    text = json.dumps(world_to_blueprint(world, label, catalog), separators=(",", ":"))
    return STRING_VERSION + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def blueprint_json(string: str) -> dict[str, Any]:
    """The JSON object inside a blueprint string. Raises BlueprintError saying which
    layer is broken: version byte, base64, zlib or JSON."""
    string = "".join(string.split())  # pasted strings often carry line breaks
    if not string:
        raise BlueprintError("empty blueprint string")
    if string[0] != STRING_VERSION:
        raise BlueprintError(f"bad version byte {string[0]!r}: a blueprint string starts with '{STRING_VERSION}'")
    try:
        compressed = base64.b64decode(string[1:], validate=True)
    except (binascii.Error, ValueError) as error:
        raise BlueprintError(f"bad base64 after the version byte: {error}") from None
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as error:
        raise BlueprintError(f"bad zlib data inside the base64: {error}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BlueprintError(f"bad JSON inside the zlib data: {error}") from None
    if not isinstance(data, dict):
        raise BlueprintError(f"bad JSON inside the zlib data: expected an object, found {type(data).__name__}")
    return data


def decode_blueprint(
    string: str,
    width: int | None = None,
    height: int | None = None,
    origin: tuple[int, int] | None = None,
    catalog: Catalog | None = None,
) -> World:
    """Read a blueprint string into a World; see `blueprint_to_world`."""
    return blueprint_to_world(blueprint_json(string), width, height, origin, catalog)


def blueprint_to_world(
    data: dict[str, Any],
    width: int | None = None,
    height: int | None = None,
    origin: tuple[int, int] | None = None,
    catalog: Catalog | None = None,
) -> World:
    """Build a World from a blueprint JSON object (`{"blueprint": {...}}`).

    `origin` is the blueprint tile that becomes world tile (0, 0); by default the
    top-left corner of the entities' bounding box. `width`/`height` default to what
    the entities need from the origin. Raises BlueprintError for a blueprint book or
    another planner, for entities Factorion does not model (naming all of them, with
    counts), for entities outside the given size, and for overlapping entities.
    Entity settings other than direction, underground type and recipe are ignored."""
    catalog = catalog or load_catalog()
    blueprint = _the_blueprint(data)
    raw_entities = blueprint.get("entities", [])
    if not isinstance(raw_entities, list) or not all(isinstance(e, dict) for e in raw_entities):
        raise BlueprintError("blueprint 'entities' is not a list of objects")

    unknown = Counter(str(e.get("name")) for e in raw_entities if e.get("name") not in GAME_NAMES)
    if unknown:
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(unknown.items()))
        raise BlueprintError(f"blueprint has entities Factorion does not model: {listed}")

    legacy = _is_pre_2_0(blueprint.get("version"))
    entities: list[GameEntity] = []
    for raw in raw_entities:
        if legacy and "direction" in raw:
            raw = {**raw, "direction": _from_8_way(raw)}
        try:
            entities.append(from_game_entity(raw))
        except ValueError as error:
            raise BlueprintError(f"entity {raw.get('entity_number', '?')}: {error}") from None

    boxes = [(e.x, e.y, *footprint(e.kind, e.facing)) for e in entities]
    if origin is None:
        origin = (min((b[0] for b in boxes), default=0), min((b[1] for b in boxes), default=0))
    ox, oy = origin
    if width is None:
        width = max((x + w for x, _, w, _ in boxes), default=ox) - ox
    if height is None:
        height = max((y + h for _, y, _, h in boxes), default=oy) - oy
    if width < 1 or height < 1:
        raise BlueprintError("the blueprint has no entities to size a world by: give a width and height")
    try:
        world = World.empty(width, height)
    except ValueError as error:
        raise BlueprintError(f"the blueprint does not fit a world: {error}") from None

    for e in entities:
        item = 0
        if e.recipe_name is not None:
            try:
                item = catalog.recipe_id(e.recipe_name)
            except UnknownNameError as error:
                raise BlueprintError(f"{GAME_NAME[e.kind]} at ({e.x}, {e.y}): {error}") from None
        try:
            world.place(e.kind, e.x - ox, e.y - oy, e.facing, item, e.underground_end)
        except PlacementError as error:
            where = f"{GAME_NAME[e.kind]} at blueprint tile ({e.x}, {e.y})"
            raise BlueprintError(f"{where}: {error} ({width}x{height} world, origin {origin})") from None
    return world


def _the_blueprint(data: dict[str, Any]) -> dict[str, Any]:
    if "blueprint_book" in data:
        raise BlueprintError("this is a blueprint book: open it and export the one blueprint to plan with")
    blueprint = data.get("blueprint")
    if not isinstance(blueprint, dict):
        found = ", ".join(repr(k) for k in data) or "nothing"
        raise BlueprintError(f"not a blueprint: expected a 'blueprint' object, found {found}")
    return blueprint


def _is_pre_2_0(version: object) -> bool:
    """Whether `version` is a 1.x game's (8-way directions). No version: take it as 2.0."""
    if version is None:
        return False
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise BlueprintError(f"blueprint version {version!r} is not a 64-bit version number")
    return decode_version(version)[0] < 2


def _from_8_way(raw: dict[str, Any]) -> object:
    direction = raw["direction"]
    if isinstance(direction, int) and not isinstance(direction, bool):
        return direction * 2  # 1.x: 0, 2, 4, 6 -> 2.0: 0, 4, 8, 12
    return direction
