"""Kernel: build the lane graph of one world (numba, flat arrays, no Python objects).

Tiles are numbered t = y * W + x; every tile owns two lanes, 2t (left) and 2t + 1
(right), relative to its facing; only belt-like tiles use theirs. `build_graph_arrays`
returns the graph as a tuple of flat arrays sized for the world.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shared_schema.entities import (
    ASSEMBLER_SPEED,
    INSERTER_RATE,
    LONG_INSERTER_RATE,
    UNDERGROUND_MAX_DISTANCE,
    Entity,
    UndergroundEnd,
)
from shared_schema.world import Channel

# Plain ints so the kernels read them as compile-time constants.
EMPTY = int(Entity.EMPTY)
BELT = int(Entity.BELT)
UNDERGROUND = int(Entity.UNDERGROUND)
SPLITTER = int(Entity.SPLITTER)
INSERTER = int(Entity.INSERTER)
LONG_INSERTER = int(Entity.LONG_INSERTER)
ASSEMBLER = int(Entity.ASSEMBLER)
SOURCE = int(Entity.SOURCE)
SINK = int(Entity.SINK)
ENTRANCE = int(UndergroundEnd.ENTRANCE)
EXIT = int(UndergroundEnd.EXIT)
CH_ENTITY, CH_FACING, CH_ITEM, CH_UG, CH_PART = (
    int(Channel.ENTITY),
    int(Channel.FACING),
    int(Channel.ITEM),
    int(Channel.UNDERGROUND),
    int(Channel.PART),
)
UG_RANGE = UNDERGROUND_MAX_DISTANCE
INS_RATE = INSERTER_RATE
LONG_RATE = LONG_INSERTER_RATE
AM_SPEED = ASSEMBLER_SPEED

# Priority classes of what feeds a lane: from behind (or a curve), side-load, inserter.
PRI_STRAIGHT = 0
PRI_SIDE = 1

# What an inserter's end touches.
END_NONE = 0
END_LANES = 1  # a belt-like tile's lanes
END_SOURCE = 2  # endless supply
END_MACHINE = 3

MAX_FEEDERS = 3  # belt lanes feeding one lane: one from behind + two of a side feeder

DXS = np.array([0, 1, 0, -1], np.int64)
DYS = np.array([-1, 0, 1, 0], np.int64)


@njit(cache=True)
def _belt_like(ent: int) -> bool:
    return ent == BELT or ent == UNDERGROUND or ent == SPLITTER or ent == SOURCE or ent == SINK


@njit(cache=True)
def _points_ahead(ent: int, ug: int) -> bool:
    """Whether a belt-like entity pushes items onto the tile ahead of it."""
    return ent == BELT or ent == SPLITTER or ent == SOURCE or (ent == UNDERGROUND and ug == EXIT)


@njit(cache=True)
def build_graph_arrays(world: np.ndarray, n_items: int, ing_item: np.ndarray, prod_item: np.ndarray):  # type: ignore[no-untyped-def]
    """Build the lane graph of `world` (int16[C, H, W]). N tiles, L = 2N lanes,
    I inserters, M machines, K local item slots. Returns, in order:

    ent: int64[N] entity per tile; lane_ok: bool[L]; lane_out: int64[L] destination lane
    (-1 none); lane_out_pri: int64[L]; feed, feed_pri: int64[L, MAX_FEEDERS] feeder lanes
    (-1 none) and their priorities; partner: int64[N] other tile of a splitter (-1);
    node_of: int64[N] processing node (anchor tile) of each tile (-1 none); tile_item:
    int64[N] local slot of a source's/sink's item (-1); local_item: int64[K] catalog id of
    each slot; ins_pick_kind, ins_pick, ins_drop_kind, ins_drop, ins_rate, ins_tile:
    per inserter; m_anchor, m_recipe: int64[M]; machine_of: int64[N]; order: nodes
    upstream first; acyclic: whether no edge goes back in `order`."""
    H = world.shape[1]
    W = world.shape[2]
    N = H * W
    L = 2 * N
    ent = np.empty(N, np.int64)
    face = np.empty(N, np.int64)
    item = np.empty(N, np.int64)
    ug = np.empty(N, np.int64)
    part = np.empty(N, np.int64)
    for y in range(H):
        for x in range(W):
            t = y * W + x
            ent[t] = world[CH_ENTITY, y, x]
            face[t] = world[CH_FACING, y, x]
            item[t] = world[CH_ITEM, y, x]
            ug[t] = world[CH_UG, y, x]
            part[t] = world[CH_PART, y, x]

    # --- local item slots: every item a source, sink or recipe mentions --------------
    local_of = np.full(n_items + 1, -1, np.int64)
    found = np.zeros(n_items + 1, np.bool_)
    for t in range(N):
        if ent[t] == SOURCE or ent[t] == SINK:
            if item[t] > 0:
                found[item[t]] = True
        elif ent[t] == ASSEMBLER and part[t] == 0 and item[t] > 0:
            for j in range(ing_item.shape[1]):
                if ing_item[item[t], j] > 0:
                    found[ing_item[item[t], j]] = True
                if prod_item[item[t], j] > 0:
                    found[prod_item[item[t], j]] = True
    K = 0
    for i in range(n_items + 1):
        if found[i]:
            K += 1
    local_item = np.empty(K, np.int64)
    k = 0
    for i in range(n_items + 1):
        if found[i]:
            local_of[i] = k
            local_item[k] = i
            k += 1
    tile_item = np.full(N, -1, np.int64)
    for t in range(N):
        if (ent[t] == SOURCE or ent[t] == SINK) and item[t] > 0:
            tile_item[t] = local_of[item[t]]

    # --- splitter partners and processing nodes ---------------------------------------
    partner = np.full(N, -1, np.int64)
    node_of = np.full(N, -1, np.int64)
    machine_of = np.full(N, -1, np.int64)
    n_machines = 0
    for t in range(N):
        if ent[t] == ASSEMBLER and part[t] == 0:
            n_machines += 1
    m_anchor = np.empty(n_machines, np.int64)
    m_recipe = np.empty(n_machines, np.int64)
    m = 0
    for t in range(N):
        x = t % W
        y = t // W
        e = ent[t]
        if e == SPLITTER:
            f = face[t]
            if part[t] == 0:
                # north/south splitters run along x, east/west along y
                other = t + 1 if f % 2 == 0 else t + W
                partner[t] = other
                partner[other] = t
                node_of[t] = t
                node_of[other] = t
        elif e == ASSEMBLER:
            if part[t] == 0:
                m_anchor[m] = t
                m_recipe[m] = item[t]
                for dy in range(3):
                    for dx in range(3):
                        tt = (y + dy) * W + (x + dx)
                        machine_of[tt] = m
                        node_of[tt] = t
                m += 1
        elif _belt_like(e):
            node_of[t] = t

    # --- underground pairing: mutual nearest, same facing, 1..UG_RANGE apart ----------
    ug_pair = np.full(N, -1, np.int64)
    for t in range(N):
        if ent[t] == UNDERGROUND and ug[t] == ENTRANCE:
            f = face[t]
            x = t % W
            y = t // W
            exit_t = -1
            for d in range(1, UG_RANGE + 1):
                xx = x + DXS[f] * d
                yy = y + DYS[f] * d
                if xx < 0 or yy < 0 or xx >= W or yy >= H:
                    break
                tt = yy * W + xx
                if ent[tt] == UNDERGROUND and ug[tt] == EXIT and face[tt] == f:
                    exit_t = tt
                    break
            if exit_t < 0:
                continue
            # the exit's nearest entrance behind it must be this one
            ex = exit_t % W
            ey = exit_t // W
            back = -1
            for d in range(1, UG_RANGE + 1):
                xx = ex - DXS[f] * d
                yy = ey - DYS[f] * d
                if xx < 0 or yy < 0 or xx >= W or yy >= H:
                    break
                tt = yy * W + xx
                if ent[tt] == UNDERGROUND and ug[tt] == ENTRANCE and face[tt] == f:
                    back = tt
                    break
            if back == t:
                ug_pair[t] = exit_t
                ug_pair[exit_t] = t

    # --- who points into whom: count feeders from behind and from the sides -----------
    n_behind = np.zeros(N, np.int64)
    n_side = np.zeros(N, np.int64)
    for t in range(N):
        if not _points_ahead(ent[t], ug[t]):
            continue
        f = face[t]
        xx = t % W + DXS[f]
        yy = t // W + DYS[f]
        if xx < 0 or yy < 0 or xx >= W or yy >= H:
            continue
        u = yy * W + xx
        if not _belt_like(ent[u]):
            continue
        g = face[u]
        if f == g:
            n_behind[u] += 1
        elif f != (g + 2) % 4:
            n_side[u] += 1

    # --- lane edges -------------------------------------------------------------------
    lane_ok = np.zeros(L, np.bool_)
    lane_out = np.full(L, -1, np.int64)
    lane_out_pri = np.zeros(L, np.int64)
    feed = np.full((L, MAX_FEEDERS), -1, np.int64)
    feed_pri = np.zeros((L, MAX_FEEDERS), np.int64)
    for t in range(N):
        if _belt_like(ent[t]):
            lane_ok[2 * t] = True
            lane_ok[2 * t + 1] = True
    for t in range(N):
        e = ent[t]
        if not _belt_like(e) or e == SINK:
            continue
        f = face[t]
        if e == UNDERGROUND and ug[t] == ENTRANCE:
            if ug_pair[t] >= 0:
                for side in range(2):
                    _connect(2 * t + side, 2 * ug_pair[t] + side, PRI_STRAIGHT, lane_out, lane_out_pri, feed, feed_pri)
            continue
        xx = t % W + DXS[f]
        yy = t // W + DYS[f]
        if xx < 0 or yy < 0 or xx >= W or yy >= H:
            continue
        u = yy * W + xx
        eu = ent[u]
        if not _belt_like(eu) or eu == SOURCE:
            continue
        g = face[u]
        if f == g:
            # from behind: everything but an underground exit (its hood) takes it straight
            if eu == UNDERGROUND and ug[u] == EXIT:
                continue
            for side in range(2):
                _connect(2 * t + side, 2 * u + side, PRI_STRAIGHT, lane_out, lane_out_pri, feed, feed_pri)
        elif f == (g + 2) % 4 or eu == SPLITTER:
            continue  # head-on, or the side of a splitter: no connection
        else:
            near = 0 if f == (g + 1) % 4 else 1  # feeder on the receiver's left side -> left lane
            if eu == UNDERGROUND:
                # only the feeder lane on the open half passes: the back half of an
                # entrance, the front half of an exit
                open_dir = (g + 2) % 4 if ug[u] == ENTRANCE else g
                passing = 0 if (f + 3) % 4 == open_dir else 1  # feeder's left lane lies on side f-1
                _connect(2 * t + passing, 2 * u + near, PRI_SIDE, lane_out, lane_out_pri, feed, feed_pri)
            elif n_side[u] == 1 and n_behind[u] == 0:
                for side in range(2):  # a curve: lanes keep their side
                    _connect(2 * t + side, 2 * u + side, PRI_STRAIGHT, lane_out, lane_out_pri, feed, feed_pri)
            else:
                for side in range(2):
                    _connect(2 * t + side, 2 * u + near, PRI_SIDE, lane_out, lane_out_pri, feed, feed_pri)

    # --- inserters ----------------------------------------------------------------------
    n_ins = 0
    for t in range(N):
        if ent[t] == INSERTER or ent[t] == LONG_INSERTER:
            n_ins += 1
    ins_pick_kind = np.zeros(n_ins, np.int64)
    ins_pick = np.full(n_ins, -1, np.int64)
    ins_drop_kind = np.zeros(n_ins, np.int64)
    ins_drop = np.full(n_ins, -1, np.int64)
    ins_rate = np.zeros(n_ins, np.float64)
    ins_tile = np.zeros(n_ins, np.int64)
    i = 0
    for t in range(N):
        e = ent[t]
        if e != INSERTER and e != LONG_INSERTER:
            continue
        reach = 1 if e == INSERTER else 2
        ins_rate[i] = INS_RATE if e == INSERTER else LONG_RATE
        ins_tile[i] = t
        f = face[t]
        x = t % W
        y = t // W
        px = x - DXS[f] * reach
        py = y - DYS[f] * reach
        if 0 <= px < W and 0 <= py < H:
            p = py * W + px
            ep = ent[p]
            if ep == SOURCE:
                ins_pick_kind[i] = END_SOURCE
                ins_pick[i] = p
            elif ep == ASSEMBLER:
                ins_pick_kind[i] = END_MACHINE
                ins_pick[i] = machine_of[p]
            elif _belt_like(ep) and ep != SINK:
                ins_pick_kind[i] = END_LANES
                ins_pick[i] = p
        dx_ = x + DXS[f] * reach
        dy_ = y + DYS[f] * reach
        if 0 <= dx_ < W and 0 <= dy_ < H:
            d = dy_ * W + dx_
            ed = ent[d]
            if ed == ASSEMBLER:
                ins_drop_kind[i] = END_MACHINE
                ins_drop[i] = machine_of[d]
            elif _belt_like(ed) and ed != SOURCE:
                g = face[d]
                if g % 2 == f % 2:
                    lane = 1  # a belt along the inserter's path: its right lane
                else:
                    lane = 0 if (g + 3) % 4 == f else 1  # across: the far lane
                ins_drop_kind[i] = END_LANES
                ins_drop[i] = 2 * d + lane
        i += 1

    order, acyclic = _topological_order(
        N, node_of, lane_out, ins_pick_kind, ins_pick, ins_drop_kind, ins_drop, m_anchor
    )
    return (
        ent,
        lane_ok,
        lane_out,
        lane_out_pri,
        feed,
        feed_pri,
        partner,
        node_of,
        tile_item,
        local_item,
        ins_pick_kind,
        ins_pick,
        ins_drop_kind,
        ins_drop,
        ins_rate,
        ins_tile,
        m_anchor,
        m_recipe,
        machine_of,
        order,
        acyclic,
    )


@njit(cache=True)
def csr(keys, n_keys):  # type: ignore[no-untyped-def]
    """Group indices by key (keys < 0 are left out): members of key v are
    members[start[v]:start[v + 1]]."""
    start = np.zeros(n_keys + 1, np.int64)
    for i in range(keys.shape[0]):
        if keys[i] >= 0:
            start[keys[i] + 1] += 1
    for v in range(n_keys):
        start[v + 1] += start[v]
    fill = start[:-1].copy()
    members = np.empty(max(start[n_keys], 1), np.int64)
    for i in range(keys.shape[0]):
        if keys[i] >= 0:
            members[fill[keys[i]]] = i
            fill[keys[i]] += 1
    return start, members


@njit(cache=True)
def _connect(src, dst, pri, lane_out, lane_out_pri, feed, feed_pri):  # type: ignore[no-untyped-def]
    lane_out[src] = dst
    lane_out_pri[src] = pri
    for j in range(feed.shape[1]):
        if feed[dst, j] < 0:
            feed[dst, j] = src
            feed_pri[dst, j] = pri
            return


@njit(cache=True)
def _topological_order(N, node_of, lane_out, pick_kind, pick, drop_kind, drop, m_anchor):  # type: ignore[no-untyped-def]
    """Processing nodes (anchor tiles) upstream first, cycles cut where found, and
    whether there was none (an edge back to a node still on the DFS stack)."""
    # successor lists of nodes, as a dense adjacency built from edges
    n_edges = 0
    src = np.empty(2 * N + 2 * len(pick) + 4, np.int64)
    dst = np.empty(2 * N + 2 * len(pick) + 4, np.int64)
    for lane in range(2 * N):
        d = lane_out[lane]
        if d >= 0:
            a = node_of[lane // 2]
            b = node_of[d // 2]
            if a != b:
                src[n_edges] = a
                dst[n_edges] = b
                n_edges += 1
    for i in range(len(pick)):
        if pick_kind[i] == 0 or drop_kind[i] == 0:
            continue
        a = m_anchor[pick[i]] if pick_kind[i] == END_MACHINE else node_of[pick[i]]
        b = m_anchor[drop[i]] if drop_kind[i] == END_MACHINE else node_of[drop[i] // 2]
        if a != b:
            src[n_edges] = a
            dst[n_edges] = b
            n_edges += 1
    start, edges = csr(src[:n_edges], N)  # successors of v: dst[edges[start[v]:start[v + 1]]]
    adj = np.empty(n_edges, np.int64)
    for e in range(n_edges):
        adj[e] = dst[edges[e]]
    # iterative DFS, reverse postorder
    acyclic = True
    state = np.zeros(N, np.int64)  # 0 new, 1 on stack, 2 done
    post = np.empty(N, np.int64)
    n_post = 0
    stack = np.empty(N, np.int64)
    cursor = np.empty(N, np.int64)
    for root in range(N):
        if node_of[root] != root or state[root] != 0:
            continue
        sp = 0
        stack[0] = root
        cursor[0] = start[root]
        state[root] = 1
        while sp >= 0:
            v = stack[sp]
            if cursor[sp] < start[v + 1]:
                w = adj[cursor[sp]]
                cursor[sp] += 1
                if state[w] == 1:
                    acyclic = False
                elif state[w] == 0:
                    state[w] = 1
                    sp += 1
                    stack[sp] = w
                    cursor[sp] = start[w]
            else:
                state[v] = 2
                post[n_post] = v
                n_post += 1
                sp -= 1
    order = np.empty(n_post, np.int64)
    for j in range(n_post):
        order[j] = post[n_post - 1 - j]
    return order, acyclic
