"""The world tensor: one small integer vector per tile, shared by env, planner and tests.

A world is `int16[CHANNELS, height, width]`:

- ENTITY: an `Entity` value; every tile of a multi-tile entity holds it.
- FACING: a `Direction` value (items move that way); 0 where it means nothing.
- ITEM: catalog item id for sources and sinks, catalog recipe id for assemblers.
- UNDERGROUND: an `UndergroundEnd` value on underground belt tiles.
- BUILDABLE: 1 where the agent may place an entity, 0 on blocked tiles and markers.
- PART: index of the tile inside its entity's footprint, row-major from the top-left
  anchor (0 for every 1x1 entity), so two adjacent splitters or assemblers never blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd, footprint


class Channel(IntEnum):
    ENTITY = 0
    FACING = 1
    ITEM = 2
    UNDERGROUND = 3
    BUILDABLE = 4
    PART = 5


CHANNELS = len(Channel)
WORLD_DTYPE = np.int16
MAX_GRID = 32


# PART of each tile of a w x h footprint: its index row-major from the top-left anchor
_ENTITY = int(Channel.ENTITY)  # enum member lookups are slow on hot paths
_PLAYER_PLACED = frozenset({Entity.SOURCE, Entity.SINK, Entity.BLOCKED})  # nothing may be built on them
_PARTS = {(w, h): np.arange(w * h).reshape(h, w) for w, h in ((1, 1), (2, 1), (1, 2), (3, 3))}


class PlacementError(ValueError):
    """An entity that does not fit where it was asked to go."""


@dataclass
class World:
    """A grid of tiles, backed by the world tensor `data` (see module docstring)."""

    data: np.ndarray

    @classmethod
    def empty(cls, width: int, height: int) -> World:
        if not (1 <= width <= MAX_GRID and 1 <= height <= MAX_GRID):
            raise ValueError(f"a world is 1 to {MAX_GRID} tiles a side, not {width}x{height}")
        data = np.zeros((CHANNELS, height, width), WORLD_DTYPE)
        data[Channel.BUILDABLE] = 1
        return cls(data)

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    def copy(self) -> World:
        return World(self.data.copy())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, World) and np.array_equal(self.data, other.data)

    def entity(self, x: int, y: int) -> Entity:
        return Entity(int(self.data[_ENTITY, y, x]))

    def is_empty(self, x: int, y: int) -> bool:
        """Whether (x, y) is on the grid and holds no entity."""
        _, h, w = self.data.shape
        return 0 <= x < w and 0 <= y < h and not self.data[_ENTITY, y, x]

    def facing(self, x: int, y: int) -> Direction:
        return Direction(int(self.data[Channel.FACING, y, x]))

    def anchor(self, x: int, y: int) -> tuple[int, int]:
        """Top-left tile of the entity covering (x, y)."""
        kind = self.entity(x, y)
        w, _ = footprint(kind, int(self.data[Channel.FACING, y, x]))
        part = int(self.data[Channel.PART, y, x])
        return x - part % w, y - part // w

    def place(
        self,
        kind: Entity,
        x: int,
        y: int,
        facing: Direction = Direction.NORTH,
        item: int = 0,
        underground: UndergroundEnd = UndergroundEnd.NONE,
    ) -> None:
        """Put `kind` with its top-left tile at (x, y). Raises PlacementError if it does
        not fit on the grid or a tile it needs is not empty."""
        w, h = footprint(kind, facing)
        if x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            raise PlacementError(f"{kind.name.lower()} at ({x}, {y}) does not fit on the grid")
        if (kind == Entity.UNDERGROUND) != (underground != UndergroundEnd.NONE):
            raise PlacementError("an underground belt needs an end (entrance or exit), and nothing else has one")
        data = self.data
        player_placed = kind in _PLAYER_PLACED
        if w == 1 and h == 1:  # most entities: one tile, written in one go
            if data[Channel.ENTITY, y, x]:
                raise PlacementError(f"{kind.name.lower()} at ({x}, {y}) overlaps another entity")
            buildable = 0 if player_placed else data[Channel.BUILDABLE, y, x]
            # in channel order: ENTITY, FACING, ITEM, UNDERGROUND, BUILDABLE, PART
            data[:, y, x] = (kind, 0 if kind == Entity.BLOCKED else facing, item, underground, buildable, 0)
            return
        if data[Channel.ENTITY, y : y + h, x : x + w].any():
            raise PlacementError(f"{kind.name.lower()} at ({x}, {y}) overlaps another entity")
        data[Channel.ENTITY, y : y + h, x : x + w] = kind
        data[Channel.FACING, y : y + h, x : x + w] = facing if kind not in (Entity.ASSEMBLER, Entity.BLOCKED) else 0
        data[Channel.ITEM, y : y + h, x : x + w] = item
        data[Channel.UNDERGROUND, y : y + h, x : x + w] = underground
        data[Channel.PART, y : y + h, x : x + w] = _PARTS[w, h]
        if player_placed:
            data[Channel.BUILDABLE, y : y + h, x : x + w] = 0

    def remove(self, x: int, y: int) -> None:
        """Clear the whole entity covering (x, y); markers and blocked tiles included."""
        kind = self.entity(x, y)
        if kind == Entity.EMPTY:
            return
        ax, ay = self.anchor(x, y)
        w, h = footprint(kind, int(self.data[Channel.FACING, y, x]))
        self.data[:, ay : ay + h, ax : ax + w] = 0
        self.data[Channel.BUILDABLE, ay : ay + h, ax : ax + w] = 1

    def entities(self) -> list[tuple[Entity, int, int]]:
        """(kind, x, y) of every entity by its anchor, row-major."""
        ent = self.data[Channel.ENTITY]
        ys, xs = np.nonzero((ent != Entity.EMPTY) & (self.data[Channel.PART] == 0))  # row-major order
        return [(Entity(int(ent[y, x])), int(x), int(y)) for y, x in zip(ys, xs, strict=True)]

    def rotated(self, turns: int = 1) -> World:
        """This world turned `turns` quarters clockwise (each takes a tile at (x, y) to
        (H-1-y, x))."""
        return _transform(self, turns % 4, mirror=False)

    def mirrored(self) -> World:
        """This world mirrored east-west (x goes to W-1-x; east and west facings swap)."""
        return _transform(self, 0, mirror=True)


def _transform(world: World, turns: int, mirror: bool) -> World:
    """The whole tensor mirrored east-west (if `mirror`) or turned `turns` quarters
    clockwise ((x, y) -> (H-1-y, x) each), with facings turned and each multi-tile
    entity's PART renumbered from its new top-left anchor."""
    old = world.data
    data = np.ascontiguousarray(old[:, :, ::-1] if mirror else np.rot90(old, k=-turns, axes=(1, 2)))
    ent, facing, part = data[Channel.ENTITY], data[Channel.FACING], data[Channel.PART]
    was_facing = facing.copy()
    moves = (ent != Entity.EMPTY) & (ent != Entity.ASSEMBLER) & (ent != Entity.BLOCKED)
    if mirror:
        sideways = moves & (facing % 2 == 1)  # east and west swap; north and south stay
        facing[sideways] = 4 - facing[sideways]
    else:
        facing[moves] = (facing[moves] + turns) % 4
    for kind in (Entity.SPLITTER, Entity.ASSEMBLER):
        tiles = ent == kind
        if not tiles.any():
            continue
        f = was_facing[tiles]
        w, h = (np.where(f % 2 == 0, 2, 1), np.where(f % 2 == 0, 1, 2)) if kind == Entity.SPLITTER else (3, 3)
        dx, dy = part[tiles] % w, part[tiles] // w
        if mirror:
            part[tiles] = (w - 1 - dx) + dy * w
            continue
        for _ in range(turns):  # a tile dx, dy into a w x h footprint sits at h-1-dy, dx in the turned h x w one
            dx, dy, w, h = h - 1 - dy, dx, h, w
        part[tiles] = dx + dy * w
    return World(data)
