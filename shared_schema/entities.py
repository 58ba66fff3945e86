"""Entity kinds the world tensor holds, their footprints, letters and rates.

Figures are Factorio 2.0's base game, no research, normal quality (MECHANICS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Entity(IntEnum):
    """What stands on a tile. The value is what the world tensor's entity channel holds."""

    EMPTY = 0
    BELT = 1
    UNDERGROUND = 2
    SPLITTER = 3
    INSERTER = 4
    LONG_INSERTER = 5
    ASSEMBLER = 6
    SOURCE = 7
    SINK = 8
    BLOCKED = 9


class UndergroundEnd(IntEnum):
    """Which end of an underground belt a tile is (the game's `type`: input/output)."""

    NONE = 0
    ENTRANCE = 1
    EXIT = 2


@dataclass(frozen=True)
class EntitySpec:
    kind: Entity
    game_name: str | None  # None for markers and blocked tiles, which the game never gets
    letter: str  # first character of the tile in the text grid
    width: int  # footprint when facing north; splitters swap width/height when turned
    height: int
    placeable: bool  # whether the agent (not the player) may place it


BELT_LANE_RATE = 7.5  # items/s per lane of a transport belt
BELT_RATE = 2 * BELT_LANE_RATE
INSERTER_RATE = 0.86  # items/s, basic inserter, chest to chest
LONG_INSERTER_RATE = 1.2  # items/s, long-handed inserter
ASSEMBLER_SPEED = 0.5  # assembling-machine-1 crafting speed
UNDERGROUND_MAX_DISTANCE = 5  # an exit is 1 to 5 tiles ahead of its entrance

SPECS: dict[Entity, EntitySpec] = {
    spec.kind: spec
    for spec in (
        EntitySpec(Entity.EMPTY, None, ".", 1, 1, False),
        EntitySpec(Entity.BELT, "transport-belt", "b", 1, 1, True),
        EntitySpec(Entity.UNDERGROUND, "underground-belt", "d", 1, 1, True),  # 'u' for exits
        EntitySpec(Entity.SPLITTER, "splitter", "Y", 2, 1, True),
        EntitySpec(Entity.INSERTER, "inserter", "i", 1, 1, True),
        EntitySpec(Entity.LONG_INSERTER, "long-handed-inserter", "l", 1, 1, True),
        EntitySpec(Entity.ASSEMBLER, "assembling-machine-1", "a", 3, 3, True),
        EntitySpec(Entity.SOURCE, None, "S", 1, 1, False),
        EntitySpec(Entity.SINK, None, "K", 1, 1, False),
        EntitySpec(Entity.BLOCKED, None, "#", 1, 1, False),
    )
}

GAME_NAMES: dict[str, Entity] = {s.game_name: s.kind for s in SPECS.values() if s.game_name}

# Kinds that carry items along lanes (they have a left and a right lane).
BELT_LIKE = frozenset({Entity.BELT, Entity.UNDERGROUND, Entity.SPLITTER, Entity.SOURCE, Entity.SINK})


def footprint(kind: Entity, facing: int) -> tuple[int, int]:
    """(width, height) in tiles of `kind` placed with `facing` (0 north .. 3 west)."""
    spec = SPECS[kind]
    if kind == Entity.SPLITTER and facing % 2 == 1:
        return spec.height, spec.width
    return spec.width, spec.height
