"""Kernel: steady-state flows on a lane graph (numba). Rules: docs/MIMIC.md.

The solver alternates a backward pass (how much each lane, inserter and machine can
take, given what flowed last time) and a forward pass (hand supply on, in
topological order, by priority) until the flows stop changing. Before that, a
free-running forward pass (nothing backed up yet) finds which items reach which
lanes; a lane holding an item that can never leave it is clogged, and is closed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from training.sim.graph import (
    AM_SPEED,
    ASSEMBLER,
    END_LANES,
    END_MACHINE,
    END_NONE,
    END_SOURCE,
    SINK,
    SOURCE,
    csr,
)

# The passes run without numba's reference counting (`_nrt=False`): they allocate
# nothing, and counting references to the many arrays they touch cost ~40% of the
# mimic's time (an atomic increment and decrement per array on every helper call).
_uncounted = njit(cache=True, _nrt=False)  # type: ignore[call-overload]

LANE = 7.5
EPS = 1e-9
MAX_ITERATIONS = 200
CLOG_ROUNDS = 8
FREE_SWEEPS = 4


@njit(cache=True)
def solve(  # type: ignore[no-untyped-def]
    ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, local_item,
    ins_pick_kind, ins_pick, ins_drop_kind, ins_drop, ins_rate, m_anchor, m_recipe, machine_of, order, acyclic,
    r_time, ing_item, ing_amount, prod_item, prod_amount,
    inflow, ins_take, m_craft, clogged,
):  # fmt: skip
    """Steady state of one lane graph (arguments as `graph.build_graph_arrays` returns them,
    then the recipe tables). Writes `inflow` float64[L, K] (what enters each lane per item),
    `ins_take` float64[I, K], `m_craft` float64[M] (crafts/s) and `clogged` bool[L].
    Returns the number of iterations the steady state took."""
    N = ent.shape[0]
    L = lane_ok.shape[0]
    K = local_item.shape[0]
    n_ins = ins_rate.shape[0]
    M = m_anchor.shape[0]
    R = ing_item.shape[1]
    m_ing = np.full((M, R), -1, np.int64)
    m_ing_amt = np.zeros((M, R), np.float64)
    m_prod = np.full((M, R), -1, np.int64)
    m_prod_amt = np.zeros((M, R), np.float64)
    m_cap = np.zeros(M, np.float64)
    for m in range(M):
        r = m_recipe[m]
        if r <= 0:
            continue
        m_cap[m] = AM_SPEED / r_time[r]
        for j in range(R):
            if ing_item[r, j] > 0:
                m_ing[m, j] = _local(local_item, ing_item[r, j])
                m_ing_amt[m, j] = ing_amount[r, j]
            if prod_item[r, j] > 0:
                m_prod[m, j] = _local(local_item, prod_item[r, j])
                m_prod_amt[m, j] = prod_amount[r, j]
    # inserters grouped by what they touch
    pick_tile = np.full(n_ins, -1, np.int64)
    pick_mach = np.full(n_ins, -1, np.int64)
    drop_lane = np.full(n_ins, -1, np.int64)
    drop_mach = np.full(n_ins, -1, np.int64)
    for i in range(n_ins):
        if ins_pick_kind[i] == END_LANES or ins_pick_kind[i] == END_SOURCE:
            pick_tile[i] = ins_pick[i]
        elif ins_pick_kind[i] == END_MACHINE:
            pick_mach[i] = ins_pick[i]
        if ins_drop_kind[i] == END_LANES:
            drop_lane[i] = ins_drop[i]
        elif ins_drop_kind[i] == END_MACHINE:
            drop_mach[i] = ins_drop[i]
    pt_start, pt_list = csr(pick_tile, N)
    pm_start, pm_list = csr(pick_mach, M)
    dl_start, dl_list = csr(drop_lane, L)
    dm_start, dm_list = csr(drop_mach, M)
    # which items each inserter can carry at all
    ins_wants = np.zeros((n_ins, K), np.bool_)
    for i in range(n_ins):
        if ins_pick_kind[i] == END_NONE or ins_drop_kind[i] == END_NONE:
            continue
        for k in range(K):
            ok = True
            if ins_drop_kind[i] == END_MACHINE:
                ok = _needs(m_ing, ins_drop[i], k)
            if ins_pick_kind[i] == END_MACHINE:
                ok = ok and _makes(m_prod, ins_pick[i], k)
            elif ins_pick_kind[i] == END_SOURCE:
                ok = ok and tile_item[ins_pick[i]] == k
            ins_wants[i, k] = ok

    scratch = np.zeros((3, K), np.float64)  # per-item work rows the passes reuse
    tiles = np.empty(2, np.int64)
    g = (ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, machine_of, order,
         ins_rate, pt_start, pt_list, pm_start, pm_list, dl_start, dl_list, dm_start, dm_list,
         m_ing, m_ing_amt, m_prod, m_prod_amt, m_cap, drop_lane, drop_mach)  # fmt: skip

    # ---- free running: which items reach which lanes, and clogs -------------------
    avail = np.zeros((L, K), np.float64)
    accK = np.full((L, K), LANE, np.float64)
    accT = np.full(L, LANE, np.float64)
    dem = np.zeros((n_ins, K), np.float64)
    offer = np.zeros((n_ins, K), np.float64)
    pot = np.zeros(L, np.float64)
    free_offer = np.zeros((n_ins, K), np.float64)
    edge_flow = np.zeros((L, K), np.float64)
    jroom = np.zeros(L, np.float64)
    m_accept = np.zeros((M, K), np.float64)
    for i in range(n_ins):
        for k in range(K):
            if ins_wants[i, k]:
                dem[i, k] = ins_rate[i]
    clogged[:] = False
    drains = np.zeros((L, K), np.bool_)
    m_drains = np.zeros(M, np.bool_)
    # One item and no machines: nothing can clog (a lane whose only item cannot leave
    # takes nothing anyway), so the free run would change nothing.
    needs_free_run = M > 0 or K > 1
    for _round in range(CLOG_ROUNDS if needs_free_run else 0):
        inflow[:, :] = 0.0
        avail[:, :] = 0.0
        ins_take[:, :] = 0.0
        for _sweep in range(1 if acyclic else FREE_SWEEPS):
            _forward(True, g, accK, accT, jroom, dem, clogged, pot,
                     inflow, avail, edge_flow, ins_take, offer, m_craft, scratch, tiles)  # fmt: skip
        # a machine that never gets one of its ingredients never crafts, so it takes nothing
        m_fed = np.ones(M, np.bool_)
        for m in range(M):
            for j in range(R):
                k = m_ing[m, j]
                if k < 0:
                    continue
                if _delivered(m, k, dm_start, dm_list, ins_take) <= EPS:
                    m_fed[m] = False
        _drainable(ent, lane_ok, lane_out, partner, order, pt_start, pt_list, pm_start, pm_list, ins_drop_kind,
                   ins_drop, m_prod, m_fed, machine_of, ins_wants, clogged, drains, m_drains)  # fmt: skip
        changed = False
        for lane in range(L):
            if not lane_ok[lane] or clogged[lane] or ent[lane // 2] == SOURCE:
                continue
            for k in range(K):
                if inflow[lane, k] > EPS and not drains[lane, k]:
                    clogged[lane] = True
                    changed = True
                    break
        if not changed:
            break
    # what inserters find at their pickup while nothing backs up: a floor for the supply
    # a machine counts on, so a machine starved by its own low demand can still ask for more
    free_offer[:, :] = offer
    # an inserter carries only items that reach its pickup and can leave from its drop
    for i in range(n_ins if needs_free_run else 0):
        for k in range(K):
            if not ins_wants[i, k]:
                continue
            if not _ins_drains(i, k, ins_drop_kind, ins_drop, drains, m_drains, clogged):
                ins_wants[i, k] = False
            elif ins_pick_kind[i] == END_LANES:
                t = ins_pick[i]
                if inflow[2 * t, k] + inflow[2 * t + 1, k] <= EPS:
                    ins_wants[i, k] = False

    # ---- steady state ---------------------------------------------------------------
    inflow[:, :] = 0.0
    avail[:, :] = 0.0
    edge_flow[:, :] = 0.0
    ins_take[:, :] = 0.0
    pot[:] = 0.0
    # acceptances grow from nothing: around a loop the least fixed point is the true one
    # (a loop with no way out takes nothing)
    accK[:, :] = 0.0
    accT[:] = 0.0
    prev = np.zeros((L, K), np.float64)
    for i in range(n_ins):  # optimistic start: every inserter could move its full rate
        for k in range(K):
            offer[i, k] = ins_rate[i] if ins_wants[i, k] else 0.0
    last_accK = np.full((L, K), -1.0, np.float64)
    last_accT = np.full(L, -1.0, np.float64)
    last_dem = np.full((n_ins, K), -1.0, np.float64)
    iterations = 0
    # Plain belts, undergrounds, sources and sinks without merges: one backward pass is
    # already exact (nothing depends on flows), so one forward pass is the answer.
    single_pass = acyclic and M == 0 and n_ins == 0
    for lane in range(L):
        if not single_pass:
            break
        if lane_ok[lane] and (partner[lane // 2] >= 0 or feed[lane, 1] >= 0 or feed_pri[lane, 0] != 0):
            single_pass = False
    for it in range(1 if single_pass else MAX_ITERATIONS):
        iterations = it + 1
        _backward(g, ins_wants, clogged, pot, inflow, edge_flow, ins_take, offer, free_offer, accK, accT,
                  jroom, dem, m_accept, scratch, tiles)  # fmt: skip
        # the forward pass is a function of what the backward pass found: if that did not
        # change, the flows already are the steady state
        unchanged = max(_max_change(accK, last_accK), _max_change(accT, last_accT), _max_change(dem, last_dem))
        if it > 0 and unchanged <= 1e-12:
            break
        last_accK[:, :] = accK
        last_accT[:] = accT
        last_dem[:, :] = dem
        prev[:, :] = inflow
        _forward(False, g, accK, accT, jroom, dem, clogged, pot,
                 inflow, avail, edge_flow, ins_take, offer, m_craft, scratch, tiles)  # fmt: skip
        if it > 0 and _max_change(inflow, prev) < 1e-10:
            break
    return iterations


@njit(cache=True, inline="always")
def _max_change(a, b):  # type: ignore[no-untyped-def]
    """Largest absolute difference between two arrays of one shape."""
    a = a.ravel()
    b = b.ravel()
    change = 0.0
    for i in range(a.shape[0]):
        change = max(change, abs(a[i] - b[i]))
    return change


@njit(cache=True, inline="always")
def _delivered(m, k, dm_start, dm_list, ins_take):  # type: ignore[no-untyped-def]
    """Item k that machine m's input inserters bring it, per second."""
    total = 0.0
    for q in range(dm_start[m], dm_start[m + 1]):
        total += ins_take[dm_list[q], k]
    return total


