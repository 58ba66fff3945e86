"""The mimic's public API: steady-state throughput of worlds, one or many at a time.

`simulate(world)` gives per-sink rates and the flows behind them (for `explain`);
`sink_rates_batch(worlds)` evaluates a stack of worlds in one compiled loop, the
path training uses. Rules: docs/MIMIC.md; kernels: `graph.py` and `solve.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from shared_schema.catalog import RecipeTables, load_catalog, recipe_tables
from shared_schema.entities import BELT_LANE_RATE, Entity
from shared_schema.world import CHANNELS, Channel, World
from training.sim.graph import SINK, build_graph_arrays
from training.sim.solve import solve
from training.threads import over_threads

MAX_SINKS = 16  # sink slots in the batched output; sinks beyond it are not reported


@njit(cache=True)
def _run(world, n_items, r_time, ing_item, ing_amount, prod_item, prod_amount):  # type: ignore[no-untyped-def]
    (ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, local_item,
     ins_pick_kind, ins_pick, ins_drop_kind, ins_drop, ins_rate, ins_tile, m_anchor, m_recipe,
     machine_of, order, acyclic) = build_graph_arrays(world, n_items, ing_item, prod_item)  # fmt: skip
    N = ent.shape[0]
    K = local_item.shape[0]
    inflow = np.zeros((2 * N, K), np.float64)
    ins_take = np.zeros((ins_rate.shape[0], K), np.float64)
    m_craft = np.zeros(m_anchor.shape[0], np.float64)
    clogged = np.zeros(2 * N, np.bool_)
    iterations = solve(
        ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, local_item,
        ins_pick_kind, ins_pick, ins_drop_kind, ins_drop, ins_rate, m_anchor, m_recipe, machine_of, order, acyclic,
        r_time, ing_item, ing_amount, prod_item, prod_amount, inflow, ins_take, m_craft, clogged,
    )  # fmt: skip
    return inflow, ins_take, m_craft, clogged, local_item, tile_item, ins_tile, m_anchor, iterations


@njit(cache=True)
def _sink_rates(world, inflow, tile_item, out):  # type: ignore[no-untyped-def]
    """Rates of each sink's own item, sinks in row-major order, into out[:n]; returns n."""
    W = world.shape[2]
    n = 0
    for t in range(world.shape[1] * W):
        if world[0, t // W, t % W] == SINK:
            k = tile_item[t]
            rate = 0.0
            if k >= 0:
                rate = inflow[2 * t, k] + inflow[2 * t + 1, k]
            if n < out.shape[0]:
                out[n] = rate
            n += 1
    return n


@njit(cache=True, nogil=True)  # nogil: `sink_rates_batch(threads=...)` runs chunks side by side
def _batch(worlds, n_items, r_time, ing_item, ing_amount, prod_item, prod_amount, out, n_sinks):  # type: ignore[no-untyped-def]
    for b in range(worlds.shape[0]):
        inflow, _, _, _, _, tile_item, _, _, _ = _run(
            worlds[b], n_items, r_time, ing_item, ing_amount, prod_item, prod_amount
        )
        n_sinks[b] = _sink_rates(worlds[b], inflow, tile_item, out[b])


class MalformedWorldError(ValueError):
    """A world tensor the kernels cannot read safely; names the world, tile and problem."""


def check_worlds(worlds: np.ndarray) -> None:
    """Refuse tensors the kernels would misread (they do not bounds-check): values out of
    range, and splitters or assemblers whose tiles do not make up a whole entity.
    worlds: int16[B, C, H, W]. Raises MalformedWorldError."""
    catalog = load_catalog()
    if worlds.ndim != 4 or worlds.shape[1] != CHANNELS:
        raise MalformedWorldError(f"worlds must be int16[B, {CHANNELS}, H, W], got shape {worlds.shape}")
    ent = worlds[:, Channel.ENTITY]
    facing = worlds[:, Channel.FACING]
    item = worlds[:, Channel.ITEM]
    part = worlds[:, Channel.PART]

    def fail(mask: np.ndarray, problem: str) -> None:
        if mask.any():
            b, y, x = (int(v) for v in np.argwhere(mask)[0])
            raise MalformedWorldError(f"world {b}, tile ({x}, {y}): {problem}")

    fail((ent < 0) | (ent > max(Entity)), "entity value out of range")
    fail((facing < 0) | (facing > 3), "facing must be 0..3")
    fail((worlds[:, Channel.UNDERGROUND] < 0) | (worlds[:, Channel.UNDERGROUND] > 2), "underground end must be 0..2")
    marker = (ent == Entity.SOURCE) | (ent == Entity.SINK)
    fail(marker & ((item < 0) | (item >= len(catalog.items))), "item id not in the catalog")
    machine = ent == Entity.ASSEMBLER
    fail(machine & ((item < 0) | (item >= len(catalog.recipes))), "recipe id not in the catalog")
    # multi-tile entities: each tile names, by its part, an anchor in bounds of the same
    # kind and facing with part 0; an anchor is whole when all fw * fh of its parts name
    # it (a part fixes the tile's place in the footprint, so no two tiles name it twice).
    # Counting instead of visiting each footprint keeps this a few array passes.
    h, w = ent.shape[1:]
    flat_ent, flat_facing, flat_part = ent.reshape(-1), facing.reshape(-1), part.reshape(-1)
    for kind in (Entity.SPLITTER, Entity.ASSEMBLER):
        tiles = np.flatnonzero(flat_ent == kind)  # flat indices: far cheaper than a 3-d nonzero
        if not len(tiles):
            continue
        b, y, x = tiles // (h * w), tiles // w % h, tiles % w
        f, p = flat_facing[tiles], flat_part[tiles]
        fw = np.where(f % 2 == 0, 2, 1) if kind == Entity.SPLITTER else np.full_like(f, 3)
        fh = 3 - fw if kind == Entity.SPLITTER else fw
        ax, ay = x - p % fw, y - p // fw
        bad = (p < 0) | (p >= fw * fh) | (ax < 0) | (ay < 0) | (ax + fw > w) | (ay + fh > h)
        anchor = (b * h + np.clip(ay, 0, h - 1)) * w + np.clip(ax, 0, w - 1)
        bad |= (flat_ent[anchor] != kind) | (flat_part[anchor] != 0) | (flat_facing[anchor] != f)
        bad |= np.bincount(anchor[~bad], minlength=flat_ent.size)[anchor] != fw * fh
        if bad.any():
            i = int(np.argmax(bad))
            raise MalformedWorldError(
                f"world {int(b[i])}, tile ({int(x[i])}, {int(y[i])}): "
                f"{kind.name.lower()} tiles do not make up a whole {kind.name.lower()}"
            )


def _tables() -> tuple[int, RecipeTables]:
    catalog = load_catalog()
    return len(catalog.items) - 1, recipe_tables(catalog)


def sink_rates_batch(worlds: np.ndarray, threads: int = 1, *, trusted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state rates of the sinks of many worlds.

    worlds: int16[B, CHANNELS, H, W]. Returns (rates float64[B, MAX_SINKS], counts int64[B]):
    rates[b, :counts[b]] are world b's sinks in row-major order; unused slots are 0.
    threads > 1 evaluates chunks of the batch on that many threads at once (the kernel
    releases the GIL); the result does not depend on it. `trusted` skips `check_worlds`,
    for callers whose worlds only ever went through `World.place` (lesson generators).
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    if not trusted:
        check_worlds(worlds)
    n_items, t = _tables()
    worlds = np.ascontiguousarray(worlds, np.int16)
    out = np.zeros((worlds.shape[0], MAX_SINKS), np.float64)
    counts = np.zeros(worlds.shape[0], np.int64)

    def run(lo: int, hi: int) -> None:
        args = (t.time, t.ingredient_item, t.ingredient_amount, t.product_item, t.product_amount)
        _batch(worlds[lo:hi], n_items, *args, out[lo:hi], counts[lo:hi])

    over_threads(len(worlds), threads, run)
    return out, counts


@dataclass(frozen=True)
class SinkResult:
    x: int
    y: int
    item: str
    per_second: float


@dataclass(frozen=True)
class SimResult:
    """Everything the mimic worked out for one world.

    lane_flow: float64[H, W, 2, K] what enters each tile's left/right lane per item slot;
    items: the catalog names of the K item slots; inserter_flow: (x, y) -> {item: rate};
    crafts: (x, y) of each assembler -> crafts per second; clogged: bool[H, W, 2].
    """

    sinks: list[SinkResult]
    items: list[str]
    lane_flow: np.ndarray
    inserter_flow: dict[tuple[int, int], dict[str, float]]
    crafts: dict[tuple[int, int], float]
    clogged: np.ndarray
    iterations: int

    @property
    def rates(self) -> list[float]:
        return [s.per_second for s in self.sinks]


def simulate(world: World) -> SimResult:
    """Steady state of one world, with the flows behind it."""
    catalog = load_catalog()
    check_worlds(world.data[None])
    n_items, t = _tables()
    inflow, ins_take, m_craft, clogged, local_item, tile_item, ins_tile, m_anchor, iterations = _run(
        world.data, n_items, t.time, t.ingredient_item, t.ingredient_amount, t.product_item, t.product_amount
    )
    h, w = world.height, world.width
    items = [catalog.items[int(i)] for i in local_item]
    sinks = []
    for y in range(h):
        for x in range(w):
            if world.entity(x, y) == Entity.SINK:
                k = int(tile_item[y * w + x])
                rate = float(inflow[2 * (y * w + x), k] + inflow[2 * (y * w + x) + 1, k]) if k >= 0 else 0.0
                name = catalog.items[int(world.data[Channel.ITEM, y, x])]
                sinks.append(SinkResult(x, y, name, rate))
    inserter_flow = {
        (int(tile) % w, int(tile) // w): {items[k]: float(ins_take[i, k]) for k in range(len(items)) if ins_take[i, k]}
        for i, tile in enumerate(ins_tile)
    }
    crafts = {(int(a) % w, int(a) // w): float(m_craft[m]) for m, a in enumerate(m_anchor)}
    return SimResult(
        sinks=sinks,
        items=items,
        lane_flow=inflow.reshape(h, w, 2, len(items)),
        inserter_flow=inserter_flow,
        crafts=crafts,
        clogged=clogged.reshape(h, w, 2),
        iterations=int(iterations),
    )


def power_mean_score(rates: Sequence[float] | np.ndarray, best: Sequence[float] | np.ndarray) -> float:
    """The task's score: power mean (p = 0.5) of each sink's rate over its best, in [0, 1].

    A starved sink pulls the score down harder than an arithmetic mean would."""
    r = np.asarray(rates, np.float64)
    b = np.asarray(best, np.float64)
    if r.shape != b.shape or r.size == 0:
        raise ValueError("rates and best must be equally long and not empty")
    if (b <= 0).any():
        raise ValueError("every sink's best achievable rate must be positive")
    ratio = np.clip(r / b, 0.0, 1.0)
    return float(np.mean(np.sqrt(ratio)) ** 2)


__all__ = [
    "BELT_LANE_RATE",
    "MAX_SINKS",
    "SimResult",
    "SinkResult",
    "MalformedWorldError",
    "check_worlds",
    "power_mean_score",
    "simulate",
    "sink_rates_batch",
]
