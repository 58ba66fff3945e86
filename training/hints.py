"""Distance hints: what the policy network is given beside the world, computed by fixed rules.

`distance_hints(worlds)` gives, for every tile, how close it is to a sink, to a
source, and to a built assembling machine or splitter (where belts from the sources
lead once one stands), along the tiles a belt could use: a step to a 4-neighbour costs 1, an
underground jump of k = 2 to `UNDERGROUND_MAX_DISTANCE` tiles over anything costs k + 1
(a route takes undergrounds only where something is in its way).
To a sink, a machine or a splitter the path runs over empty buildable tiles; from a source it also runs over
what is already built, so the field shows how far a partial layout has come. Closeness
is 1 at the marker, falling by 1 / (H + W) per unit of cost, and 0 where unreachable.

Then, per facing, the tiles where an underground exit facing that way would pair with
an entrance already built (the first underground behind it on its axis, at most
`UNDERGROUND_MAX_DISTANCE` tiles back, is an entrance facing the same way).

A small network finds global shortest-path structure hard to learn from examples; with
these fields, routing becomes a local choice (step to the neighbour closer to the sink),
and an underground's exit a lookup instead of a count of tiles along a row.
The numbers come from a numba kernel (a bucket-queue Dijkstra over small integer costs), not from
the network, so the torch policy, the ONNX export and the server (without torch) all
call this one function.
"""

from __future__ import annotations

import numba
import numpy as np

from shared_schema.directions import DX, DY
from shared_schema.entities import UNDERGROUND_MAX_DISTANCE, Entity, UndergroundEnd
from shared_schema.world import Channel
from training.threads import over_threads

HINTS = 7  # closeness to a sink, to a source, to a machine or splitter; where an exit would pair (per facing)
EXITS = 3  # the first of the four exit channels (north, east, south, west)
_UNREACHED = 1 << 30
# plain ints: numba compares arrays with ints, not IntEnums
_ENTITY, _BUILDABLE = int(Channel.ENTITY), int(Channel.BUILDABLE)
_EMPTY, _FIRST_BUILT, _LAST_BUILT = int(Entity.EMPTY), int(Entity.BELT), int(Entity.ASSEMBLER)
_SOURCE, _SINK = int(Entity.SOURCE), int(Entity.SINK)
_SPLITTER, _ASSEMBLER = int(Entity.SPLITTER), int(Entity.ASSEMBLER)
_UNDERGROUND, _FACING, _END = int(Entity.UNDERGROUND), int(Channel.FACING), int(Channel.UNDERGROUND)
_ENTRANCE = int(UndergroundEnd.ENTRANCE)
_DY, _DX = np.array(DY, np.int64), np.array(DX, np.int64)  # the shared table, as arrays for the kernel
_AXES = ((0, 1), (0, -1), (1, 0), (-1, 0))
# (dy, dx, cost): a belt step, or an underground jump of k tiles costing one more than k belts' worth
_STEPS = np.array(
    [(dy, dx, 1) for dy, dx in _AXES]
    + [(dy * k, dx * k, k + 1) for k in range(2, UNDERGROUND_MAX_DISTANCE + 1) for dy, dx in _AXES],
    np.int64,
)


@numba.njit(cache=True, nogil=True)
def _field(seed: np.ndarray, passable: np.ndarray, steps: np.ndarray, out: np.ndarray, buckets: np.ndarray) -> None:
    """Cost from the nearest seed tile to every passable tile, into `out` (int64[H, W]);
    `buckets` is scratch space: int64[most a step costs + 1, H * W * steps]."""
    h, w = seed.shape
    out[:] = _UNREACHED
    # costs are at most `spread`, so that many + 1 rotating buckets hold every tile still to settle
    spread = buckets.shape[0]
    counts = np.zeros(spread, np.int64)
    for y in range(h):
        for x in range(w):
            if seed[y, x]:
                out[y, x] = 0
                buckets[0, counts[0]] = y * w + x
                counts[0] += 1
    cost = 0
    while counts.sum() > 0:
        b = cost % spread
        i = 0
        while i < counts[b]:
            tile = buckets[b, i]
            i += 1
            y, x = tile // w, tile % w
            if out[y, x] != cost:
                continue  # settled earlier at a lower cost
            for s in range(len(steps)):
                ny, nx, c = y + steps[s, 0], x + steps[s, 1], steps[s, 2]
                if 0 <= ny < h and 0 <= nx < w and passable[ny, nx] and cost + c < out[ny, nx]:
                    out[ny, nx] = cost + c
                    nb = (cost + c) % spread
                    buckets[nb, counts[nb]] = ny * w + nx
                    counts[nb] += 1
        counts[b] = 0
        cost += 1


@numba.njit(cache=True, nogil=True)
def _exits(world: np.ndarray, out: np.ndarray) -> None:
    """out[f, y, x] = 1 where an underground exit facing f would pair: the first
    underground behind it on its axis, within reach, is an entrance facing f."""
    h, w = world.shape[1:]
    for f in range(4):
        for y in range(h):
            for x in range(w):
                out[f, y, x] = 0.0
                for k in range(1, UNDERGROUND_MAX_DISTANCE + 1):
                    by, bx = y - k * _DY[f], x - k * _DX[f]
                    if not (0 <= by < h and 0 <= bx < w):
                        break
                    if world[_ENTITY, by, bx] == _UNDERGROUND and world[_FACING, by, bx] % 2 == f % 2:
                        if world[_FACING, by, bx] == f and world[_END, by, bx] == _ENTRANCE:
                            out[f, y, x] = 1.0
                        break


@numba.njit(cache=True, nogil=True)
def _hints(worlds: np.ndarray, steps: np.ndarray, out: np.ndarray) -> None:
    n, _, h, w = worlds.shape
    cost = np.empty((h, w), np.int64)
    # allocated once: a fresh 100 kB+ array per field is a system call (mmap) each time
    buckets = np.empty((steps[:, 2].max() + 1, h * w * len(steps)), np.int64)
    scale = 1.0 / (h + w)
    for b in range(n):
        ent = worlds[b, _ENTITY]
        buildable = worlds[b, _BUILDABLE] > 0
        empty = (ent == _EMPTY) & buildable
        built = (ent >= _FIRST_BUILT) & (ent <= _LAST_BUILT)
        for field in range(EXITS):
            if field == 0:
                _field(ent == _SINK, empty, steps, cost, buckets)
            elif field == 1:
                _field(ent == _SOURCE, empty | built, steps, cost, buckets)
            else:
                _field((ent == _ASSEMBLER) | (ent == _SPLITTER), empty, steps, cost, buckets)
            for y in range(h):
                for x in range(w):
                    out[b, field, y, x] = max(0.0, 1.0 - cost[y, x] * scale) if cost[y, x] < _UNREACHED else 0.0
        _exits(worlds[b], out[b, EXITS:])


def distance_hints(worlds: np.ndarray, threads: int = 1) -> np.ndarray:
    """float32[B, HINTS, H, W]: closeness to a sink, to a source and to a machine or
    splitter, and where an exit facing north, east, south or west would pair (module
    docstring), of int16[B, 6, H, W] worlds; chunks of the batch on `threads` threads."""
    worlds = np.ascontiguousarray(worlds)
    out = np.empty((worlds.shape[0], HINTS, *worlds.shape[2:]), np.float32)
    over_threads(len(worlds), threads, lambda lo, hi: _hints(worlds[lo:hi], _STEPS, out[lo:hi]))
    return out