@njit(cache=True, inline="always")
def _local(local_item, catalog_id):  # type: ignore[no-untyped-def]
    for k in range(local_item.shape[0]):
        if local_item[k] == catalog_id:
            return k
    return -1


@njit(cache=True, inline="always")
def _needs(m_ing, m, k):  # type: ignore[no-untyped-def]
    for j in range(m_ing.shape[1]):
        if m_ing[m, j] == k:
            return True
    return False


@njit(cache=True, inline="always")
def _makes(m_prod, m, k):  # type: ignore[no-untyped-def]
    for j in range(m_prod.shape[1]):
        if m_prod[m, j] == k:
            return True
    return False


@njit(cache=True, inline="always")
def _ins_drains(i, k, ins_drop_kind, ins_drop, drains, m_drains, clogged):  # type: ignore[no-untyped-def]
    if ins_drop_kind[i] == END_MACHINE:
        return m_drains[ins_drop[i]]
    if ins_drop_kind[i] == END_LANES:
        return (not clogged[ins_drop[i]]) and drains[ins_drop[i], k]
    return False


@_uncounted
def _drainable(  # type: ignore[no-untyped-def]
    ent, lane_ok, lane_out, partner, order, pt_start, pt_list, pm_start, pm_list,
    ins_drop_kind, ins_drop, m_prod, m_fed, machine_of, ins_wants, clogged, drains, m_drains,
):  # fmt: skip
    """Least fixed point: can item k leave lane l for somewhere that takes it? Nodes are
    visited downstream first, so an acyclic layout settles in one sweep (plus a check)."""
    K = drains.shape[1]
    drains[:, :] = False
    m_drains[:] = False
    changed = True
    while changed:
        changed = False
        for oi in range(order.shape[0] - 1, -1, -1):
            v = order[oi]
            if ent[v] == ASSEMBLER:
                # a machine drains when each product has an inserter taking it somewhere that drains
                m = machine_of[v]
                if m_drains[m] or not m_fed[m]:
                    continue
                ok = False
                for j in range(m_prod.shape[1]):
                    p = m_prod[m, j]
                    if p < 0:
                        continue
                    taken = False
                    for q in range(pm_start[m], pm_start[m + 1]):
                        i = pm_list[q]
                        if ins_wants[i, p] and _ins_drains(i, p, ins_drop_kind, ins_drop, drains, m_drains, clogged):
                            taken = True
                            break
                    ok = taken
                    if not taken:
                        break
                if ok:
                    m_drains[m] = True
                    changed = True
                continue
            for ti in range(2):
                t = v if ti == 0 else partner[v]
                if t < 0:
                    continue
                for side in range(2):
                    lane = 2 * t + side
                    if clogged[lane]:
                        continue
                    for k in range(K):
                        if drains[lane, k]:
                            continue
                        ok = ent[t] == SINK
                        d = lane_out[lane]
                        if not ok and d >= 0 and not clogged[d] and drains[d, k]:
                            ok = True
                        if not ok and partner[t] >= 0:
                            # a splitter lane can leave through the other output too
                            d = lane_out[2 * partner[t] + side]
                            if d >= 0 and not clogged[d] and drains[d, k]:
                                ok = True
                        if not ok:
                            for q in range(pt_start[t], pt_start[t + 1]):
                                i = pt_list[q]
                                if ins_wants[i, k] and _ins_drains(
                                    i, k, ins_drop_kind, ins_drop, drains, m_drains, clogged
                                ):
                                    ok = True
                                    break
                        if ok:
                            drains[lane, k] = True
                            changed = True


