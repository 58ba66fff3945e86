"""A slow, plain-Python reference of the mimic, to check the numba kernels against.

Same rules (docs/MIMIC.md) and same solution method as `training/sim`, written the
obvious way: lanes are `(x, y, side)` keys in dicts, inserters and machines are small
dataclasses, items are names, and every neighbour is found by looking at the World.
Nothing here is imported from `training.sim`.

The method, as the kernel (`training/sim/solve.py`) has it:
1. free run: hand supply forward with nothing backed up, to see which items reach
   which lanes; a lane holding an item that cannot leave it is clogged (the
   drainability is a least fixed point); repeat while new clogs appear;
2. steady state: alternate a backward pass (how much each lane, inserter and machine
   accepts) and a forward pass (hand supply on by priority) until nothing changes.

Where MIMIC.md leaves a choice open (fair shares, a splitter output's potential,
tolerances, iteration limits, visiting order around loops) this file follows the
kernel and says so. Sums run in the kernel's order (items by catalog id, feeders
and inserters in row-major order), so results agree to rounding, and the tests can
hold the two to 1e-6 even where a threshold decides a branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import (
    ASSEMBLER_SPEED,
    BELT_LANE_RATE,
    INSERTER_RATE,
    LONG_INSERTER_RATE,
    UNDERGROUND_MAX_DISTANCE,
    Entity,
    UndergroundEnd,
)
from shared_schema.world import Channel, World

Tile = tuple[int, int]
Lane = tuple[int, int, int]  # (x, y, side)
LEFT, RIGHT = 0, 1  # lane sides, relative to the tile's facing
STRAIGHT, SIDE = 0, 1  # feeder priorities: from behind (or the one curve feeder) first

LANE = BELT_LANE_RATE
# Kernel choices (training/sim/solve.py), not in MIMIC.md:
EPS = 1e-9  # "an item reaches a lane" / "a feeder is held back" thresholds
MAX_ITERATIONS = 200  # backward/forward rounds before giving up on convergence
CLOG_ROUNDS = 8  # free runs looking for new clogs
FREE_SWEEPS = 4  # forward sweeps per free run when the graph has a loop
SAME = 1e-12  # acceptances this close count as unchanged
SETTLED = 1e-10  # lane flows moving less than this count as settled

BELT_LIKE = (Entity.BELT, Entity.UNDERGROUND, Entity.SPLITTER, Entity.SOURCE, Entity.SINK)


def add_up(values) -> float:  # type: ignore[no-untyped-def]
    """Left-to-right float sum (the kernel's loops; Python 3.12's `sum` compensates)."""
    total = 0.0
    for v in values:
        total += v
    return total


@dataclass(eq=False)
class Inserter:
    tile: Tile
    rate: float
    pick_kind: str | None  # "lanes" (a belt-like tile), "source", "machine", or None
    pick: Tile | None  # the tile picked from (a machine's anchor for "machine")
    drop_kind: str | None  # "lanes", "machine", or None
    drop_lane: Lane | None
    drop_machine: Tile | None
    wants: list[str] = field(default_factory=list)  # items it may carry, catalog order


@dataclass(eq=False)
class Machine:
    anchor: Tile
    cap: float  # crafts/s at most: speed / recipe time (0 without a recipe)
    ingredients: list[tuple[str, float]]  # recipe order
    products: list[tuple[str, float]]
    pickers: list[Inserter] = field(default_factory=list)  # take its products
    droppers: list[Inserter] = field(default_factory=list)  # bring it ingredients


@dataclass
class Layout:
    """The lane graph of a world, built by looking at its tiles."""

    world: World
    items: list[str]  # every item a source, sink or recipe names, in catalog-id order
    lanes: list[Lane]  # both lanes of every belt-like tile, row-major
    out: dict[Lane, Lane]  # where a lane hands its items on
    feeders: dict[Lane, list[tuple[Lane, int]]]  # (feeder lane, priority), row-major
    partner: dict[Tile, Tile]  # the other tile of a splitter
    item_at: dict[Tile, str | None]  # what a source emits / a sink counts
    inserters: list[Inserter]
    machines: dict[Tile, Machine]  # by anchor
    pickers_at: dict[Tile, list[Inserter]]  # inserters picking from a belt-like tile or a source
    droppers_at: dict[Lane, list[Inserter]]
    order: list[Tile] = field(default_factory=list)  # nodes (anchors), upstream first

    def kind(self, t: Tile) -> Entity:
        return self.world.entity(*t)

    def node_tiles(self, v: Tile) -> list[Tile]:
        return [v, self.partner[v]] if v in self.partner else [v]


# ---- building the graph ------------------------------------------------------------


def _on_grid(world: World, t: Tile) -> bool:
    return 0 <= t[0] < world.width and 0 <= t[1] < world.height


def _step(t: Tile, d: Direction, n: int = 1) -> Tile:
    return t[0] + d.dx * n, t[1] + d.dy * n


def _ug_end(world: World, t: Tile) -> UndergroundEnd:
    return UndergroundEnd(int(world.data[Channel.UNDERGROUND, t[1], t[0]]))


def _points_ahead(world: World, t: Tile) -> bool:
    """MIMIC.md "Tiles and lanes": belts, exits, splitter tiles and sources push onto
    the tile ahead; entrances push underground, sinks nowhere."""
    kind = world.entity(*t)
    return kind in (Entity.BELT, Entity.SPLITTER, Entity.SOURCE) or (
        kind == Entity.UNDERGROUND and _ug_end(world, t) == UndergroundEnd.EXIT
    )


def _nearest_underground(world: World, t: Tile, facing: Direction, ahead: bool, end: UndergroundEnd) -> Tile | None:
    """The nearest `end` facing `facing`, 1..5 tiles ahead of (or behind) t; anything
    else on the way does not interfere."""
    d = facing if ahead else facing.opposite
    for n in range(1, UNDERGROUND_MAX_DISTANCE + 1):
        u = _step(t, d, n)
        if not _on_grid(world, u):
            return None
        if world.entity(*u) == Entity.UNDERGROUND and _ug_end(world, u) == end and world.facing(*u) == facing:
            return u
    return None


def _underground_pairs(world: World) -> dict[Tile, Tile]:
    """MIMIC.md "Underground pairing": mutual nearest entrance and exit."""
    pairs: dict[Tile, Tile] = {}
    for kind, x, y in world.entities():
        if kind != Entity.UNDERGROUND or _ug_end(world, (x, y)) != UndergroundEnd.ENTRANCE:
            continue
        f = world.facing(x, y)
        exit_ = _nearest_underground(world, (x, y), f, True, UndergroundEnd.EXIT)
        if exit_ and _nearest_underground(world, exit_, f, False, UndergroundEnd.ENTRANCE) == (x, y):
            pairs[(x, y)] = exit_
            pairs[exit_] = (x, y)
    return pairs


def _side_towards(facing: Direction, direction: Direction) -> int:
    """Which lane of a tile facing `facing` lies towards `direction` (a side of it)."""
    return LEFT if direction == facing.turned(-1) else RIGHT


def build_layout(world: World) -> Layout:
    catalog = load_catalog()
    tiles = [(x, y) for y in range(world.height) for x in range(world.width)]

    def item_id(t: Tile) -> int:
        return int(world.data[Channel.ITEM, t[1], t[0]])

    # items: what sources, sinks and the recipes of assemblers name
    ids: set[int] = set()
    machines: dict[Tile, Machine] = {}
    for kind, x, y in world.entities():
        if kind in (Entity.SOURCE, Entity.SINK) and item_id((x, y)) > 0:
            ids.add(item_id((x, y)))
        elif kind == Entity.ASSEMBLER:
            recipe = catalog.recipes[item_id((x, y))]
            if recipe is None:
                machines[(x, y)] = Machine((x, y), 0.0, [], [])
                continue
            for name, _ in (*recipe.ingredients, *recipe.products):
                ids.add(catalog.item_id(name))
            machines[(x, y)] = Machine(
                (x, y), ASSEMBLER_SPEED / recipe.time, list(recipe.ingredients), list(recipe.products)
            )
    items = [catalog.items[i] for i in sorted(ids)]

    belt_tiles = [t for t in tiles if world.entity(*t) in BELT_LIKE]
    item_at = {
        t: (catalog.items[item_id(t)] if item_id(t) > 0 else None)
        for t in belt_tiles
        if world.entity(*t) in (Entity.SOURCE, Entity.SINK)
    }
    partner: dict[Tile, Tile] = {}
    for kind, x, y in world.entities():
        if kind == Entity.SPLITTER:
            # north/south splitters are two tiles side by side, east/west one above the other
            other = (x + 1, y) if world.facing(x, y) in (Direction.NORTH, Direction.SOUTH) else (x, y + 1)
            partner[(x, y)], partner[other] = other, (x, y)
    pairs = _underground_pairs(world)

    # Who points into whom, by where the feeder stands relative to the receiver's facing.
    behind_count: dict[Tile, int] = {}
    side_count: dict[Tile, int] = {}
    for t in tiles:
        if not _points_ahead(world, t):
            continue
        u = _step(t, world.facing(*t))
        if not _on_grid(world, u) or world.entity(*u) not in BELT_LIKE:
            continue
        f, g = world.facing(*t), world.facing(*u)
        if f == g:
            behind_count[u] = behind_count.get(u, 0) + 1
        elif f != g.opposite:
            side_count[u] = side_count.get(u, 0) + 1

    lanes = [(x, y, side) for (x, y) in belt_tiles for side in (LEFT, RIGHT)]
    out: dict[Lane, Lane] = {}
    feeders: dict[Lane, list[tuple[Lane, int]]] = {lane: [] for lane in lanes}

    def connect(src: Lane, dst: Lane, priority: int) -> None:
        out[src] = dst
        feeders[dst].append((src, priority))

    # MIMIC.md "What a tile accepts", one feeder tile at a time (row-major)
    for t in belt_tiles:
        kind = world.entity(*t)
        if kind == Entity.SINK:
            continue  # sinks consume
        if kind == Entity.UNDERGROUND and _ug_end(world, t) == UndergroundEnd.ENTRANCE:
            if t in pairs:  # an entrance hands its lanes underground to its exit
                for side in (LEFT, RIGHT):
                    connect((*t, side), (*pairs[t], side), STRAIGHT)
            continue  # an unpaired entrance is a dead end
        f = world.facing(*t)
        u = _step(t, f)
        if not _on_grid(world, u) or world.entity(*u) not in BELT_LIKE or world.entity(*u) == Entity.SOURCE:
            continue  # sources accept nothing
        g = world.facing(*u)
        u_kind = world.entity(*u)
        u_end = _ug_end(world, u) if u_kind == Entity.UNDERGROUND else UndergroundEnd.NONE
        if f == g:  # from behind: straight, except into an exit's hood
            if u_end != UndergroundEnd.EXIT:
                for side in (LEFT, RIGHT):
                    connect((*t, side), (*u, side), STRAIGHT)
            continue
        if f == g.opposite or u_kind == Entity.SPLITTER:
            continue  # head-on, or a splitter's side: no connection
        near = _side_towards(g, f.opposite)  # the feeder stands on that side of u
        if u_kind == Entity.UNDERGROUND:
            # side-load; only the feeder lane over the open half passes: the back half
            # of an entrance, the front half of an exit
            open_half = g.opposite if u_end == UndergroundEnd.ENTRANCE else g
            passing = _side_towards(f, open_half)
            connect((*t, passing), (*u, near), SIDE)
        elif side_count.get(u, 0) == 1 and behind_count.get(u, 0) == 0:
            for side in (LEFT, RIGHT):  # a curve: lanes keep their side
                connect((*t, side), (*u, side), STRAIGHT)
        else:
            for side in (LEFT, RIGHT):  # a side-load: everything onto the near lane
                connect((*t, side), (*u, near), SIDE)

    # MIMIC.md "Inserters": what each end touches
    inserters: list[Inserter] = []
    pickers_at: dict[Tile, list[Inserter]] = {}
    droppers_at: dict[Lane, list[Inserter]] = {}
    for t in tiles:
        kind = world.entity(*t)
        if kind not in (Entity.INSERTER, Entity.LONG_INSERTER):
            continue
        reach = 1 if kind == Entity.INSERTER else 2
        f = world.facing(*t)
        ins = Inserter(
            t, INSERTER_RATE if kind == Entity.INSERTER else LONG_INSERTER_RATE, None, None, None, None, None
        )
        p = _step(t, f.opposite, reach)
        if _on_grid(world, p):
            p_kind = world.entity(*p)
            if p_kind == Entity.SOURCE:
                ins.pick_kind, ins.pick = "source", p
            elif p_kind == Entity.ASSEMBLER:
                ins.pick_kind, ins.pick = "machine", world.anchor(*p)
            elif p_kind in BELT_LIKE and p_kind != Entity.SINK:
                ins.pick_kind, ins.pick = "lanes", p
        d = _step(t, f, reach)
        if _on_grid(world, d):
            d_kind = world.entity(*d)
            if d_kind == Entity.ASSEMBLER:
                ins.drop_kind, ins.drop_machine = "machine", world.anchor(*d)
            elif d_kind in BELT_LIKE and d_kind != Entity.SOURCE:
                g = world.facing(*d)
                # along its path: the right lane; across it: the far lane
                side = RIGHT if g in (f, f.opposite) else _side_towards(g, f)
                ins.drop_kind, ins.drop_lane = "lanes", (*d, side)
        if ins.pick_kind and ins.drop_kind:
            for item in items:
                ok = True
                if ins.drop_kind == "machine":
                    ok = any(name == item for name, _ in machines[ins.drop_machine].ingredients)  # type: ignore[index]
                if ins.pick_kind == "machine":
                    ok = ok and any(name == item for name, _ in machines[ins.pick].products)  # type: ignore[index]
                elif ins.pick_kind == "source":
                    ok = ok and item_at[ins.pick] == item  # type: ignore[index]
                if ok:
                    ins.wants.append(item)
        inserters.append(ins)
        if ins.pick_kind == "machine":
            machines[ins.pick].pickers.append(ins)  # type: ignore[index]
        elif ins.pick_kind:
            pickers_at.setdefault(ins.pick, []).append(ins)  # type: ignore[arg-type]
        if ins.drop_kind == "machine":
            machines[ins.drop_machine].droppers.append(ins)  # type: ignore[index]
        elif ins.drop_kind:
            droppers_at.setdefault(ins.drop_lane, []).append(ins)  # type: ignore[arg-type]

    layout = Layout(world, items, lanes, out, feeders, partner, item_at, inserters, machines, pickers_at, droppers_at)
    layout.order = _topological_order(layout)
    return layout


def _node(layout: Layout, t: Tile) -> Tile:
    """The processing node of a tile: its entity's anchor (a splitter's two tiles and an
    assembler's nine are one node each)."""
    return layout.world.anchor(*t)


