"""The one placement validator: what an agent may place where (env, planner, server).

An `Action` places one entity by its top-left anchor tile. `check` names why an action
is illegal (an `Illegal` reason, counted by the environment), `legal_anchors` gives the
same answer for every anchor at once as a mask, and `apply` places a legal action.
Legality is about the grid only (fits, on empty buildable tiles, the right extras);
whether the entity is useful there is the mimic's business, not the validator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import SPECS, Entity, UndergroundEnd, footprint
from shared_schema.world import Channel, World


class Illegal(Enum):
    """Why an action cannot be applied; the value is the text shown to people."""

    NOT_PLACEABLE = "the agent cannot place this kind (markers and blocked tiles are the player's)"
    OFF_GRID = "the entity does not fit on the grid there"
    OCCUPIED = "a tile it needs already holds an entity"
    NOT_BUILDABLE = "a tile it needs is not buildable"
    NEEDS_RECIPE = "an assembling machine needs a recipe it can craft"
    UNEXPECTED_RECIPE = "only assembling machines take a recipe"
    NEEDS_END = "an underground belt needs an end (entrance or exit)"
    UNEXPECTED_END = "only underground belts have an end"


@dataclass(frozen=True)
class Action:
    """Place `kind` with its top-left tile at (x, y). `recipe` is a catalog recipe id
    (assemblers only, else 0); `end` is the underground end (undergrounds only)."""

    kind: Entity
    x: int
    y: int
    facing: Direction = Direction.NORTH
    recipe: int = 0
    end: UndergroundEnd = UndergroundEnd.NONE


def _free_tiles(world: World) -> np.ndarray:
    """bool[H, W]: tiles an entity may go on (empty and buildable)."""
    data = world.data
    return (data[Channel.ENTITY] == Entity.EMPTY) & (data[Channel.BUILDABLE] == 1)


def check(world: World, action: Action) -> Illegal | None:
    """None if `action` is legal in `world`, else the first reason it is not."""
    kind = action.kind
    if kind not in SPECS or not SPECS[kind].placeable:
        return Illegal.NOT_PLACEABLE
    if kind == Entity.ASSEMBLER:
        recipes = load_catalog().recipes
        if not (0 < action.recipe < len(recipes)):
            return Illegal.NEEDS_RECIPE
    elif action.recipe:
        return Illegal.UNEXPECTED_RECIPE
    if kind == Entity.UNDERGROUND and action.end == UndergroundEnd.NONE:
        return Illegal.NEEDS_END
    if kind != Entity.UNDERGROUND and action.end != UndergroundEnd.NONE:
        return Illegal.UNEXPECTED_END
    w, h = footprint(kind, action.facing)
    x, y = action.x, action.y
    if x < 0 or y < 0 or x + w > world.width or y + h > world.height:
        return Illegal.OFF_GRID
    if world.data[Channel.ENTITY, y : y + h, x : x + w].any():
        return Illegal.OCCUPIED
    if not world.data[Channel.BUILDABLE, y : y + h, x : x + w].all():
        return Illegal.NOT_BUILDABLE
    return None


def legal_anchors(world: World, kind: Entity, facing: Direction = Direction.NORTH) -> np.ndarray:
    """bool[H, W]: where `kind` facing `facing` could be anchored (recipe and underground
    end assumed right). Agrees with `check` tile for tile."""
    mask = np.zeros((world.height, world.width), bool)
    if kind not in SPECS or not SPECS[kind].placeable:
        return mask
    w, h = footprint(kind, facing)
    if w > world.width or h > world.height:
        return mask
    free = _free_tiles(world).astype(np.int32)
    # a window is all free when its sum is w * h: summed-area table, then window sums
    table = np.zeros((world.height + 1, world.width + 1), np.int32)
    table[1:, 1:] = free.cumsum(0).cumsum(1)
    sums = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    mask[: world.height - h + 1, : world.width - w + 1] = sums == w * h
    return mask


class IllegalActionError(ValueError):
    """An action `check` refused; carries the reason."""

    def __init__(self, action: Action, reason: Illegal) -> None:
        self.action, self.reason = action, reason
        super().__init__(f"cannot place {action.kind.name.lower()} at ({action.x}, {action.y}): {reason.value}")


def apply(world: World, action: Action) -> None:
    """Place a legal action; raise IllegalActionError (world unchanged) otherwise."""
    reason = check(world, action)
    if reason is not None:
        raise IllegalActionError(action, reason)
    world.place(action.kind, action.x, action.y, action.facing, action.recipe, action.end)