@_uncounted
def _forward(  # type: ignore[no-untyped-def]
    free, g, accK, accT, jroom, dem, clogged, pot,
    inflow, avail, edge_flow, ins_take, offer, m_craft, scratch, tiles,
):  # fmt: skip
    """Hand supply downstream in topological order. `free`: nothing backs up (every lane
    takes up to its capacity, every inserter its rate); else the acceptances bound it.

    `pot` (steady only) is each lane's potential: what it hands on, plus what a
    splitter upstream would send it on top (all that the splitter's other output
    refused). A lower-priority feeder only gets the room a higher one could not fill
    even then, so a splitter whose outputs meet again overflows into the one with
    priority at once instead of creeping towards it."""
    (ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, machine_of, order,
     ins_rate, pt_start, pt_list, pm_start, pm_list, dl_start, dl_list, dm_start, dm_list,
     m_ing, m_ing_amt, m_prod, m_prod_amt, m_cap, drop_lane, drop_mach) = g  # fmt: skip
    K = inflow.shape[1]
    R = m_ing.shape[1]
    used = scratch[0]
    cls_offer = scratch[1]
    give = scratch[2]
    for v in order:
        if ent[v] == ASSEMBLER:
            m = machine_of[v]
            craft = m_cap[m]
            potential = m_cap[m]
            for j in range(R):
                k = m_ing[m, j]
                if k < 0:
                    continue
                supply = _delivered(m, k, dm_start, dm_list, ins_take)
                craft = min(craft, supply / m_ing_amt[m, j])
                potential = min(potential, supply / m_ing_amt[m, j])
            if not free:
                for j in range(R):
                    k = m_prod[m, j]
                    if k < 0:
                        continue
                    drain = 0.0
                    for q in range(pm_start[m], pm_start[m + 1]):
                        drain += dem[pm_list[q], k]
                    craft = min(craft, drain / m_prod_amt[m, j])
            m_craft[m] = craft
            for q in range(pm_start[m], pm_start[m + 1]):
                i = pm_list[q]
                for k in range(K):
                    ins_take[i, k] = 0.0
                    offer[i, k] = 0.0
            for j in range(R):
                k = m_prod[m, j]
                if k < 0:
                    continue
                made = craft * m_prod_amt[m, j]
                want_total = 0.0
                for q in range(pm_start[m], pm_start[m + 1]):
                    i = pm_list[q]
                    want_total += _want(free, i, k, dem, ins_rate)
                for q in range(pm_start[m], pm_start[m + 1]):
                    i = pm_list[q]
                    w = _want(free, i, k, dem, ins_rate)
                    if want_total > 0.0:
                        ins_take[i, k] = w * min(1.0, made / want_total)
                    if w > 0.0 or free:
                        offer[i, k] = min(ins_rate[i], potential * m_prod_amt[m, j])
            for q in range(pm_start[m], pm_start[m + 1]):
                _cap_inserter(pm_list[q], ins_take, ins_rate)
            continue

        n_tiles = 1
        tiles[0] = v
        if partner[v] >= 0:
            n_tiles = 2
            tiles[1] = partner[v]
        for ti in range(n_tiles):
            t = tiles[ti]
            for side in range(2):
                lane = 2 * t + side
                for k in range(K):
                    inflow[lane, k] = 0.0
                if ent[t] == SOURCE:
                    k0 = tile_item[t]
                    if k0 >= 0:
                        inflow[lane, k0] = LANE if free else min(LANE, accK[lane, k0], accT[lane])
                    pot[lane] = inflow[lane, k0] if k0 >= 0 else 0.0
                    continue
                excess = 0.0
                capT = 0.0 if clogged[lane] else (LANE if free else accT[lane])
                usedT = 0.0
                for k in range(K):
                    used[k] = 0.0
                held_back = False
                for cls in range(2):
                    # total offered by this priority class, per item
                    n_cls = 0
                    for k in range(K):
                        cls_offer[k] = 0.0
                    for j in range(feed.shape[1]):
                        s = feed[lane, j]
                        if s >= 0 and feed_pri[lane, j] == cls:
                            n_cls += 1
                            for k in range(K):
                                cls_offer[k] += avail[s, k]
                    if n_cls == 0:
                        continue
                    total = 0.0
                    for k in range(K):
                        room_k = LANE if free else accK[lane, k]
                        give[k] = 0.0 if held_back else max(0.0, min(cls_offer[k], room_k - used[k]))
                        total += give[k]
                    room_t = max(0.0, capT - usedT)
                    scale = 1.0 if total <= room_t else room_t / total
                    for k in range(K):
                        give[k] *= scale
                        used[k] += give[k]
                        usedT += give[k]
                    for j in range(feed.shape[1]):
                        s = feed[lane, j]
                        if s >= 0 and feed_pri[lane, j] == cls:
                            back = False
                            excess += pot[s]
                            for k in range(K):
                                share = avail[s, k] * give[k] / cls_offer[k] if cls_offer[k] > 0.0 else 0.0
                                edge_flow[s, k] = share
                                excess -= share
                                if avail[s, k] > share + EPS:
                                    back = True
                            if back and free:
                                held_back = True
                # inserter drops: lowest priority, into the room left
                n_drop = dl_start[lane + 1] - dl_start[lane]
                if n_drop > 0:
                    total = 0.0
                    for k in range(K):
                        cls_offer[k] = 0.0
                        for q in range(dl_start[lane], dl_start[lane + 1]):
                            cls_offer[k] += ins_take[dl_list[q], k]
                        room_k = LANE if free else accK[lane, k]
                        give[k] = 0.0 if held_back else max(0.0, min(cls_offer[k], room_k - used[k]))
                        total += give[k]
                    room_t = max(0.0, capT - usedT)
                    scale = 1.0 if total <= room_t else room_t / total
                    for k in range(K):
                        used[k] += give[k] * scale
                        usedT += give[k] * scale
                for k in range(K):
                    inflow[lane, k] = used[k]
                pot[lane] = 0.0 if clogged[lane] else min(LANE, usedT + max(0.0, excess))
            _taps(free, t, ent, tile_item, pt_start, pt_list, ins_rate, dem, inflow, avail, ins_take, offer)
            for side in range(2):
                lane = 2 * t + side
                if ent[t] == SINK:
                    pot[lane] = 0.0
                    for k in range(K):
                        avail[lane, k] = 0.0
                elif ent[t] != SOURCE:
                    taken = 0.0
                    for k in range(K):
                        taken += inflow[lane, k] - avail[lane, k]
                    pot[lane] = max(0.0, pot[lane] - taken)
        if n_tiles == 2:
            _split(free, tiles[0], tiles[1], lane_out, clogged, jroom, avail, pot, edge_flow)