def _edges(layout: Layout) -> list[tuple[Tile, Tile]]:
    """Node edges: lanes handing on to another node, then inserters (pick -> drop)."""
    edges = []
    for lane in layout.lanes:
        if lane in layout.out:
            a, b = _node(layout, lane[:2]), _node(layout, layout.out[lane][:2])
            if a != b:
                edges.append((a, b))
    for ins in layout.inserters:
        if ins.pick_kind and ins.drop_kind:
            a = ins.pick if ins.pick_kind == "machine" else _node(layout, ins.pick)  # type: ignore[arg-type]
            b = ins.drop_machine if ins.drop_kind == "machine" else _node(layout, ins.drop_lane[:2])  # type: ignore[index]
            if a != b:
                edges.append((a, b))  # type: ignore[arg-type]
    return edges


def _topological_order(layout: Layout) -> list[Tile]:
    """Reverse postorder of a depth-first search from each node in row-major order,
    successors in edge order. With loops the order decides how the sweeps propagate,
    so this copies the kernel's search exactly (graph.py `_topological_order`)."""
    nodes = [t for t in _all_tiles(layout.world) if _is_node(layout, t)]
    successors: dict[Tile, list[Tile]] = {v: [] for v in nodes}
    for a, b in _edges(layout):
        successors[a].append(b)
    seen: set[Tile] = set()
    post: list[Tile] = []
    for root in nodes:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(successors[root]))]
        while stack:
            v, todo = stack[-1]
            w = next(todo, None)
            if w is None:
                post.append(v)
                stack.pop()
            elif w not in seen:
                seen.add(w)
                stack.append((w, iter(successors[w])))
    return post[::-1]


