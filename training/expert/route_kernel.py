"""Kernels: the belt router's A* (numba, flat arrays, no Python objects).

`routing.py` holds the rules and the public API; `search` runs its A* over the world
tensor (`int16[C, H, W]`) and expands nodes in exactly the order of the plain-Python
router (`tests/reference_routing.py`), so both return the same steps. Tiles are
numbered t = y * W + x and states (x, y, facing) s = 4 * t + facing. A search
allocates, once:
- the map (`_world_map`): `free[t]` (empty, buildable, unprotected, no inserter's
  end), `fed[t]` (something other than the start points into it), `inside[s]` (strictly
  inside an existing underground pair of that facing);
- the nodes, int32[cap, NODE_COLUMNS], one row per push: x, y, facing, parent, g and
  what the move into the node placed (`STEP_*`, with the tunnel length); `cap` is the
  worst case, every state expanded once and pushing three belts and `max_tunnel` tunnels;
- a binary min-heap of int64 keys packing (g + h, h, node id): node ids are the push
  order, so this is the reference's heapq order on (f, h, push counter), a total order;
- `closed[s]`, `best[s]` (the least g pushed, see `search`), and stamps marking the
  partial route's tiles, underground ends and tunnel insides, rebuilt at each
  expansion by walking the parents (a new stamp value per expansion: nothing to clear).

All the kernels live in this one file: numba's on-disk cache notices edits only to the
file of the function it compiled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shared_schema.world import Channel

# the mimic's plain-int entity kinds, channels and facing vectors: compile-time constants
from training.sim.graph import (
    BELT,
    CH_ENTITY,
    CH_FACING,
    CH_UG,
    DXS,
    DYS,
    EMPTY,
    ENTRANCE,
    EXIT,
    INSERTER,
    LONG_INSERTER,
    SOURCE,
    SPLITTER,
    UG_RANGE,
    UNDERGROUND,
)

CH_BUILDABLE = int(Channel.BUILDABLE)
BELT_COST = 1
UNDERGROUND_BASE_COST = 4  # a pair costs this plus its length (tiles from entrance to exit)
UNREACHED = 2**31 - 1  # g of a state nothing was pushed for yet

# What the move into a node placed.
STEP_NONE = 0  # the start node
STEP_BELT = 1  # a belt on the node's tile
STEP_TUNNEL = 2  # an underground pair: the entrance `length` tiles behind the node, the exit on it
STEP_GOAL = 3  # the goal, entered from the parent: nothing placed


@njit(cache=True)
def _points_into(data: np.ndarray, sx: int, sy: int, x: int, y: int, tx: int, ty: int) -> bool:
    """Whether the entity at (x, y), other than the start (sx, sy), pushes items into (tx, ty)."""
    h, w = data.shape[1], data.shape[2]
    if not (0 <= x < w and 0 <= y < h) or (x == sx and y == sy):
        return False
    kind = data[CH_ENTITY, y, x]
    pointer = kind == BELT or kind == SPLITTER or kind == SOURCE or data[CH_UG, y, x] == EXIT
    f = data[CH_FACING, y, x]
    return pointer and x + DXS[f] == tx and y + DYS[f] == ty


@njit(cache=True)
def sink_entries(data: np.ndarray, sx: int, sy: int, kx: int, ky: int) -> int:
    """Bit mask of the facings a route may enter the sink (kx, ky) with, fed from (sx, sy);
    0 when something else already feeds it from behind (no full belt fits)."""
    f = data[CH_FACING, ky, kx]
    if _points_into(data, sx, sy, kx - DXS[f], ky - DYS[f], kx, ky):
        return 0
    for turn in (1, 3):
        side = (f + turn) % 4
        if _points_into(data, sx, sy, kx + DXS[side], ky + DYS[side], kx, ky):
            return 1 << f  # beside a side feeder only a straight entry keeps both lanes
    return 15 & ~(1 << ((f + 2) % 4))  # head-on does not connect


@njit(cache=True)
def _pair_length(data: np.ndarray, x: int, y: int, f: int) -> int:
    """Distance to the exit the entrance at (x, y) pairs with, or 0 if it is unpaired."""
    h, w = data.shape[1], data.shape[2]
    for k in range(1, UG_RANGE + 1):
        tx, ty = x + k * DXS[f], y + k * DYS[f]
        if not (0 <= tx < w and 0 <= ty < h):
            return 0
        if data[CH_ENTITY, ty, tx] != UNDERGROUND or data[CH_FACING, ty, tx] != f:
            continue
        if data[CH_UG, ty, tx] == ENTRANCE:
            return 0
        return k  # the nearest exit; nothing same-facing lies between, so it is mutual
    return 0


@njit(cache=True)
def _world_map(data: np.ndarray, sx: int, sy: int, protected: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """free bool[H*W], fed bool[H*W], inside bool[H*W*4] (module docstring); the start's
    own entity is left out: what it points into is the route."""
    h, w = data.shape[1], data.shape[2]
    free = np.zeros(h * w, np.bool_)
    fed = np.zeros(h * w, np.bool_)
    inside = np.zeros(h * w * 4, np.bool_)
    for y in range(h):
        for x in range(w):
            free[y * w + x] = data[CH_ENTITY, y, x] == EMPTY and data[CH_BUILDABLE, y, x] == 1
    for y in range(h):
        for x in range(w):
            kind = data[CH_ENTITY, y, x]
            if kind == EMPTY or (x == sx and y == sy):
                continue
            f = data[CH_FACING, y, x]
            dx, dy = DXS[f], DYS[f]
            end = data[CH_UG, y, x]
            if kind == BELT or kind == SPLITTER or kind == SOURCE or (kind == UNDERGROUND and end == EXIT):
                if 0 <= x + dx < w and 0 <= y + dy < h:
                    fed[(y + dy) * w + x + dx] = True
            elif kind == UNDERGROUND and end == ENTRANCE:
                for k in range(1, _pair_length(data, x, y, f)):
                    inside[((y + k * dy) * w + x + k * dx) * 4 + f] = True
            elif kind == INSERTER or kind == LONG_INSERTER:
                reach = 1 if kind == INSERTER else 2
                for r in (reach, -reach):
                    tx, ty = x + r * dx, y + r * dy
                    if 0 <= tx < w and 0 <= ty < h:
                        free[ty * w + tx] = False
    for i in range(protected.shape[0]):
        x, y = protected[i, 0], protected[i, 1]
        if 0 <= x < w and 0 <= y < h:
            free[y * w + x] = False
    return free, fed, inside


# Columns of the node array.
N_X, N_Y, N_FACING, N_PARENT, N_STEP, N_LENGTH, N_G = range(7)
NODE_COLUMNS = 7
# A heap key packs (g + h, h, node id) into one int64, high to low, so that comparing keys
# compares the triples; node ids stay below 2**20 on a 32x32 world (see `search`'s `cap`).
KEY_SHIFT = 20
KEY_MASK = (1 << KEY_SHIFT) - 1


@njit(cache=True)
def _heap_push(heap: np.ndarray, size: int, key: int) -> int:
    """Add `key` to the min-heap of `size` entries; returns the new size."""
    i = size
    heap[i] = key
    while i > 0:
        up = (i - 1) // 2
        if heap[up] <= key:
            break
        heap[i] = heap[up]
        i = up
    heap[i] = key
    return size + 1


@njit(cache=True)
def _heap_pop(heap: np.ndarray, size: int) -> int:
    """Remove and return the least key of the min-heap of `size` entries (size shrinks by one)."""
    top = heap[0]
    size -= 1
    key = heap[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if key <= heap[child]:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = key
    return top


@njit(cache=True)
def _push(
    nodes: np.ndarray,
    heap: np.ndarray,
    size: int,
    nid: int,
    x: int,
    y: int,
    f: int,
    parent: int,
    step: int,
    length: int,
    g: int,
    h: int,
) -> int:
    """Write node `nid` and add it to the heap of `size` entries; returns the new size."""
    nodes[nid, N_X], nodes[nid, N_Y], nodes[nid, N_FACING], nodes[nid, N_PARENT] = x, y, f, parent
    nodes[nid, N_STEP], nodes[nid, N_LENGTH], nodes[nid, N_G] = step, length, g
    return _heap_push(heap, size, ((int(g + h) << KEY_SHIFT | h) << KEY_SHIFT) | nid)  # int(): no int32 overflow


@njit(cache=True)
def _mark_route(
    nodes: np.ndarray,
    nid: int,
    w: int,
    stamp: int,
    occupied: np.ndarray,
    own_end: np.ndarray,
    own_axis: np.ndarray,
    own_inside: np.ndarray,
) -> None:
    """Stamp the partial route ending at node `nid`: its tiles, its underground ends (with
    their axis) and the states strictly inside its own tunnels."""
    while nid > 0:
        x, y = nodes[nid, N_X], nodes[nid, N_Y]
        occupied[y * w + x] = stamp
        if nodes[nid, N_STEP] == STEP_TUNNEL:
            f, length = nodes[nid, N_FACING], nodes[nid, N_LENGTH]
            ex, ey = x - length * DXS[f], y - length * DYS[f]  # the entrance
            occupied[ey * w + ex] = stamp
            for t in (y * w + x, ey * w + ex):
                own_end[t] = stamp
                own_axis[t] = f % 2
            for k in range(1, length):
                own_inside[((ey + k * DYS[f]) * w + ex + k * DXS[f]) * 4 + f] = stamp
        nid = nodes[nid, N_PARENT]


@njit(cache=True)
def _steps_to(nodes: np.ndarray, nid: int) -> np.ndarray:
    """The placements of the route ending at node `nid`, in flow order: int64[n, 4] of
    x, y, facing, underground end (0 for a belt)."""
    n = 0
    i = nid
    while i > 0:
        n += 2 if nodes[i, N_STEP] == STEP_TUNNEL else 1
        i = nodes[i, N_PARENT]
    out = np.empty((n, 4), np.int64)
    while nid > 0:
        x, y, f = nodes[nid, N_X], nodes[nid, N_Y], nodes[nid, N_FACING]
        n -= 1
        if nodes[nid, N_STEP] == STEP_TUNNEL:
            out[n, 0], out[n, 1], out[n, 2], out[n, 3] = x, y, f, EXIT
            length = nodes[nid, N_LENGTH]
            n -= 1
            out[n, 0], out[n, 1], out[n, 2], out[n, 3] = x - length * DXS[f], y - length * DYS[f], f, ENTRANCE
        else:
            out[n, 0], out[n, 1], out[n, 2], out[n, 3] = x, y, f, 0
        nid = nodes[nid, N_PARENT]
    return out


@njit(cache=True)
def search(
    data: np.ndarray, sx: int, sy: int, gx: int, gy: int, entries: int, protected: np.ndarray, max_tunnel: int
) -> tuple[bool, np.ndarray]:
    """A* from the entity at (sx, sy) into (gx, gy), entering it moving one of the facings
    in the bit mask `entries` (`routing.py`'s docstring has the rules).

    data: the world tensor, int16[C, H, W]; protected: int64[n, 2] tiles (x, y) never
    built on. Returns (found, steps) with steps as in `_steps_to`."""
    h, w = data.shape[1], data.shape[2]
    free, fed, inside = _world_map(data, sx, sy, protected)
    # every state is expanded at most once and pushes at most 3 belts and one tunnel per length
    cap = 1 + h * w * 4 * (3 + min(max(max_tunnel, 0), max(h, w)))
    nodes = np.empty((cap, NODE_COLUMNS), np.int32)
    heap = np.empty(cap, np.int64)
    closed = np.zeros(h * w * 4, np.bool_)
    # least g pushed per state: a later push with no less g (same state, so same h) would
    # pop after that one and find the state closed, so it is never made (same pops, fewer)
    best = np.full(h * w * 4, UNREACHED, np.int32)
    occupied = np.zeros(h * w, np.int32)
    own_end = np.zeros(h * w, np.int32)
    own_axis = np.zeros(h * w, np.int32)
    own_inside = np.zeros(h * w * 4, np.int32)

    f0 = data[CH_FACING, sy, sx]
    size = _push(nodes, heap, 0, 0, sx, sy, f0, -1, STEP_NONE, 0, 0, abs(sx + DXS[f0] - gx) + abs(sy + DYS[f0] - gy))
    count = 1
    stamp = 0
    while size > 0:
        nid = _heap_pop(heap, size) & KEY_MASK
        size -= 1
        if nodes[nid, N_STEP] == STEP_GOAL:
            return True, _steps_to(nodes, nodes[nid, N_PARENT])
        x, y, f, g = nodes[nid, N_X], nodes[nid, N_Y], nodes[nid, N_FACING], nodes[nid, N_G]
        if closed[(y * w + x) * 4 + f]:
            continue
        closed[(y * w + x) * 4 + f] = True
        qx, qy = x + DXS[f], y + DYS[f]
        if qx == gx and qy == gy:
            if (entries >> f) & 1:
                size = _push(nodes, heap, size, count, qx, qy, f, nid, STEP_GOAL, 0, g, 0)
                count += 1
            continue
        q = qy * w + qx
        if not (0 <= qx < w and 0 <= qy < h) or not free[q] or fed[q]:
            continue
        stamp += 1
        _mark_route(nodes, nid, w, stamp, occupied, own_end, own_axis, own_inside)
        if occupied[q] == stamp:
            continue
        for turn in (0, 3, 1):  # straight, left, right; never back, head-on into the feeder
            d = (f + turn) % 4
            if not closed[q * 4 + d] and g + BELT_COST < best[q * 4 + d]:
                best[q * 4 + d] = g + BELT_COST
                hd = abs(qx + DXS[d] - gx) + abs(qy + DYS[d] - gy)
                size = _push(nodes, heap, size, count, qx, qy, d, nid, STEP_BELT, 0, g + BELT_COST, hd)
                count += 1
        # the entrance faces its feeder's way: a side-loaded entrance passes only one lane
        if inside[q * 4 + f] or own_inside[q * 4 + f] == stamp:
            continue
        for k in range(1, max_tunnel + 1):
            ex, ey = qx + k * DXS[f], qy + k * DYS[f]
            if not (0 <= ex < w and 0 <= ey < h):
                break
            e = ey * w + ex
            within = inside[e * 4 + f] or own_inside[e * 4 + f] == stamp
            buildable = free[e] and not fed[e] and occupied[e] != stamp
            cost = g + UNDERGROUND_BASE_COST + k
            if not within and buildable and not closed[e * 4 + f] and cost < best[e * 4 + f]:
                best[e * 4 + f] = cost
                he = abs(ex + DXS[f] - gx) + abs(ey + DYS[f] - gy)
                size = _push(nodes, heap, size, count, ex, ey, f, nid, STEP_TUNNEL, k, cost, he)
                count += 1
            # an underground of this axis under the tunnel could take either end's pairing,
            # so no longer tunnel may pass it
            if data[CH_ENTITY, ey, ex] == UNDERGROUND and data[CH_FACING, ey, ex] % 2 == f % 2:
                break
            if own_end[e] == stamp and own_axis[e] == f % 2:
                break
    return False, np.zeros((0, 4), np.int64)