@njit(cache=True, inline="always")
def _want(free, i, k, dem, ins_rate):  # type: ignore[no-untyped-def]
    if free:
        return ins_rate[i] if dem[i, k] > 0.0 else 0.0
    return dem[i, k]


@njit(cache=True, inline="always")
def _cap_inserter(i, ins_take, ins_rate):  # type: ignore[no-untyped-def]
    total = 0.0
    for k in range(ins_take.shape[1]):
        total += ins_take[i, k]
    if total > ins_rate[i]:
        for k in range(ins_take.shape[1]):
            ins_take[i, k] *= ins_rate[i] / total


@njit(cache=True, inline="always")
def _taps(free, t, ent, tile_item, pt_start, pt_list, ins_rate, dem, inflow, avail, ins_take, offer):  # type: ignore[no-untyped-def]
    """Inserters picking from tile t take first; the rest of each lane is `avail`."""
    K = inflow.shape[1]
    a = 2 * t
    b = 2 * t + 1
    for k in range(K):
        avail[a, k] = inflow[a, k]
        avail[b, k] = inflow[b, k]
    if pt_start[t] == pt_start[t + 1]:
        return
    if ent[t] == SOURCE:
        for q in range(pt_start[t], pt_start[t + 1]):
            i = pt_list[q]
            for k in range(K):
                ins_take[i, k] = _want(free, i, k, dem, ins_rate)
                offer[i, k] = ins_rate[i] if k == tile_item[t] else 0.0
            _cap_inserter(i, ins_take, ins_rate)
        return
    for k in range(K):
        supply = inflow[a, k] + inflow[b, k]
        want_total = 0.0
        for q in range(pt_start[t], pt_start[t + 1]):
            want_total += _want(free, pt_list[q], k, dem, ins_rate)
        frac = 0.0 if want_total <= 0.0 else min(1.0, supply / want_total)
        taken = 0.0
        for q in range(pt_start[t], pt_start[t + 1]):
            i = pt_list[q]
            ins_take[i, k] = _want(free, i, k, dem, ins_rate) * frac
            offer[i, k] = min(ins_rate[i], supply) if dem[i, k] > 0.0 or free else 0.0
            taken += ins_take[i, k]
        if supply > 0.0:
            avail[a, k] = inflow[a, k] - taken * inflow[a, k] / supply
            avail[b, k] = inflow[b, k] - taken * inflow[b, k] / supply
    for q in range(pt_start[t], pt_start[t + 1]):
        _cap_inserter(pt_list[q], ins_take, ins_rate)


