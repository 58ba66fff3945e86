"""Which placed entities are on a source-to-sink path, from the mimic's steady state.

An entity the agent may place is on a path when something flows through it once the
factory has settled: a lane of one of its tiles takes items in (belts, undergrounds,
splitters), it moves items (inserters), or it crafts (assemblers). Back-pressure
already zeroes dead ends and clogged lanes in the mimic, so flow is the whole test.
The kernel reads the flows `simulate` reports straight from the solver (the tests
hold the two views equal), so the environment can afford it at every episode's end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shared_schema.world import World
from training.sim.engine import _run, _tables, check_worlds
from training.sim.graph import ASSEMBLER, BELT, CH_ENTITY, CH_FACING, CH_PART, SPLITTER

FLOW_EPSILON = 1e-9  # below this a rate is solver residue, not flow


@njit(cache=True, nogil=True)
def _on_path(world, n_items, r_time, ing_item, ing_amount, prod_item, prod_amount, mask):  # type: ignore[no-untyped-def]
    """Mark mask (bool[H, W], zeroed by the caller) with the tiles of placeable entities
    that carry flow; returns (entities on a path, placeable entities)."""
    inflow, ins_take, m_craft, _, _, _, ins_tile, m_anchor, _ = _run(
        world, n_items, r_time, ing_item, ing_amount, prod_item, prod_amount
    )
    H, W = world.shape[1], world.shape[2]
    flowing = np.zeros(H * W, np.bool_)
    for t in range(H * W):
        flowing[t] = inflow[2 * t].sum() + inflow[2 * t + 1].sum() > FLOW_EPSILON
    for i in range(ins_tile.shape[0]):
        flowing[ins_tile[i]] |= ins_take[i].sum() > FLOW_EPSILON
    for m in range(m_anchor.shape[0]):
        flowing[m_anchor[m]] |= m_craft[m] > FLOW_EPSILON  # the anchor stands for the whole machine
    on = 0
    total = 0
    for y in range(H):
        for x in range(W):
            kind = world[CH_ENTITY, y, x]
            if kind < BELT or kind > ASSEMBLER or world[CH_PART, y, x] != 0:
                continue  # not placeable by the agent, or not the entity's anchor
            w, h = 1, 1
            if kind == ASSEMBLER:
                w, h = 3, 3
            elif kind == SPLITTER:
                w, h = (2, 1) if world[CH_FACING, y, x] % 2 == 0 else (1, 2)
            carries = False
            for dy in range(h):
                for dx in range(w):
                    carries |= flowing[(y + dy) * W + x + dx]
            total += 1
            if carries:
                on += 1
                mask[y : y + h, x : x + w] = True
    return on, total


@njit(cache=True, nogil=True)
def _fractions(worlds, n_items, r_time, ing_item, ing_amount, prod_item, prod_amount, out):  # type: ignore[no-untyped-def]
    mask = np.zeros(worlds.shape[2:], np.bool_)
    for b in range(worlds.shape[0]):
        on, total = _on_path(worlds[b], n_items, r_time, ing_item, ing_amount, prod_item, prod_amount, mask)
        out[b] = on / total if total else 1.0


def on_path(world: World) -> np.ndarray:
    """bool[H, W]: every tile of each agent-placeable entity that carries flow (markers,
    blocked tiles and idle entities are False)."""
    check_worlds(world.data[None])
    mask = np.zeros((world.height, world.width), bool)
    n_items, t = _tables()
    _on_path(
        world.data, n_items, t.time, t.ingredient_item, t.ingredient_amount, t.product_item, t.product_amount, mask
    )
    return mask


def on_path_fractions(worlds: np.ndarray) -> np.ndarray:
    """float64[B]: for int16[B, 6, H, W] worlds, placeable entities on a path over
    placeable entities (entities, not tiles); 1.0 where there are none, nothing wasted."""
    check_worlds(worlds)
    out = np.empty(worlds.shape[0])
    n_items, t = _tables()
    tables = (t.time, t.ingredient_item, t.ingredient_amount, t.product_item, t.product_amount)
    _fractions(np.ascontiguousarray(worlds, np.int16), n_items, *tables, out)
    return out


def on_path_fraction(world: World) -> float:
    """`on_path_fractions` of one world."""
    return float(on_path_fractions(world.data[None])[0])
