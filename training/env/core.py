"""What the single and the vector environment share: the factored action, the spaces,
the score, and the vectorised legality that must agree with `shared_schema.placement`.

An action is int64[5]: (tile, kind, facing, recipe, end).
- tile: y * W + x of the anchor (top-left tile); the value H * W is "done".
- kind: index into `PLACEABLE`.
- facing: a `Direction` value (0 north .. 3 west); ignored for assemblers.
- recipe: catalog recipe id, read only for assemblers (0 there is NEEDS_RECIPE).
- end: index into `ENDS` (0 entrance, 1 exit), read only for undergrounds.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from gymnasium import spaces

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd, footprint
from shared_schema.placement import Action, Illegal
from shared_schema.world import CHANNELS, Channel

PLACEABLE = (Entity.BELT, Entity.UNDERGROUND, Entity.SPLITTER, Entity.INSERTER, Entity.LONG_INSERTER, Entity.ASSEMBLER)
FACINGS = len(Direction)
ENDS = (UndergroundEnd.ENTRANCE, UndergroundEnd.EXIT)
REASONS = tuple(Illegal)  # reason codes: index in this tuple; -1 is legal

_KIND = np.array(PLACEABLE, np.int16)
_END = np.array(ENDS, np.int16)
_SPLITTER = PLACEABLE.index(Entity.SPLITTER)
_ASSEMBLER = PLACEABLE.index(Entity.ASSEMBLER)
_UNDERGROUND = PLACEABLE.index(Entity.UNDERGROUND)
_CODE = {reason: i for i, reason in enumerate(REASONS)}
# which of `anchor_masks`' four footprint maps (1x1, 2 wide, 2 tall, 3x3) each kind and facing uses
_MAPS = ((1, 1), (2, 1), (1, 2), (3, 3))
_MAP_OF = np.array([[_MAPS.index(footprint(kind, facing)) for facing in range(4)] for kind in PLACEABLE])


@cache
def n_recipes() -> int:
    """Recipe ids the action may name: 0 (none) .. n_recipes() - 1."""
    return len(load_catalog().recipes)


def observation_space(size: int) -> spaces.Dict:
    """world: the world tensor int16[6, H, W]; action_mask: int8[len(PLACEABLE), 4, H * W],
    1 where that kind with that facing may be anchored on that tile; done_mask: int8 (a
    scalar), 1 where "done" is legal (`training.env.masks.done_masks`)."""
    catalog = load_catalog()
    high = np.zeros((CHANNELS, 1, 1), np.int16)
    high[Channel.ENTITY] = max(Entity)
    high[Channel.FACING] = FACINGS - 1
    high[Channel.ITEM] = max(len(catalog.items), len(catalog.recipes)) - 1
    high[Channel.UNDERGROUND] = max(UndergroundEnd)
    high[Channel.BUILDABLE] = 1
    high[Channel.PART] = 8  # a 3x3 assembler's last tile
    world = spaces.Box(0, np.broadcast_to(high, (CHANNELS, size, size)), dtype=np.int16)
    mask = spaces.Box(0, 1, (len(PLACEABLE), FACINGS, size * size), dtype=np.int8)
    done = spaces.Box(0, 1, (), dtype=np.int8)
    return spaces.Dict({"world": world, "action_mask": mask, "done_mask": done})


def action_space(size: int) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete([size * size + 1, len(PLACEABLE), FACINGS, n_recipes(), len(ENDS)])


def to_action(action: np.ndarray, size: int) -> Action | None:
    """The validator's `Action` for one factored action, or None for "done"."""
    tile, kind, facing, recipe, end = (int(v) for v in action)
    if tile == size * size:
        return None
    entity = PLACEABLE[kind]
    return Action(
        entity,
        tile % size,
        tile // size,
        Direction.NORTH if entity == Entity.ASSEMBLER else Direction(facing),
        recipe if entity == Entity.ASSEMBLER else 0,
        ENDS[end] if entity == Entity.UNDERGROUND else UndergroundEnd.NONE,
    )


def scores(rates: np.ndarray, best: np.ndarray, n_sinks: np.ndarray) -> np.ndarray:
    """`power_mean_score` of many worlds at once. rates, best: float64[B, MAX_SINKS] (best
    padded with 1 beyond a lesson's sinks, where rates are 0); n_sinks: int[B]."""
    ratio = np.clip(rates / best, 0.0, 1.0)
    return (np.sqrt(ratio).sum(1) / n_sinks) ** 2