@njit(cache=True, inline="always")
def _split(free, t, p, lane_out, clogged, jroom, avail, pot, edge_flow):  # type: ignore[no-untyped-def]
    """A splitter: per lane side, merge both inputs and send half to each output,
    the overflow of one to the other. An output's potential is all the splitter could
    send it: everything the other output did not take last time."""
    K = avail.shape[1]
    for side in range(2):
        a = 2 * t + side
        b = 2 * p + side
        total = 0.0
        for k in range(K):
            total += avail[a, k] + avail[b, k]
        if free:
            # running freely an output takes all it can, unless it leads nowhere or is clogged
            room_a = LANE if lane_out[a] >= 0 and not clogged[lane_out[a]] else 0.0
            room_b = LANE if lane_out[b] >= 0 and not clogged[lane_out[b]] else 0.0
        else:
            room_a = jroom[a]
            room_b = jroom[b]
        x_a = min(room_a, max(total / 2.0, total - room_b))
        x_b = min(room_b, total - x_a)
        taken_a = 0.0
        taken_b = 0.0
        for k in range(K):
            s_k = avail[a, k] + avail[b, k]
            avail[a, k] = s_k * x_a / total if total > 0.0 else 0.0
            avail[b, k] = s_k * x_b / total if total > 0.0 else 0.0
            taken_a += edge_flow[a, k]
            taken_b += edge_flow[b, k]
        both = pot[a] + pot[b]
        pot[a] = 0.0 if lane_out[a] < 0 else min(LANE, max(x_a, both - (taken_b if lane_out[b] >= 0 else 0.0)))
        pot[b] = 0.0 if lane_out[b] < 0 else min(LANE, max(x_b, both - (taken_a if lane_out[a] >= 0 else 0.0)))