def _all_tiles(world: World) -> list[Tile]:
    return [(x, y) for y in range(world.height) for x in range(world.width)]


def _is_node(layout: Layout, t: Tile) -> bool:
    kind = layout.kind(t)
    return (kind in BELT_LIKE or kind == Entity.ASSEMBLER) and _node(layout, t) == t


def _is_acyclic(layout: Layout) -> bool:
    position = {v: j for j, v in enumerate(layout.order)}
    return all(position[b] > position[a] for a, b in _edges(layout))


# ---- the solver ---------------------------------------------------------------------


class Solver:
    """The flows of one layout. State is per lane, per inserter and per machine, each a
    dict of item -> items/s where it is per item."""

    def __init__(self, layout: Layout) -> None:
        self.g = layout
        self.items = layout.items
        lanes = layout.lanes
        self.inflow = {lane: self.zeros() for lane in lanes}  # what enters each lane
        self.avail = {lane: self.zeros() for lane in lanes}  # what it hands on, after taps
        self.edge_flow = {lane: self.zeros() for lane in lanes}  # what its out edge carried
        self.pot = dict.fromkeys(lanes, 0.0)  # potential (kernel's `pot`, see `fill_lane`)
        self.acc_item = {lane: dict.fromkeys(self.items, LANE) for lane in lanes}
        self.acc_total = dict.fromkeys(lanes, LANE)
        self.split_room = dict.fromkeys(lanes, 0.0)  # room behind a splitter output
        self.clogged: set[Lane] = set()
        self.drains: set[tuple[Lane, str]] = set()
        self.machine_drains: set[Tile] = set()
        self.fed = dict.fromkeys(layout.machines, True)  # gets every ingredient (free run)
        ins = layout.inserters
        self.dem = {i.tile: {k: (i.rate if k in i.wants else 0.0) for k in self.items} for i in ins}
        self.take = {i.tile: self.zeros() for i in ins}
        self.offer = {i.tile: self.zeros() for i in ins}
        self.free_offer = {i.tile: self.zeros() for i in ins}
        self.accept = {m: self.zeros() for m in layout.machines}  # ingredients a machine takes
        self.crafts = dict.fromkeys(layout.machines, 0.0)

    def zeros(self) -> dict[str, float]:
        return dict.fromkeys(self.items, 0.0)

    # ---- the whole method ----

    def run(self) -> None:
        g = self.g
        # One item and no machines: nothing can clog (kernel shortcut, same result).
        needs_free_run = bool(g.machines) or len(self.items) > 1
        acyclic = _is_acyclic(g)
        # MIMIC.md "Clogging": free runs until no new lane clogs
        for _ in range(CLOG_ROUNDS if needs_free_run else 0):
            for lane in g.lanes:
                self.inflow[lane] = self.zeros()
                self.avail[lane] = self.zeros()
            for i in g.inserters:
                self.take[i.tile] = self.zeros()
            for _ in range(1 if acyclic else FREE_SWEEPS):
                self.forward(free=True)
            # MIMIC.md "Clogging": a machine that never gets one of its ingredients never
            # crafts, so it takes nothing and drains nothing
            self.fed = {
                v: all(add_up(self.take[i.tile][k] for i in m.droppers) > EPS for k, _ in m.ingredients)
                for v, m in g.machines.items()
            }
            self.find_drainable()
            changed = False
            for lane in g.lanes:
                if lane in self.clogged or g.kind(lane[:2]) == Entity.SOURCE:
                    continue
                if any(self.inflow[lane][k] > EPS and (lane, k) not in self.drains for k in self.items):
                    self.clogged.add(lane)
                    changed = True
            if not changed:
                break
        # What an inserter found at its pickup while nothing backed up: a floor for the
        # supply a machine counts on (kernel choice).
        self.free_offer = {t: dict(o) for t, o in self.offer.items()}
        # An inserter carries only items that reach its pickup and can leave its drop.
        if needs_free_run:
            for i in g.inserters:
                keep = []
                for k in i.wants:
                    if not self.inserter_drains(i, k):
                        continue
                    if i.pick_kind == "lanes":
                        x, y = i.pick  # type: ignore[misc]
                        if self.inflow[(x, y, LEFT)][k] + self.inflow[(x, y, RIGHT)][k] <= EPS:
                            continue
                    keep.append(k)
                i.wants = keep

        # Steady state. Acceptances grow from nothing: around a loop the least fixed
        # point is the true one (a loop with no way out takes nothing).
        for lane in g.lanes:
            self.inflow[lane] = self.zeros()
            self.avail[lane] = self.zeros()
            self.edge_flow[lane] = self.zeros()
            self.pot[lane] = 0.0
            self.acc_item[lane] = self.zeros()
            self.acc_total[lane] = 0.0
        for i in g.inserters:
            self.take[i.tile] = self.zeros()
            # optimistic start: every inserter could move its full rate
            self.offer[i.tile] = {k: (i.rate if k in i.wants else 0.0) for k in self.items}
        last = None
        for it in range(MAX_ITERATIONS):
            self.backward()
            # the forward pass depends only on what the backward pass found (kernel's stop)
            now = (
                {lane: dict(a) for lane, a in self.acc_item.items()},
                dict(self.acc_total),
                {t: dict(d) for t, d in self.dem.items()},
            )
            if it > 0 and last is not None and _close(now, last):
                break
            last = now
            before = {lane: dict(f) for lane, f in self.inflow.items()}
            self.forward(free=False)
            delta = max(
                (abs(self.inflow[lane][k] - before[lane][k]) for lane in g.lanes for k in self.items), default=0.0
            )
            if it > 0 and delta < SETTLED:
                break

    def sink_rates(self) -> list[float]:
        rates = []
        for x, y in _all_tiles(self.g.world):
            if self.g.kind((x, y)) == Entity.SINK:
                k = self.g.item_at[(x, y)]
                rates.append(self.inflow[(x, y, LEFT)][k] + self.inflow[(x, y, RIGHT)][k] if k else 0.0)
        return rates

    # ---- drainability (MIMIC.md "Clogging") ----

    def inserter_drains(self, i: Inserter, k: str) -> bool:
        if i.drop_kind == "machine":
            return i.drop_machine in self.machine_drains
        if i.drop_kind == "lanes":
            return i.drop_lane not in self.clogged and (i.drop_lane, k) in self.drains
        return False

    def find_drainable(self) -> None:
        """Least fixed point: item k can leave lane l to somewhere that takes it (a sink,
        an inserter into a machine that needs it and whose products leave, or onward).
        Nodes downstream first, repeated until nothing changes."""
        g = self.g
        self.drains = set()
        self.machine_drains = set()
        changed = True
        while changed:
            changed = False
            for v in reversed(g.order):
                if v in g.machines:
                    m = g.machines[v]
                    # a machine drains when each product is taken somewhere that drains
                    if (
                        self.fed[v]
                        and v not in self.machine_drains
                        and m.products
                        and all(
                            any(k in i.wants and self.inserter_drains(i, k) for i in m.pickers) for k, _ in m.products
                        )
                    ):
                        self.machine_drains.add(v)
                        changed = True
                    continue
                for t in g.node_tiles(v):
                    for side in (LEFT, RIGHT):
                        lane = (*t, side)
                        if lane in self.clogged:
                            continue
                        for k in self.items:
                            if (lane, k) not in self.drains and self.lane_drains(lane, k):
                                self.drains.add((lane, k))
                                changed = True

    def lane_drains(self, lane: Lane, k: str) -> bool:
        g = self.g
        t = lane[:2]
        if g.kind(t) == Entity.SINK:
            return True
        exits = [g.out.get(lane)]
        if t in g.partner:  # a splitter lane can leave through the other output too
            exits.append(g.out.get((*g.partner[t], lane[2])))
        if any(d is not None and d not in self.clogged and (d, k) in self.drains for d in exits):
            return True
        return any(k in i.wants and self.inserter_drains(i, k) for i in g.pickers_at.get(t, []))

    # ---- forward pass: hand supply downstream ----

    def want(self, i: Inserter, k: str, free: bool) -> float:
        """What inserter i asks for: its rate while running free, else its demand."""
        if free:
            return i.rate if self.dem[i.tile][k] > 0.0 else 0.0
        return self.dem[i.tile][k]

    def forward(self, free: bool) -> None:
        """Nodes in topological order. `free`: nothing backs up (lanes take up to their
        capacity, inserters their rate); else the acceptances of the backward pass bound it."""
        g = self.g
        for v in g.order:
            if v in g.machines:
                self.forward_machine(g.machines[v], free)
                continue
            tiles = g.node_tiles(v)
            for t in tiles:
                for side in (LEFT, RIGHT):
                    self.fill_lane((*t, side), free)
                self.taps(t, free)
                for side in (LEFT, RIGHT):
                    lane = (*t, side)
                    if g.kind(t) == Entity.SINK:  # a sink consumes all
                        self.pot[lane] = 0.0
                        self.avail[lane] = self.zeros()
                    elif g.kind(t) != Entity.SOURCE:
                        taken = add_up(self.inflow[lane][k] - self.avail[lane][k] for k in self.items)
                        self.pot[lane] = max(0.0, self.pot[lane] - taken)
            if len(tiles) == 2:
                self.split(tiles[0], tiles[1], free)

    def forward_machine(self, m: Machine, free: bool) -> None:
        """MIMIC.md "Assembler": crafts/s = min(speed / time, supply / amount, room / amount);
        products leave only by inserters, shared in proportion to what each asks."""
        craft = m.cap
        potential = m.cap  # what the ingredients alone allow
        for k, amount in m.ingredients:
            supply = add_up(self.take[i.tile][k] for i in m.droppers)
            craft = min(craft, supply / amount)
            potential = min(potential, supply / amount)
        if not free:
            for k, amount in m.products:
                craft = min(craft, add_up(self.dem[i.tile][k] for i in m.pickers) / amount)
        self.crafts[m.anchor] = craft
        for i in m.pickers:
            self.take[i.tile] = self.zeros()
            self.offer[i.tile] = self.zeros()
        for k, amount in m.products:
            made = craft * amount
            want_total = add_up(self.want(i, k, free) for i in m.pickers)
            for i in m.pickers:
                w = self.want(i, k, free)
                if want_total > 0.0:
                    self.take[i.tile][k] = w * min(1.0, made / want_total)
                if w > 0.0 or free:
                    self.offer[i.tile][k] = min(i.rate, potential * amount)
        for i in m.pickers:
            self.cap_inserter(i)

    def fill_lane(self, lane: Lane, free: bool) -> None:
        """What enters a lane. MIMIC.md "Priority at a lane": from behind first, then
        side-loads, then inserter drops. Within a class, feeders share in proportion to
        what they bring (MIMIC.md "in proportion to what each asks")."""
        g = self.g
        t = lane[:2]
        self.inflow[lane] = self.zeros()
        if g.kind(t) == Entity.SOURCE:  # 7.5/s of its item per lane, as far as it is taken
            k0 = g.item_at[t]
            if k0:
                a = LANE if free else min(LANE, self.acc_item[lane][k0], self.acc_total[lane])
                self.inflow[lane][k0] = a
            self.pot[lane] = self.inflow[lane][k0] if k0 else 0.0
            return
        clogged = lane in self.clogged
        cap_total = 0.0 if clogged else (LANE if free else self.acc_total[lane])
        used = self.zeros()
        used_total = 0.0
        # Kernel's `pot`: what feeders could bring on top of what they do (a splitter
        # upstream would send its other output's refusals here); it lets a lower class
        # see at once that a higher one would fill the lane.
        excess = 0.0
        held_back = False  # free run: a higher class left items behind, lower get nothing

        def room(k: str) -> float:
            return LANE if free else self.acc_item[lane][k]

        for priority in (STRAIGHT, SIDE):
            group = [s for s, p in g.feeders[lane] if p == priority]
            if not group:
                continue
            offered = {k: add_up(self.avail[s][k] for s in group) for k in self.items}
            give = {k: 0.0 if held_back else max(0.0, min(offered[k], room(k) - used[k])) for k in self.items}
            total = add_up(give.values())
            room_total = max(0.0, cap_total - used_total)
            scale = 1.0 if total <= room_total else room_total / total
            for k in self.items:
                give[k] *= scale
                used[k] += give[k]
                used_total += give[k]
            for s in group:
                back = False
                excess += self.pot[s]
                for k in self.items:
                    share = self.avail[s][k] * give[k] / offered[k] if offered[k] > 0.0 else 0.0
                    self.edge_flow[s][k] = share
                    excess -= share
                    if self.avail[s][k] > share + EPS:
                        back = True
                if back and free:
                    held_back = True
        # MIMIC.md "An inserter drops with the lowest priority: only into room the belt leaves"
        droppers = g.droppers_at.get(lane, [])
        if droppers:
            offered = {k: add_up(self.take[i.tile][k] for i in droppers) for k in self.items}
            give = {k: 0.0 if held_back else max(0.0, min(offered[k], room(k) - used[k])) for k in self.items}
            total = add_up(give.values())
            room_total = max(0.0, cap_total - used_total)
            scale = 1.0 if total <= room_total else room_total / total
            for k in self.items:
                used[k] += give[k] * scale
                used_total += give[k] * scale
        self.inflow[lane] = used
        self.pot[lane] = 0.0 if clogged else min(LANE, used_total + max(0.0, excess))

    def cap_inserter(self, i: Inserter) -> None:
        """An inserter moves at most its rate in all."""
        total = add_up(self.take[i.tile].values())
        if total > i.rate:
            for k in self.items:
                self.take[i.tile][k] *= i.rate / total

    def taps(self, t: Tile, free: bool) -> None:
        """Inserters picking from tile t take first ("taps along a belt first"), from both
        lanes in proportion to what each carries ("shared fairly between the two lanes");
        several inserters share an item in proportion to what they ask (MIMIC.md
        "Inserters"). The backward pass's `tap_room` asks each lane for at least half."""
        g = self.g
        a, b = (*t, LEFT), (*t, RIGHT)
        self.avail[a] = dict(self.inflow[a])
        self.avail[b] = dict(self.inflow[b])
        pickers = g.pickers_at.get(t, [])
        if not pickers:
            return
        if g.kind(t) == Entity.SOURCE:  # an endless supply: take as much as wanted
            for i in pickers:
                for k in self.items:
                    self.take[i.tile][k] = self.want(i, k, free)
                    self.offer[i.tile][k] = i.rate if k == g.item_at[t] else 0.0
                self.cap_inserter(i)
            return
        for k in self.items:
            supply = self.inflow[a][k] + self.inflow[b][k]
            want_total = add_up(self.want(i, k, free) for i in pickers)
            frac = 0.0 if want_total <= 0.0 else min(1.0, supply / want_total)
            taken = 0.0
            for i in pickers:
                self.take[i.tile][k] = self.want(i, k, free) * frac
                self.offer[i.tile][k] = min(i.rate, supply) if self.dem[i.tile][k] > 0.0 or free else 0.0
                taken += self.take[i.tile][k]
            if supply > 0.0:
                self.avail[a][k] = self.inflow[a][k] - taken * self.inflow[a][k] / supply
                self.avail[b][k] = self.inflow[b][k] - taken * self.inflow[b][k] / supply
        for i in pickers:  # capped after the lanes are debited (kernel order)
            self.cap_inserter(i)

    def split(self, t: Tile, p: Tile, free: bool) -> None:
        """MIMIC.md "Splitter": per lane side, merge both inputs, half to each output while
        both accept, the overflow of one to the other; lanes kept. An output's potential
        (kernel choice) is all the splitter could send it: everything the other output
        did not take last time."""
        g = self.g
        for side in (LEFT, RIGHT):
            a, b = (*t, side), (*p, side)
            total = add_up(self.avail[a][k] + self.avail[b][k] for k in self.items)
            if free:  # an output takes all it can, unless it leads nowhere or is clogged
                room_a = LANE if a in g.out and g.out[a] not in self.clogged else 0.0
                room_b = LANE if b in g.out and g.out[b] not in self.clogged else 0.0
            else:
                room_a, room_b = self.split_room[a], self.split_room[b]
            x_a = min(room_a, max(total / 2.0, total - room_b))
            x_b = min(room_b, total - x_a)
            for k in self.items:
                s_k = self.avail[a][k] + self.avail[b][k]
                self.avail[a][k] = s_k * x_a / total if total > 0.0 else 0.0
                self.avail[b][k] = s_k * x_b / total if total > 0.0 else 0.0
            taken_a = add_up(self.edge_flow[a].values())
            taken_b = add_up(self.edge_flow[b].values())
            both = self.pot[a] + self.pot[b]
            self.pot[a] = 0.0 if a not in g.out else min(LANE, max(x_a, both - (taken_b if b in g.out else 0.0)))
            self.pot[b] = 0.0 if b not in g.out else min(LANE, max(x_b, both - (taken_a if a in g.out else 0.0)))

    # ---- backward pass: what each node accepts ----

    def backward(self) -> None:
        """How much each lane (per item and in total), machine and inserter can take,
        from what flowed in the last forward pass; nodes downstream first."""
        g = self.g
        for v in reversed(g.order):
            if v in g.machines:
                self.backward_machine(g.machines[v])
                continue
            tiles = g.node_tiles(v)
            for t in tiles:
                for i in g.pickers_at.get(t, []):
                    self.demand(i)
            if len(tiles) == 2:
                self.backward_splitter(tiles[0], tiles[1])
                continue
            t = v
            for side in (LEFT, RIGHT):
                lane = (*t, side)
                if g.kind(t) == Entity.SINK:  # a sink takes a belt's worth of anything
                    self.acc_item[lane] = dict.fromkeys(self.items, LANE)
                    self.acc_total[lane] = LANE
                    continue
                if lane in self.clogged:  # a clogged lane carries nothing
                    self.acc_item[lane] = self.zeros()
                    self.acc_total[lane] = 0.0
                    continue
                # a source's lanes pass on what the tile ahead takes; inserters take from
                # its endless supply, not from its lanes
                tap = self.zeros() if g.kind(t) == Entity.SOURCE else self.tap_room(t, lane)
                room, room_total = self.edge_room(lane)
                tap_total = add_up(tap.values())
                self.acc_item[lane] = {k: min(LANE, tap[k] + room[k]) for k in self.items}
                self.acc_total[lane] = min(LANE, tap_total + room_total)

    def backward_machine(self, m: Machine) -> None:
        """A machine accepts each ingredient as fast as it could use it: its crafting cap,
        limited by what its product inserters take and by the supply of the other
        ingredients (the better of now and the free run: kernel choice)."""
        for i in m.pickers:
            self.demand(i)
        craft = m.cap
        for k, amount in m.products:
            craft = min(craft, add_up(self.dem[i.tile][k] for i in m.pickers) / amount)
        for j, (k, amount) in enumerate(m.ingredients):
            c = craft
            for j2, (k2, amount2) in enumerate(m.ingredients):
                if j2 == j:
                    continue
                supply = add_up(max(self.offer[i.tile][k2], self.free_offer[i.tile][k2]) for i in m.droppers)
                c = min(c, supply / amount2)
            self.accept[m.anchor][k] = c * amount

    def backward_splitter(self, t: Tile, p: Tile) -> None:
        """What each splitter output can pass on, then each input's share of both
        (half, or more if the other input brings less: kernel's fair share)."""
        for side in (LEFT, RIGHT):
            a, b = (*t, side), (*p, side)
            room_a, room_total_a = self.edge_room(a)
            room_b, room_total_b = self.edge_room(b)
            self.split_room[a] = room_total_a
            self.split_room[b] = room_total_b
            both_total = room_total_a + room_total_b
            both = {k: room_a[k] + room_b[k] for k in self.items}
            for lane, other in ((a, b), (b, a)):
                other_total = add_up(self.inflow[other].values())
                share_total = max(both_total / 2.0, both_total - other_total)
                tap = self.tap_room(lane[:2], lane)
                tap_total = add_up(tap.values())
                clogged = lane in self.clogged
                self.acc_item[lane] = {
                    k: 0.0 if clogged else min(LANE, tap[k] + max(both[k] / 2.0, both[k] - self.inflow[other][k]))
                    for k in self.items
                }
                self.acc_total[lane] = 0.0 if clogged else min(LANE, tap_total + share_total)

    def tap_room(self, t: Tile, lane: Lane) -> dict[str, float]:
        """What the inserters picking from tile t can take out of `lane`, per item: their
        demand less what the tile's other lane gives them (at most half of it)."""
        other = (*t, 1 - lane[2])
        pickers = self.g.pickers_at.get(t, [])
        tap = {}
        for k in self.items:
            want = add_up(self.dem[i.tile][k] for i in pickers)
            tap[k] = want - min(self.inflow[other][k], want / 2.0)
        return tap

    def edge_room(self, lane: Lane) -> tuple[dict[str, float], float]:
        """Room the lane's out edge has for it, per item and in total: the destination's
        acceptance less what higher-priority feeders bring (their potential, in total),
        shared fairly with the feeders of the same priority."""
        g = self.g
        room = self.zeros()
        d = g.out.get(lane)
        if d is None:
            return room, 0.0
        priority = next(p for s, p in g.feeders[d] if s == lane)
        higher = [s for s, p in g.feeders[d] if s != lane and p < priority]
        same = [s for s, p in g.feeders[d] if s != lane and p == priority]
        n_same = 1 + len(same)
        higher_total = add_up(max(add_up(self.edge_flow[s].values()), self.pot[s]) for s in higher)
        base_total = self.acc_total[d] - higher_total
        same_total = add_up(add_up(self.edge_flow[s].values()) for s in same)
        room_total = max(0.0, max(base_total / n_same, base_total - same_total))
        for k in self.items:
            base = self.acc_item[d][k] - add_up(self.edge_flow[s][k] for s in higher)
            room[k] = max(0.0, max(base / n_same, base - add_up(self.edge_flow[s][k] for s in same)))
        return room, room_total

    def demand(self, i: Inserter) -> None:
        """What inserter i can hand on, per item: the room at its drop end, shared with
        the other inserters dropping there as the kernel does: an equal share, or all that
        the others took last time if that is more; at most its rate in all (then split
        between items in proportion, MIMIC.md "Inserters")."""
        g = self.g
        dem = self.zeros()
        for k in i.wants:
            if i.drop_kind == "machine":
                m = g.machines[i.drop_machine]  # type: ignore[index]
                base = self.accept[m.anchor][k]
                rivals = [i2 for i2 in m.droppers if k in i2.wants]
            else:
                d = i.drop_lane
                feeders = [s for s, _ in g.feeders[d]]  # type: ignore[index]
                belt_in = add_up(self.edge_flow[s][k] for s in feeders)
                belt_total = add_up(max(add_up(self.edge_flow[s].values()), self.pot[s]) for s in feeders)
                base = min(self.acc_item[d][k] - belt_in, self.acc_total[d] - belt_total)  # type: ignore[index]
                rivals = g.droppers_at[d]  # type: ignore[index]
            others = add_up(self.take[i2.tile][k] for i2 in rivals if i2 is not i)
            base = max(0.0, base)
            share = max(base / max(len(rivals), 1), base - others)
            dem[k] = max(0.0, min(i.rate, share))
        total = add_up(dem.values())
        if total > i.rate:
            for k in self.items:
                dem[k] *= i.rate / total
        self.dem[i.tile] = dem


def _close(a, b) -> bool:  # type: ignore[no-untyped-def]
    """Acceptances and demands unchanged within SAME (kernel's `_same`)."""
    acc_a, tot_a, dem_a = a
    acc_b, tot_b, dem_b = b
    return (
        all(abs(acc_a[lane][k] - acc_b[lane][k]) <= SAME for lane in acc_a for k in acc_a[lane])
        and all(abs(tot_a[lane] - tot_b[lane]) <= SAME for lane in tot_a)
        and all(abs(dem_a[t][k] - dem_b[t][k]) <= SAME for t in dem_a for k in dem_a[t])
    )


def reference_sink_rates(world: World) -> list[float]:
    """Steady-state rate of each sink's own item, sinks in row-major order."""
    solver = Solver(build_layout(world))
    solver.run()
    return solver.sink_rates()
