"""The agent's action mask: legal placements that can connect to something.

The validator (`shared_schema.placement`) only asks whether an entity fits. Many legal
placements can never pass items whatever is built later, because of what already stands
next to them (docs/MIMIC.md's table of what a tile accepts from where):
- a belt pointing into a tile that refuses it: head-on into a belt, a sink or an
  underground entrance, into the hood or the front of an underground exit, into the
  side or the front of a splitter; or into a blocked tile or off the grid, where it can
  only end (it may still end anywhere else: it could turn there instead);
- a splitter doing the same with either half, or fed from its side or front by a
  neighbour pointing into it;
- an underground belt (either end: the end is chosen after the mask) fed head-on;
- an inserter whose pickup tile is off the grid, blocked, an inserter or a sink, or whose
  drop tile is off the grid, blocked, an inserter or a source (long-handed: two tiles away).

Each rule is about a pair of neighbours, one already built, so a layout reached one
placement at a time never holds a pair the rules refuse, whatever the order. A belt
may still point into a source: the expert's machine layouts end a belt there for a
long-handed inserter to pick from. No reference solution uses a dead placement (tested).

`dead_placements(worlds)` gives them in the layout of the env's action mask, and
`action_masks(worlds)` is the mask every policy rollout uses (the environments,
pre-training, evaluation, the server's planner): `core.anchor_masks` (legality) minus
these. A policy trained without this rule gains from it too: it only removes choices.

"Done" may have a rule of its own, an experiment off by default (`done_masks`; the
envs' `done_rule`, `training.evaluate.rollout(done_rule=True)`): "done" is legal unless a
sink is left short while some placement is still legal. A sink is short when it
receives nothing, or when sources that could push onto a belt (their front tile is on
the grid and not blocked) carry its item and it receives less than half its share of
them (a belt's worth per such source, shared evenly by the sinks taking that item, at
most a belt: half, so that a three-way split's uneven 7.5 / 3.75 / 3.75 still counts; a
source facing a wall is emptied by inserters only, so its sinks need only receive
something). Only the world and the mimic's sink rates decide it. Greedy rollouts of the
shipped policy go on where they would have stopped short and sometimes connect the
sink, but every rollout that cannot runs on to the step limit (README: what it gains
and costs). `rollout_masks(worlds, done_rule)` gives both masks, the mimic run for the
second: what every policy rollout outside the envs uses.
"""

from __future__ import annotations

import numba
import numpy as np

from shared_schema.directions import DX, DY
from shared_schema.entities import BELT_RATE, Entity, UndergroundEnd
from shared_schema.world import Channel
from training.env.core import FACINGS, PLACEABLE, anchor_masks
from training.sim import sink_rates_batch

# plain ints: numba compares arrays with ints, not IntEnums
_ENTITY, _FACING, _END = int(Channel.ENTITY), int(Channel.FACING), int(Channel.UNDERGROUND)
_ITEM = int(Channel.ITEM)
_BELT_E, _UNDERGROUND_E, _SPLITTER_E = int(Entity.BELT), int(Entity.UNDERGROUND), int(Entity.SPLITTER)
_INSERTER_E, _LONG_INSERTER_E = int(Entity.INSERTER), int(Entity.LONG_INSERTER)
_SOURCE, _SINK, _BLOCKED, _EXIT = int(Entity.SOURCE), int(Entity.SINK), int(Entity.BLOCKED), int(UndergroundEnd.EXIT)
_BELT, _UNDERGROUND, _SPLITTER = (PLACEABLE.index(k) for k in (Entity.BELT, Entity.UNDERGROUND, Entity.SPLITTER))
_INSERTER, _LONG_INSERTER = PLACEABLE.index(Entity.INSERTER), PLACEABLE.index(Entity.LONG_INSERTER)
_DY, _DX = np.array(DY, np.int64), np.array(DX, np.int64)  # the shared table, as arrays for the kernel


def action_masks(worlds: np.ndarray) -> np.ndarray:
    """int8[B, len(PLACEABLE), 4, H * W]: the legal anchors of int16[B, 6, H, W] worlds
    (`core.anchor_masks`) less the dead placements."""
    masks = anchor_masks(worlds)
    _find_dead(np.ascontiguousarray(worlds), masks, True)
    return masks