@_uncounted
def _backward(  # type: ignore[no-untyped-def]
    g, ins_wants, clogged, pot, inflow, edge_flow, ins_take, offer, free_offer, accK, accT, jroom, dem, m_accept,
    scratch, tiles,
):  # fmt: skip
    """How much each lane (per item and in total), machine and inserter can take,
    from what flowed in the last forward pass. Reverse topological order."""
    (ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, machine_of, order,
     ins_rate, pt_start, pt_list, pm_start, pm_list, dl_start, dl_list, dm_start, dm_list,
     m_ing, m_ing_amt, m_prod, m_prod_amt, m_cap, drop_lane, drop_mach) = g  # fmt: skip
    K = inflow.shape[1]
    R = m_ing.shape[1]
    room = scratch[0]
    room2 = scratch[1]
    tap = scratch[2]
    for oi in range(order.shape[0] - 1, -1, -1):
        v = order[oi]
        if ent[v] == ASSEMBLER:
            m = machine_of[v]
            for q in range(pm_start[m], pm_start[m + 1]):
                _demand(pm_list[q], g, ins_wants, pot, inflow, edge_flow, ins_take, accK, accT, dem, m_accept)
            craft = m_cap[m]
            for j in range(R):
                k = m_prod[m, j]
                if k >= 0:
                    drain = 0.0
                    for q in range(pm_start[m], pm_start[m + 1]):
                        drain += dem[pm_list[q], k]
                    craft = min(craft, drain / m_prod_amt[m, j])
            for j in range(R):
                k = m_ing[m, j]
                if k < 0:
                    continue
                c = craft
                for j2 in range(R):
                    k2 = m_ing[m, j2]
                    if k2 < 0 or j2 == j:
                        continue
                    supply = 0.0
                    for q in range(dm_start[m], dm_start[m + 1]):
                        supply += max(offer[dm_list[q], k2], free_offer[dm_list[q], k2])
                    c = min(c, supply / m_ing_amt[m, j2])
                m_accept[m, k] = c * m_ing_amt[m, j]
            continue

        n_tiles = 1
        tiles[0] = v
        if partner[v] >= 0:
            n_tiles = 2
            tiles[1] = partner[v]
        for ti in range(n_tiles):
            t = tiles[ti]
            for q in range(pt_start[t], pt_start[t + 1]):
                _demand(pt_list[q], g, ins_wants, pot, inflow, edge_flow, ins_take, accK, accT, dem, m_accept)
        if n_tiles == 2:
            # a splitter: what each output can pass on, then each input's fair share
            for side in range(2):
                a = 2 * tiles[0] + side
                b = 2 * tiles[1] + side
                room_ta = _edge_room(a, lane_out, feed, feed_pri, pot, edge_flow, accK, accT, room)
                room_tb = _edge_room(b, lane_out, feed, feed_pri, pot, edge_flow, accK, accT, room2)
                jroom[a] = room_ta
                jroom[b] = room_tb
                both_t = room_ta + room_tb
                for k in range(K):
                    room[k] += room2[k]
                for lane, other in ((a, b), (b, a)):
                    other_t = 0.0
                    for k in range(K):
                        other_t += inflow[other, k]
                    share_t = max(both_t / 2.0, both_t - other_t)
                    _tap_room(lane // 2, lane, pt_start, pt_list, dem, inflow, tap)
                    tap_t = 0.0
                    for k in range(K):
                        tap_t += tap[k]
                    for k in range(K):
                        share_k = max(room[k] / 2.0, room[k] - inflow[other, k])
                        accK[lane, k] = 0.0 if clogged[lane] else min(LANE, tap[k] + share_k)
                    accT[lane] = 0.0 if clogged[lane] else min(LANE, tap_t + share_t)
            continue
        t = v
        for side in range(2):
            lane = 2 * t + side
            if ent[t] == SINK:
                for k in range(K):
                    accK[lane, k] = LANE
                accT[lane] = LANE
                continue
            if clogged[lane]:
                for k in range(K):
                    accK[lane, k] = 0.0
                accT[lane] = 0.0
                continue
            if ent[t] == SOURCE:
                # a source's lanes pass on what the tile ahead takes; inserters take from the
                # endless supply, not from its lanes
                for k in range(K):
                    tap[k] = 0.0
            else:
                _tap_room(t, lane, pt_start, pt_list, dem, inflow, tap)
            room_t = _edge_room(lane, lane_out, feed, feed_pri, pot, edge_flow, accK, accT, room)
            tap_t = 0.0
            for k in range(K):
                tap_t += tap[k]
            for k in range(K):
                accK[lane, k] = min(LANE, tap[k] + room[k])
            accT[lane] = min(LANE, tap_t + room_t)


@njit(cache=True, inline="always")
def _tap_room(t, lane, pt_start, pt_list, dem, inflow, tap):  # type: ignore[no-untyped-def]
    """What the inserters picking from tile t can take out of `lane`, per item: their
    demand less what the other lane of the tile gives them (at most half of it)."""
    K = inflow.shape[1]
    other = lane ^ 1
    for k in range(K):
        want = 0.0
        for q in range(pt_start[t], pt_start[t + 1]):
            want += dem[pt_list[q], k]
        tap[k] = want - min(inflow[other, k], want / 2.0)


@njit(cache=True, inline="always")
def _edge_room(lane, lane_out, feed, feed_pri, pot, edge_flow, accK, accT, room):  # type: ignore[no-untyped-def]
    """Room the lane's out edge has for it, per item (into `room`) and in total (returned):
    the destination's acceptance less what higher-priority feeders bring (nothing if one
    of them is held back), shared fairly with feeders of the same priority."""
    K = room.shape[0]
    d = lane_out[lane]
    for k in range(K):
        room[k] = 0.0
    if d < 0:
        return 0.0
    pri = -1
    for j in range(feed.shape[1]):
        if feed[d, j] == lane:
            pri = feed_pri[d, j]
    higher_t = 0.0
    same_t = 0.0
    n_same = 1
    for j in range(feed.shape[1]):
        s = feed[d, j]
        if s < 0 or s == lane:
            continue
        if feed_pri[d, j] < pri:
            flow = 0.0
            for k in range(K):
                flow += edge_flow[s, k]
            higher_t += max(flow, pot[s])
        elif feed_pri[d, j] == pri:
            n_same += 1
    base_t = accT[d] - higher_t
    for j in range(feed.shape[1]):
        s = feed[d, j]
        if s >= 0 and s != lane and feed_pri[d, j] == pri:
            for k in range(K):
                same_t += edge_flow[s, k]
    room_t = max(0.0, max(base_t / n_same, base_t - same_t))
    for k in range(K):
        higher = 0.0
        same = 0.0
        for j in range(feed.shape[1]):
            s = feed[d, j]
            if s < 0 or s == lane:
                continue
            if feed_pri[d, j] < pri:
                higher += edge_flow[s, k]
            elif feed_pri[d, j] == pri:
                same += edge_flow[s, k]
        base = accK[d, k] - higher
        room[k] = max(0.0, max(base / n_same, base - same))
    return room_t


@njit(cache=True, inline="always")
def _demand(i, g, ins_wants, pot, inflow, edge_flow, ins_take, accK, accT, dem, m_accept):  # type: ignore[no-untyped-def]
    """What inserter i can hand on, per item: the room at its drop end, shared fairly
    with the other inserters dropping there, at most its rate in all."""
    (ent, lane_ok, lane_out, lane_out_pri, feed, feed_pri, partner, node_of, tile_item, machine_of, order,
     ins_rate, pt_start, pt_list, pm_start, pm_list, dl_start, dl_list, dm_start, dm_list,
     m_ing, m_ing_amt, m_prod, m_prod_amt, m_cap, drop_lane, drop_mach) = g  # fmt: skip
    K = dem.shape[1]
    total = 0.0
    d_lane = drop_lane[i]
    d_mach = drop_mach[i]
    for k in range(K):
        dem[i, k] = 0.0
        if not ins_wants[i, k]:
            continue
        if d_mach >= 0:
            base = m_accept[d_mach, k]
            others = 0.0
            n = 0
            for q in range(dm_start[d_mach], dm_start[d_mach + 1]):
                i2 = dm_list[q]
                if ins_wants[i2, k]:
                    n += 1
                    if i2 != i:
                        others += ins_take[i2, k]
        else:
            belt_in = 0.0
            belt_t = 0.0
            for j in range(feed.shape[1]):
                s = feed[d_lane, j]
                if s >= 0:
                    belt_in += edge_flow[s, k]
                    flow = 0.0
                    for k2 in range(K):
                        flow += edge_flow[s, k2]
                    belt_t += max(flow, pot[s])
            base = min(accK[d_lane, k] - belt_in, accT[d_lane] - belt_t)
            others = 0.0
            n = 0
            for q in range(dl_start[d_lane], dl_start[d_lane + 1]):
                i2 = dl_list[q]
                n += 1
                if i2 != i:
                    others += ins_take[i2, k]
        base = max(0.0, base)
        share = max(base / max(n, 1), base - others)
        dem[i, k] = max(0.0, min(ins_rate[i], share))
        total += dem[i, k]
    if total > ins_rate[i]:
        for k in range(K):
            dem[i, k] *= ins_rate[i] / total