def anchor_masks(worlds: np.ndarray) -> np.ndarray:
    """int8[B, len(PLACEABLE), 4, H * W] legal anchors of int16[B, 6, H, W] worlds; the
    vectorised `placement.legal_anchors` (a test holds them equal)."""
    b, _, h, w = worlds.shape
    free = (worlds[:, Channel.ENTITY] == Entity.EMPTY) & (worlds[:, Channel.BUILDABLE] == 1)
    # the four distinct footprints: 1x1, 2 wide, 2 tall, 3x3
    maps = np.zeros((b, 4, h, w), np.int8)
    maps[:, 0] = free
    maps[:, 1, :, :-1] = free[:, :, :-1] & free[:, :, 1:]
    maps[:, 2, :-1] = free[:, :-1] & free[:, 1:]
    rows = free[:, :, :-2] & free[:, :, 1:-1] & free[:, :, 2:]
    maps[:, 3, :-2, :-2] = rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]
    return maps.reshape(b, 4, h * w)[:, _MAP_OF]


@cache
def _footprint_table(width: int) -> tuple[np.ndarray, ...]:
    """Per kind * 4 + facing: footprint width and height, and for the 9 cells of a 3x3
    box their flat offset from the anchor in a world `width` wide, whether the cell is
    part of the footprint, and its PART value."""
    n = len(PLACEABLE) * FACINGS
    fw, fh = np.zeros(n, np.int64), np.zeros(n, np.int64)
    offset, part = np.zeros((n, 9), np.int64), np.zeros((n, 9), np.int16)
    inside = np.zeros((n, 9), bool)
    for k, kind in enumerate(PLACEABLE):
        for facing in range(FACINGS):
            i = k * FACINGS + facing
            fw[i], fh[i] = footprint(kind, facing)
            for dy in range(3):
                for dx in range(3):
                    inside[i, 3 * dy + dx] = dx < fw[i] and dy < fh[i]
                    if inside[i, 3 * dy + dx]:
                        offset[i, 3 * dy + dx], part[i, 3 * dy + dx] = dy * width + dx, dy * fw[i] + dx
    return fw, fh, offset, inside, part


def reasons(worlds: np.ndarray, envs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Reason codes (index in REASONS, -1 legal) of placing actions[i] (none is "done")
    in worlds[envs[i]] (a C-contiguous int16[N, 6, H, W]): `placement.check`'s first
    failing reason, vectorised."""
    c, h, w = worlds.shape[1:]
    tile, kind, facing, recipe = actions[:, 0], actions[:, 1], actions[:, 2], actions[:, 3]
    fw, fh, offset, inside, _ = _footprint_table(w)
    kf = kind * FACINGS + facing
    off_grid = (tile % w + fw[kf] > w) | (tile // w + fh[kf] > h)
    # flat indices of the footprint's tiles in the entity channel; cells outside the
    # footprint (or off the grid) look at the anchor again, which changes no answer
    anchor = envs * (c * h * w) + tile
    cells = anchor[:, None] + np.where(inside[kf] & ~off_grid[:, None], offset[kf], 0)
    flat = worlds.reshape(-1)
    code = np.full(len(envs), -1, np.int64)
    # later checks first, so the earliest failing one is left standing (as in `check`)
    code[(flat[cells + Channel.BUILDABLE * h * w] != 1).any(1)] = _CODE[Illegal.NOT_BUILDABLE]
    code[(flat[cells] != Entity.EMPTY).any(1)] = _CODE[Illegal.OCCUPIED]
    code[off_grid] = _CODE[Illegal.OFF_GRID]
    code[(kind == _ASSEMBLER) & ((recipe <= 0) | (recipe >= n_recipes()))] = _CODE[Illegal.NEEDS_RECIPE]
    return code


def place(worlds: np.ndarray, envs: np.ndarray, actions: np.ndarray) -> None:
    """Place legal actions[i] into worlds[envs[i]] (C-contiguous) in place, as
    `World.place` would; BUILDABLE is already 1 under a legal placement."""
    if not worlds.flags.c_contiguous:
        raise ValueError("place writes through a flat view: worlds must be C-contiguous")
    c, h, w = worlds.shape[1:]
    tile, kind, facing, recipe, end = actions.T
    _, _, offset, inside, part = _footprint_table(w)
    kf = kind * FACINGS + facing
    cell = inside[kf]
    row = np.nonzero(cell)[0]  # which action each footprint tile belongs to
    tiles = (envs * (c * h * w) + tile)[:, None] + offset[kf]
    tiles = tiles[cell]
    machine = kind == _ASSEMBLER
    flat = worlds.reshape(-1)
    flat[tiles + Channel.ENTITY * h * w] = _KIND[kind][row]
    flat[tiles + Channel.FACING * h * w] = np.where(machine, 0, facing)[row]
    flat[tiles + Channel.ITEM * h * w] = np.where(machine, recipe, 0)[row]
    flat[tiles + Channel.UNDERGROUND * h * w] = np.where(kind == _UNDERGROUND, _END[end], 0)[row]
    flat[tiles + Channel.PART * h * w] = part[kf][cell]
