"""Assembling machines for the expert: inserter arms, and a machine wired to its markers.

An `Arm` is an inserter beside a 3x3 machine: a plain inserter on the tile next to it,
or a long-handed one on that tile (dropping into the machine's middle) or one tile
further out (dropping onto its edge). Its *outer* tile is where it picks (an input arm)
or drops (the output arm). `build_machine` places a machine and its arms and joins
every outer tile to its marker: the marker itself when it stands there, else a belt
end on the outer tile and a belt route (routing.py) between it and the marker.
`plan_chain` searches machine positions and arms for a task given only markers:
one machine, or a line of machines each making an ingredient of the one before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from itertools import product

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import Channel, PlacementError, World
from training.expert.routing import apply_route, route, route_belt
from training.sim import sink_rates_batch

Tile = tuple[int, int]
MACHINE_SIZE = 3
CANDIDATE_ANCHORS = 12  # first-machine positions `plan_chain` tries, nearest to the markers first
MAX_CHAIN = 3  # recipes in the longest chain the expert builds
LINK_OFFSETS = (0, -1, 1, -2, 2)  # sideways shifts of a chain's next machine, aligned first


@dataclass(frozen=True)
class Arm:
    """An inserter of `kind` at `tile`; `outward` points away from the machine; it
    reaches `reach` tiles (1 plain, 2 long-handed)."""

    kind: Entity
    tile: Tile
    outward: Direction

    # cached: the machine search reads them hundreds of thousands of times per task
    @cached_property
    def reach(self) -> int:
        return 2 if self.kind == Entity.LONG_INSERTER else 1

    @cached_property
    def outer(self) -> Tile:
        """The tile it picks from as an input arm, or drops on as the output arm."""
        return self.tile[0] + self.reach * self.outward.dx, self.tile[1] + self.reach * self.outward.dy

    def tiles(self) -> tuple[Tile, Tile]:
        return self.tile, self.outer


@cache
def arm_slots(anchor: Tile) -> tuple[Arm, ...]:
    """Every arm a machine anchored at `anchor` can have (some may be off the grid)."""
    ax, ay = anchor
    arms = []
    for side in Direction:
        for k in range(MACHINE_SIZE):
            # the machine's edge tile on this side, k-th along it
            ex, ey = {
                Direction.NORTH: (ax + k, ay),
                Direction.EAST: (ax + 2, ay + k),
                Direction.SOUTH: (ax + k, ay + 2),
                Direction.WEST: (ax, ay + k),
            }[side]
            near = (ex + side.dx, ey + side.dy)
            far = (ex + 2 * side.dx, ey + 2 * side.dy)
            arms += [Arm(Entity.INSERTER, near, side), Arm(Entity.LONG_INSERTER, near, side)]
            arms.append(Arm(Entity.LONG_INSERTER, far, side))
    return tuple(arms)


@cache
def _slots_on_grid(anchor: Tile, width: int, height: int) -> tuple[Arm, ...]:
    """`arm_slots(anchor)` whose tiles all lie on a `width` x `height` grid."""
    return tuple(a for a in arm_slots(anchor) if all(0 <= x < width and 0 <= y < height for x, y in a.tiles()))


def _belt_end(world: World, tile: Tile, facing: Direction, protected: frozenset[Tile]) -> bool:
    """Place a belt on `tile` if it is free; whether it was."""
    if tile in protected or not world.is_empty(*tile) or not world.data[Channel.BUILDABLE, tile[1], tile[0]]:
        return False
    world.place(Entity.BELT, tile[0], tile[1], facing)
    return True


def build_machines(
    task: World,
    machines: list[tuple[int, Tile]],
    inputs: list[tuple[Arm, Tile]],
    output: tuple[Arm, Tile],
    links: tuple[Arm, ...] = (),
    protected: frozenset[Tile] = frozenset(),
) -> World | None:
    """`task` plus machines ((recipe, anchor) each), each input arm fed from its source
    tile, the output arm delivering into the sink tile, and `links` (inserters that
    hand one machine's products straight into the next, moving items `outward`); None
    if something does not fit or a route cannot be found. `task` is left as it was."""
    world = task.copy()
    try:
        for recipe, anchor in machines:
            world.place(Entity.ASSEMBLER, anchor[0], anchor[1], Direction.NORTH, recipe)
        for arm in links:
            world.place(arm.kind, *arm.tile, arm.outward)
        for arm, _ in inputs:
            world.place(arm.kind, *arm.tile, arm.outward.opposite)
        out_arm, sink = output
        world.place(out_arm.kind, *out_arm.tile, out_arm.outward)
    except PlacementError:
        return None
    arms = [arm for arm, _ in [*inputs, output]] + list(links)
    if any(t in protected for arm in arms for t in arm.tiles()):
        return None
    # belt ends first, so no route runs over a tile an arm still needs
    pending: list[tuple[Tile, Tile]] = []
    for arm, source in inputs:
        if arm.outer == source:
            continue  # the arm picks straight from the source
        facing = arm.outward.opposite  # pointing at the arm: a dead end nothing flows out of
        if not _belt_end(world, arm.outer, facing, protected):
            return None
        pending.append((source, arm.outer))
    if out_arm.outer != sink and not _output_belt(world, out_arm, sink, protected):
        return None
    for source, end in pending:
        facing = world.facing(*end)
        steps = route(world, source, end, frozenset(Direction) - {facing.opposite}, protected=protected)
        if steps is None:
            return None
        apply_route(world, steps)
    return world


def drop_belt_facings(arm: Arm, toward: Tile) -> list[Direction]:
    """Facings for a belt on an arm's drop tile that lead away from the arm (straight on
    or to either side), the one whose front tile is nearest `toward` first."""
    ox, oy = arm.outer
    facings = [arm.outward, arm.outward.turned(-1), arm.outward.turned(1)]
    return sorted(facings, key=lambda f: abs(ox + f.dx - toward[0]) + abs(oy + f.dy - toward[1]))


def _output_belt(world: World, arm: Arm, sink: Tile, protected: frozenset[Tile]) -> bool:
    """A belt on the output arm's drop tile routed into `sink`, trying the belt's facings
    nearest the sink first."""
    ox, oy = arm.outer
    for facing in drop_belt_facings(arm, sink):
        front = (ox + facing.dx, oy + facing.dy)
        if front != sink and not world.is_empty(*front):
            continue  # it would push products into whatever stands there
        trial = world.copy()
        if not _belt_end(trial, (ox, oy), facing, protected):
            return False
        steps = route_belt(trial, (ox, oy), sink, protected=protected)
        if steps is not None:
            apply_route(trial, steps)
            world.data[...] = trial.data
            return True
    return False


def choose_arms(
    world: World, anchor: Tile, targets: list[Tile], taken: set[Tile] | None = None, long_first: bool = False
) -> list[Arm] | None:
    """One arm per target tile (the marker it connects to): the free slot whose outer tile
    is nearest its target (the target itself when it is right there), plain inserters
    first at equal distance; or with `long_first`, long-handed inserters (faster, but
    often a longer belt) wherever one fits. None if the slots run out."""
    used = set(taken or ())
    chosen = []
    slots = _slots_on_grid(anchor, world.width, world.height)
    for target in targets:
        best: tuple[tuple[int, int], Arm] | None = None
        for arm in slots:
            if arm.tile in used or arm.outer in used:
                continue
            if not world.is_empty(*arm.tile) or (arm.outer != target and not world.is_empty(*arm.outer)):
                continue
            distance = abs(arm.outer[0] - target[0]) + abs(arm.outer[1] - target[1])
            key = (-arm.reach, distance) if long_first else (distance, arm.reach)
            if best is None or key < best[0]:
                best = (key, arm)
        if best is None:
            return None
        chosen.append(best[1])
        used.update(best[1].tiles())
    return chosen


def infer_chain(sink_item: str, source_items: list[str]) -> list[int] | None:
    """The recipe chain making `sink_item` from `source_items` (product's recipe first,
    each next one making the one ingredient of the one before that no source carries),
    or None when there is no such chain (an ingredient nothing makes, or a recipe with
    two ingredients to make: a tree the expert does not build)."""
    catalog = load_catalog()
    chain: list[int] = []
    wanted = sink_item
    while True:
        recipe_id = catalog.recipe_making(wanted)
        if recipe_id is None or recipe_id in chain or len(chain) == MAX_CHAIN:
            return None
        chain.append(recipe_id)
        missing = [name for name, _ in catalog.recipe(recipe_id).ingredients if name not in source_items]
        if not missing:
            return chain
        if len(missing) > 1:
            return None
        wanted = missing[0]


def plan_chain(
    task: World,
    chain: list[int],
    sources: dict[str, Tile],
    sink: Tile,
    protected: frozenset[Tile] = frozenset(),
    roots: list[Tile] | None = None,
) -> World | None:
    """The expert's layout of one machine per recipe of `chain` in a line, each handing
    its products to the one before by an inserter across a one-tile gap, fed from
    `sources` (item -> source tile) and the first delivering into `sink`. Tries root
    positions nearest the markers first (only `roots`, when given) and each way of
    turning the line; None if none wires up."""
    found = [_first_chain(task, chain, sources, sink, protected, long_first, roots) for long_first in (False, True)]
    return fastest([layout for layout in found if layout is not None])


def _first_chain(
    task: World,
    chain: list[int],
    sources: dict[str, Tile],
    sink: Tile,
    protected: frozenset[Tile],
    long_first: bool,
    roots: list[Tile] | None,
) -> World | None:
    catalog = load_catalog()
    markers = [*sources.values(), sink]
    steps = list(product(Direction, LINK_OFFSETS))  # where the next machine goes: side, then sideways shift
    anchors_tried = free_anchors(task, markers)[:CANDIDATE_ANCHORS] if roots is None else [(0, y, x) for x, y in roots]
    fits: dict[Tile, bool] = {}  # the same anchors come up in many lines

    def fits_at(anchor: Tile) -> bool:
        if anchor not in fits:
            fits[anchor] = _machine_fits(task, anchor, protected)
        return fits[anchor]

    for _, y, x in anchors_tried:
        for moves in product(steps, repeat=len(chain) - 1):
            anchors = [(x, y)]
            links = []
            for d, shift in moves:  # 4 tiles on (3 wide plus the gap), shifted along the side
                side = d.turned(1)
                px, py = anchors[-1]
                anchors.append((px + 4 * d.dx + shift * side.dx, py + 4 * d.dy + shift * side.dy))
                # the link sits in the gap, in the middle of where the two machines face each other
                along = (max(0, shift) + min(2, shift + 2)) // 2 - 1
                cx, cy = px + 1 + along * side.dx, py + 1 + along * side.dy
                links.append(Arm(Entity.INSERTER, (cx + 2 * d.dx, cy + 2 * d.dy), d.opposite))
            tiles = [t for a in anchors for t in _machine_tiles(a)]
            if len(set(tiles)) < len(tiles) or not all(fits_at(a) for a in anchors):
                continue
            taken = {t for a in anchors for t in _machine_tiles(a)} | {arm.tile for arm in links}
            inputs: list[tuple[Arm, Tile]] = []
            for recipe_id, anchor in zip(chain, anchors, strict=True):
                leaves = [sources[n] for n, _ in catalog.recipe(recipe_id).ingredients if n in sources]
                arms = choose_arms(task, anchor, leaves, taken, long_first)
                if arms is None:
                    break
                inputs += zip(arms, leaves, strict=True)
                taken.update(t for arm in arms for t in arm.tiles())
            else:
                out = choose_arms(task, anchors[0], [sink], taken, long_first)
                if out is None:
                    continue
                machines = list(zip(chain, anchors, strict=True))
                layout = build_machines(task, machines, inputs, (out[0], sink), tuple(links), protected)
                if layout is not None:
                    return layout
    return None


@cache
def _machine_tiles(anchor: Tile) -> tuple[Tile, ...]:
    return tuple((anchor[0] + dx, anchor[1] + dy) for dy in range(MACHINE_SIZE) for dx in range(MACHINE_SIZE))


def _machine_fits(task: World, anchor: Tile, protected: frozenset[Tile]) -> bool:
    return all(task.is_empty(*t) and t not in protected for t in _machine_tiles(anchor))


def free_anchors(task: World, markers: list[Tile]) -> list[tuple[int, int, int]]:
    """(distance to the markers, y, x) of every free machine position, nearest first."""
    anchors = []
    for y in range(task.height - MACHINE_SIZE + 1):
        for x in range(task.width - MACHINE_SIZE + 1):
            if task.data[Channel.ENTITY, y : y + MACHINE_SIZE, x : x + MACHINE_SIZE].any():
                continue
            cx, cy = x + 1, y + 1
            anchors.append((sum(abs(cx - mx) + abs(cy - my) for mx, my in markers), y, x))
    anchors.sort()
    return anchors


@dataclass(frozen=True)
class Row:
    """Machines side by side, drawn flowing east: rows y0 (the second ingredient's belt),
    y0+1 (the first's), y0+2 (input arms: plain from the first belt, long-handed from
    the second), y0+3..y0+5 (the machines, from x0 on), y0+6 (output arms) and y0+7 (the
    product belt, which leaves east). `columns[m]` gives machine m's arm columns (0-2)
    for the first ingredient, the second and the product."""

    machines: int
    x0: int
    y0: int
    columns: tuple[tuple[int, int, int], ...]

    @property
    def out_end(self) -> Tile:
        """The product belt's last tile; the route to the sink starts there."""
        return self.x0 + 3 * self.machines - 1, self.y0 + 7


def row_skeleton(task: World, recipe_id: int, row: Row) -> tuple[World, list[Tile]] | None:
    """`task` plus the row's machines, arms and belts (no routes yet), and where each
    ingredient's belt starts; None if it does not fit."""
    ingredients = len(load_catalog().recipe(recipe_id).ingredients)
    world = task.copy()
    picks: list[list[int]] = [[] for _ in range(ingredients)]  # per ingredient, the columns arms pick from
    outs = []
    try:
        for m, (first, second, out) in enumerate(row.columns):
            mx = row.x0 + 3 * m
            world.place(Entity.ASSEMBLER, mx, row.y0 + 3, Direction.NORTH, recipe_id)
            world.place(Entity.INSERTER, mx + first, row.y0 + 2, Direction.SOUTH)
            picks[0].append(mx + first)
            if ingredients == 2:
                world.place(Entity.LONG_INSERTER, mx + second, row.y0 + 2, Direction.SOUTH)
                picks[1].append(mx + second)
            world.place(Entity.INSERTER, mx + out, row.y0 + 6, Direction.SOUTH)
            outs.append(mx + out)
        starts = []
        for k in range(ingredients):  # each ingredient's belt runs east from its first arm to its last
            y = row.y0 + 1 - k
            for x in range(min(picks[k]), max(picks[k]) + 1):
                world.place(Entity.BELT, x, y, Direction.EAST)
            starts.append((min(picks[k]), y))
        end_x, out_y = row.out_end
        for x in range(min(outs), end_x + 1):
            world.place(Entity.BELT, x, out_y, Direction.EAST)
    except PlacementError:
        return None
    return world, starts


def build_row(
    task: World, recipe_id: int, row: Row, sources: list[Tile], sink: Tile, protected: frozenset[Tile] = frozenset()
) -> World | None:
    """`task` plus the row, each ingredient's belt fed from its source (in the recipe's
    order) and the product belt routed into `sink`; None if it does not fit."""
    built = row_skeleton(task, recipe_id, row)
    if built is None:
        return None
    world, starts = built
    if any(world.data[Channel.ENTITY, y, x] != task.data[Channel.ENTITY, y, x] for x, y in protected):
        return None
    return connect_row(world, row, starts, sources, sink, protected)


def connect_row(
    skeleton: World, row: Row, starts: list[Tile], sources: list[Tile], sink: Tile, protected: frozenset[Tile]
) -> World | None:
    """Route each source into its ingredient belt's start and the product belt into
    `sink` on a row's skeleton (modified in place); the finished layout, or None."""
    world = skeleton
    for source, start in zip(sources, starts, strict=True):
        entries = frozenset({Direction.EAST, Direction.NORTH, Direction.SOUTH})
        steps = route(world, source, start, entries, protected=protected)
        if steps is None:
            return None
        apply_route(world, steps)
    steps = route_belt(world, row.out_end, sink, protected=protected)
    if steps is None:
        return None
    apply_route(world, steps)
    return world


CANDIDATE_ROWS = 3  # row positions `plan_row` tries per orientation and machine count
ROW_COLUMNS = (1, 0, 2)  # the expert's arm columns in every machine of a row


def plan_row(
    task: World, recipe_id: int, sources: dict[str, Tile], sink: Tile, protected: frozenset[Tile] = frozenset()
) -> World | None:
    """The expert's row of 3 (else 2) machines for a recipe of 1 or 2 ingredients, in
    whichever of the 8 orientations (turns and mirror) gives the most product; None if
    no row fits."""
    recipe = load_catalog().recipe(recipe_id)
    if len(recipe.ingredients) > 2:
        return None
    found = []
    for mirror in (False, True):
        for turns in range(4):
            frame = _orient(task, mirror, turns)
            moved = _orient_tiles(task, mirror, turns)
            frame_sources = [moved[sources[name]] for name, _ in recipe.ingredients]
            frame_protected = frozenset(moved[t] for t in protected)
            for machines in (3, 2):
                layout = _first_row(frame, recipe_id, machines, frame_sources, moved[sink], frame_protected)
                if layout is not None:
                    found.append(_unorient(layout, mirror, turns))
                    break
    return fastest(found)


def _first_row(
    frame: World, recipe_id: int, machines: int, sources: list[Tile], sink: Tile, protected: frozenset[Tile]
) -> World | None:
    size_x, size_y = frame.width, frame.height
    rows = []
    for y0 in range(-1, size_y - 7):
        for x0 in range(0, size_x - 3 * machines + 1):
            row = Row(machines, x0, y0, (ROW_COLUMNS,) * machines)
            start = (x0, y0 + 1)
            rows.append(
                (
                    sum(abs(start[0] - sx) + abs(start[1] - sy) for sx, sy in sources)
                    + abs(row.out_end[0] - sink[0])
                    + abs(row.out_end[1] - sink[1]),
                    y0,
                    x0,
                    row,
                )
            )
    rows.sort(key=lambda r: r[:3])
    for *_, row in rows[:CANDIDATE_ROWS]:
        layout = build_row(frame, recipe_id, row, sources, sink, protected)
        if layout is not None:
            return layout
    return None


def _orient(world: World, mirror: bool, turns: int) -> World:
    if mirror:
        world = world.mirrored()
    return world.rotated(turns)


def _unorient(world: World, mirror: bool, turns: int) -> World:
    world = world.rotated(-turns)
    return world.mirrored() if mirror else world


def _orient_tiles(world: World, mirror: bool, turns: int) -> dict[Tile, Tile]:
    """Where each tile of `world` goes under `_orient`: the tile indices moved by the
    same array operations World's transforms use."""
    w = world.width
    index = np.arange(world.height * w).reshape(world.height, w)
    moved = np.rot90(index[:, ::-1] if mirror else index, k=-turns)
    return {(int(i) % w, int(i) // w): (x, y) for (y, x), i in np.ndenumerate(moved)}


def fastest(layouts: list[World]) -> World | None:
    """The layout whose first sink gets the most, fewer entities breaking ties (None if
    there are none)."""
    if not layouts:
        return None
    rates, _ = sink_rates_batch(np.stack([layout.data for layout in layouts]))
    order = sorted(range(len(layouts)), key=lambda i: (-round(float(rates[i, 0]), 9), len(layouts[i].entities())))
    return layouts[order[0]]
