"""The agent's action mask: legal placements that can connect to something.

The validator (`shared_schema.placement`) only asks whether an entity fits. Many legal
placements can never pass items whatever is built later, because of what already stands
next to them (docs/MIMIC.md's table of what a tile accepts from where):
- a belt pointing into a tile that refuses it: head-on into a belt, a sink or an
  underground entrance, into the hood or the front of an underground exit, into the
  side or the front of a splitter;
- a splitter doing the same with either half, or fed from its side or front by a
  neighbour pointing into it;
- an underground belt (either end: the end is chosen after the mask) fed head-on;
- an inserter whose pickup tile is off the grid, blocked, an inserter or a sink, or whose
  drop tile is off the grid, blocked, an inserter or a source (long-handed: two tiles away).

Each rule is about a pair of neighbours, one already built, so a layout reached one
placement at a time never holds a pair the rules refuse, whatever the order. Pointing
into a source or off the grid stays allowed: a belt may end anywhere (an inserter can
pick from its last tile), and the experts' solutions do that.

`dead_placements(worlds)` gives them in the layout of the env's action mask, and
`action_masks(worlds)` is the mask every policy rollout uses (the environments,
pre-training, evaluation, the server's planner): `core.anchor_masks` (legality) minus
these. A policy trained without this rule gains from it too: it only removes choices.
"""

from __future__ import annotations

import numpy as np

from shared_schema.directions import DX, DY
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel
from training.env.core import FACINGS, PLACEABLE, anchor_masks

_BELT, _UNDERGROUND, _SPLITTER = (PLACEABLE.index(k) for k in (Entity.BELT, Entity.UNDERGROUND, Entity.SPLITTER))
_INSERTER_REACH = ((PLACEABLE.index(Entity.INSERTER), 1), (PLACEABLE.index(Entity.LONG_INSERTER), 2))


def action_masks(worlds: np.ndarray) -> np.ndarray:
    """int8[B, len(PLACEABLE), 4, H * W]: the legal anchors of int16[B, 6, H, W] worlds
    (`core.anchor_masks`) less the dead placements."""
    masks = anchor_masks(worlds)
    masks[dead_placements(worlds)] = 0
    return masks


def _ahead(a: np.ndarray, dx: int, dy: int, fill: bool) -> np.ndarray:
    """out[..., y, x] = a[..., y + dy, x + dx]; `fill` where that is off the grid."""
    h, w = a.shape[-2:]
    out = np.full_like(a, fill)
    out[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = a[
        ..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def dead_placements(worlds: np.ndarray) -> np.ndarray:
    """bool[B, len(PLACEABLE), 4, H * W] (kind, facing, anchor, as the env's action mask): placements
    into int16[B, 6, H, W] worlds that can never connect (see the module docstring)."""
    b, _, h, w = worlds.shape
    entity, facing = worlds[:, Channel.ENTITY], worlds[:, Channel.FACING]
    underground = entity == Entity.UNDERGROUND
    exit_ = underground & (worlds[:, Channel.UNDERGROUND] == UndergroundEnd.EXIT)
    entrance = underground & ~exit_
    points = (entity == Entity.BELT) | (entity == Entity.SPLITTER) | (entity == Entity.SOURCE) | exit_
    # a feeder facing `d` arrives at each tile from its back (0), right (1), front (2) or left (3)
    head_on_refused = (entity == Entity.BELT) | (entity == Entity.SINK) | entrance
    # feeding_in[e]: a neighbour facing e points into the tile
    feeding_in = [_ahead(points & (facing == e), -DX[e], -DY[e], False) for e in range(4)]
    no_pickup = np.isin(entity, (Entity.BLOCKED, Entity.INSERTER, Entity.LONG_INSERTER, Entity.SINK))
    no_drop = np.isin(entity, (Entity.BLOCKED, Entity.INSERTER, Entity.LONG_INSERTER, Entity.SOURCE))
    dead = np.zeros((b, len(PLACEABLE), FACINGS, h, w), bool)
    for d in range(FACINGS):
        arrival = (d - facing) % 4
        refuses = (head_on_refused & (arrival == 2)) | (exit_ & (arrival % 2 == 0))
        refuses |= (entity == Entity.SPLITTER) & (arrival != 0)
        into_refusal = _ahead(refuses, DX[d], DY[d], False)
        dead[:, _BELT, d] = into_refusal
        # a splitter takes only from behind; its second tile is east (facing north/south) or south
        fed_wrongly = np.logical_or.reduce([feeding_in[e] for e in range(4) if e != d])
        half = into_refusal | fed_wrongly
        dead[:, _SPLITTER, d] = half | (_ahead(half, 1, 0, False) if d % 2 == 0 else _ahead(half, 0, 1, False))
        dead[:, _UNDERGROUND, d] = feeding_in[(d + 2) % 4]
        for kind, reach in _INSERTER_REACH:
            pickup = _ahead(no_pickup, -reach * DX[d], -reach * DY[d], True)
            drop = _ahead(no_drop, reach * DX[d], reach * DY[d], True)
            dead[:, kind, d] = pickup | drop
    return dead.reshape(b, len(PLACEABLE), FACINGS, h * w)