def done_masks(worlds: np.ndarray, masks: np.ndarray, rates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """int8[B]: 1 where "done" is legal in int16[B, 6, H, W] worlds, given their action
    masks (`action_masks`) and the mimic's sink rates (`sink_rates_batch`: float64[B,
    MAX_SINKS] row-major, and the sink counts): unless a sink is short and some placement
    is still legal (see the module docstring)."""
    out = np.ones(len(worlds), np.int8)
    placeable = np.asarray(masks.any(axis=(1, 2, 3)))
    _mark_short(np.ascontiguousarray(worlds), rates, counts, placeable, out)
    return out


def rollout_masks(worlds: np.ndarray, done_rule: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The action masks int8[B, len(PLACEABLE), 4, H * W] and "done" masks int8[B] of
    int16[B, 6, H, W] worlds a rollout reached (a checked task, then placements the
    validator allowed), the mimic run on them for the latter; None for those without
    the `done_rule` ("done" always legal)."""
    masks = action_masks(worlds)
    if not done_rule:
        return masks, None
    rates, counts = sink_rates_batch(worlds, trusted=True)  # checking them again costs more than the mimic
    return masks, done_masks(worlds, masks, rates, counts)


SHORT_OF_SHARE = 0.5  # a sink fed from sources is short below this fraction of its share


@numba.njit(cache=True, nogil=True)
def _mark_short(
    worlds: np.ndarray, rates: np.ndarray, counts: np.ndarray, placeable: np.ndarray, out: np.ndarray
) -> None:
    """out[b] = 0 where world b can still place something and has a short sink."""
    n, _, h, w = worlds.shape
    for b in range(n):
        if not placeable[b]:
            continue
        k = 0  # the mimic's sink index: sinks in row-major order
        for y in range(h):
            for x in range(w):
                if worlds[b, _ENTITY, y, x] != _SINK or k >= counts[b]:
                    continue
                rate = rates[b, k]
                k += 1
                if rate <= 1e-9:
                    out[b] = 0
                    continue
                item, sources, sinks = worlds[b, _ITEM, y, x], 0, 0
                for yy in range(h):
                    for xx in range(w):
                        if worlds[b, _ITEM, yy, xx] != item:
                            continue
                        entity = worlds[b, _ENTITY, yy, xx]
                        sinks += entity == _SINK
                        if entity == _SOURCE:  # one that can push onto a belt: its front tile is open
                            d = worlds[b, _FACING, yy, xx]
                            fy, fx = yy + _DY[d], xx + _DX[d]
                            sources += 0 <= fy < h and 0 <= fx < w and worlds[b, _ENTITY, fy, fx] != _BLOCKED
                if sources and rate < SHORT_OF_SHARE * min(BELT_RATE, BELT_RATE * sources / sinks):
                    out[b] = 0


def dead_placements(worlds: np.ndarray) -> np.ndarray:
    """bool[B, len(PLACEABLE), 4, H * W] (kind, facing, anchor, as the env's action mask):
    placements into int16[B, 6, H, W] worlds that can never connect (see the module docstring)."""
    b, _, h, w = worlds.shape
    dead = np.zeros((b, len(PLACEABLE), FACINGS, h * w), np.int8)
    _find_dead(np.ascontiguousarray(worlds), dead, False)
    return dead.view(np.bool_)


def _refusal_table() -> np.ndarray:
    """bool[entity, underground end, arrival]: whether a tile refuses items pushed into it
    by a neighbour facing d, by arrival (d - the tile's facing) % 4: from behind (0), from
    the front (2), or from a side (1, 3)."""
    table = np.zeros((len(Entity), len(UndergroundEnd), 4), np.bool_)
    table[[_BELT_E, _SINK, _UNDERGROUND_E], :, 2] = True  # head-on
    table[_UNDERGROUND_E, _EXIT, 0] = True  # an exit's hood
    table[_SPLITTER_E, :, 1:] = True  # a splitter takes only from behind
    return table


_REFUSES = _refusal_table()
_POINTS = np.zeros((len(Entity), len(UndergroundEnd)), np.bool_)  # pushes items onto the tile ahead
_POINTS[[_BELT_E, _SPLITTER_E, _SOURCE], :] = True
_POINTS[_UNDERGROUND_E, _EXIT] = True
_NO_PICKUP = np.isin(np.arange(len(Entity)), (_BLOCKED, _INSERTER_E, _LONG_INSERTER_E, _SINK))
_NO_DROP = np.isin(np.arange(len(Entity)), (_BLOCKED, _INSERTER_E, _LONG_INSERTER_E, _SOURCE))


@numba.njit(cache=True, nogil=True)
def _find_dead(worlds: np.ndarray, out: np.ndarray, clear: bool) -> None:
    """For every kind but the assembler (never dead): out[b, kind, facing, anchor] (int8)
    becomes 1 if that placement is dead, else 0; or, when `clear`, becomes 0 where it is dead."""
    n, _, h, w = worlds.shape
    # per tile, on arrays with a border of 2 (a long-handed inserter's reach) around the grid,
    # as bit sets over facings d: `refused`, pushing with d into the tile is refused (the edge
    # refuses nothing); `fed`, a neighbour pushes into the tile with d; `splitter`, a splitter
    # tile facing d there would push into a refusal or be fed from its side or front. And
    # whether an inserter could pick up or drop there (never off the grid).
    refused = np.zeros((h + 4, w + 4), np.int64)
    pushes = np.full((h + 4, w + 4), -1, np.int64)
    fed = np.zeros((h + 4, w + 4), np.int64)
    splitter = np.zeros((h + 4, w + 4), np.int64)
    wall = np.ones((h + 4, w + 4), np.bool_)  # blocked or off the grid
    no_pickup = np.ones((h + 4, w + 4), np.bool_)
    no_drop = np.ones((h + 4, w + 4), np.bool_)
    for b in range(n):
        world = worlds[b]
        for y in range(h):
            for x in range(w):
                entity, end, facing = world[_ENTITY, y, x], world[_END, y, x], world[_FACING, y, x]
                bits = 0
                for d in range(4):
                    bits |= _REFUSES[entity, end, (d - facing) & 3] << d
                refused[y + 2, x + 2] = bits
                pushes[y + 2, x + 2] = facing if _POINTS[entity, end] else -1
                wall[y + 2, x + 2] = entity == _BLOCKED
                no_pickup[y + 2, x + 2] = _NO_PICKUP[entity]
                no_drop[y + 2, x + 2] = _NO_DROP[entity]
        for y in range(2, h + 2):
            for x in range(2, w + 2):
                bits = 0
                for e in range(4):  # the neighbour behind the tile as e goes, pushing with e
                    bits |= (pushes[y - _DY[e], x - _DX[e]] == e) << e
                fed[y, x] = bits
                split = 0
                for d in range(4):
                    ahead_refuses = (refused[y + _DY[d], x + _DX[d]] >> d) & 1
                    split |= (ahead_refuses | ((bits & ~(1 << d)) != 0)) << d
                splitter[y, x] = split
        for d in range(4):
            dy, dx = _DY[d], _DX[d]
            y2, x2 = d % 2, 1 - d % 2  # a splitter's second tile: east of its anchor (facing north or south), or south
            for y in range(2, h + 2):
                row = (y - 2) * w - 2
                for x in range(2, w + 2):
                    tile = row + x
                    into_wall = wall[y + dy, x + dx]
                    _put(out, b, _BELT, d, tile, ((refused[y + dy, x + dx] >> d) & 1) | into_wall, clear)
                    _put(out, b, _UNDERGROUND, d, tile, (fed[y, x] >> ((d + 2) % 4)) & 1, clear)  # fed head-on
                    _put(out, b, _SPLITTER, d, tile, ((splitter[y, x] | splitter[y + y2, x + x2]) >> d) & 1, clear)
                    pickup, drop = no_pickup[y - dy, x - dx], no_drop[y + dy, x + dx]
                    _put(out, b, _INSERTER, d, tile, pickup | drop, clear)
                    pickup, drop = no_pickup[y - 2 * dy, x - 2 * dx], no_drop[y + 2 * dy, x + 2 * dx]
                    _put(out, b, _LONG_INSERTER, d, tile, pickup | drop, clear)


@numba.njit(cache=True, nogil=True, inline="always")
def _put(out: np.ndarray, b: int, kind: int, d: int, tile: int, dead: int, clear: bool) -> None:
    if clear:
        out[b, kind, d, tile] &= 1 - dead
    else:
        out[b, kind, d, tile] = dead
