"""Assembling machines for the expert: inserter arms, and a machine wired to its markers.

An `Arm` is an inserter beside a 3x3 machine: a plain inserter on the tile next to it,
or a long-handed one on that tile (dropping into the machine's middle) or one tile
further out (dropping onto its edge). Its *outer* tile is where it picks (an input arm)
or drops (the output arm). `build_machine` places a machine and its arms and joins
every outer tile to its marker: the marker itself when it stands there, else a belt
end on the outer tile and a belt route (routing.py) between it and the marker.
`plan_machine` searches machine positions and arms for a task given only markers.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.world import Channel, PlacementError, World
from training.expert.routing import apply_route, route, route_belt

Tile = tuple[int, int]
MACHINE_SIZE = 3
CANDIDATE_ANCHORS = 12  # machine positions `plan_machine` tries, nearest to the markers first


@dataclass(frozen=True)
class Arm:
    """An inserter of `kind` at `tile`; `outward` points away from the machine; it
    reaches `reach` tiles (1 plain, 2 long-handed)."""

    kind: Entity
    tile: Tile
    outward: Direction

    @property
    def reach(self) -> int:
        return 2 if self.kind == Entity.LONG_INSERTER else 1

    @property
    def outer(self) -> Tile:
        """The tile it picks from as an input arm, or drops on as the output arm."""
        return self.tile[0] + self.reach * self.outward.dx, self.tile[1] + self.reach * self.outward.dy

    def tiles(self) -> tuple[Tile, Tile]:
        return self.tile, self.outer


def arm_slots(anchor: Tile) -> list[Arm]:
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
    return arms


def _on_grid(world: World, tile: Tile) -> bool:
    return 0 <= tile[0] < world.width and 0 <= tile[1] < world.height


def _belt_end(world: World, tile: Tile, facing: Direction, protected: frozenset[Tile]) -> bool:
    """Place a belt on `tile` if it is free; whether it was."""
    if tile in protected or not world.is_empty(*tile) or not world.data[Channel.BUILDABLE, tile[1], tile[0]]:
        return False
    world.place(Entity.BELT, tile[0], tile[1], facing)
    return True


def build_machine(
    task: World,
    recipe: int,
    anchor: Tile,
    inputs: list[tuple[Arm, Tile]],
    output: tuple[Arm, Tile],
    protected: frozenset[Tile] = frozenset(),
) -> World | None:
    """`task` plus a machine making `recipe` at `anchor`, each input arm fed from its
    source tile and the output arm delivering into the sink tile; None if something
    does not fit or a route cannot be found. `task` is left as it was."""
    world = task.copy()
    try:
        world.place(Entity.ASSEMBLER, anchor[0], anchor[1], Direction.NORTH, recipe)
        for arm, _ in inputs:
            world.place(arm.kind, *arm.tile, arm.outward.opposite)
        out_arm, sink = output
        world.place(out_arm.kind, *out_arm.tile, out_arm.outward)
    except PlacementError:
        return None
    if any(t in protected for arm, _ in [*inputs, output] for t in arm.tiles()):
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


def _output_belt(world: World, arm: Arm, sink: Tile, protected: frozenset[Tile]) -> bool:
    """A belt on the output arm's drop tile routed into `sink`, trying the belt's facings
    nearest the sink first."""
    ox, oy = arm.outer
    facings = [arm.outward, arm.outward.turned(-1), arm.outward.turned(1)]
    facings.sort(key=lambda f: abs(ox + f.dx - sink[0]) + abs(oy + f.dy - sink[1]))
    for facing in facings:
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


def choose_arms(world: World, anchor: Tile, targets: list[Tile], taken: set[Tile] | None = None) -> list[Arm] | None:
    """One arm per target tile (the marker it connects to), each the free slot whose outer
    tile is nearest its target (the target itself when it is right there), plain
    inserters before long-handed ones at equal distance; None if the slots run out."""
    used = set(taken or ())
    chosen = []
    slots = [a for a in arm_slots(anchor) if all(_on_grid(world, t) for t in a.tiles())]
    for target in targets:
        best: tuple[int, int, Arm] | None = None
        for arm in slots:
            if arm.tile in used or arm.outer in used:
                continue
            if not world.is_empty(*arm.tile) or (arm.outer != target and not world.is_empty(*arm.outer)):
                continue
            distance = abs(arm.outer[0] - target[0]) + abs(arm.outer[1] - target[1])
            key = (distance, arm.reach)
            if best is None or key < best[:2]:
                best = (distance, arm.reach, arm)
        if best is None:
            return None
        chosen.append(best[2])
        used.update(best[2].tiles())
    return chosen


def plan_machine(
    task: World, recipe: int, sources: list[Tile], sink: Tile, protected: frozenset[Tile] = frozenset()
) -> World | None:
    """The expert's layout of one machine making `recipe`, fed from `sources` (one per
    ingredient) and delivering into `sink`: machine positions nearest the markers first,
    the first that wires up is kept; None if none does."""
    markers = [*sources, sink]
    anchors = []
    for y in range(task.height - MACHINE_SIZE + 1):
        for x in range(task.width - MACHINE_SIZE + 1):
            if task.data[Channel.ENTITY, y : y + 3, x : x + 3].any():
                continue
            cx, cy = x + 1, y + 1
            anchors.append((sum(abs(cx - mx) + abs(cy - my) for mx, my in markers), y, x))
    anchors.sort()
    for _, y, x in anchors[:CANDIDATE_ANCHORS]:
        arms = choose_arms(task, (x, y), markers)
        if arms is None:
            continue
        inputs = list(zip(arms[:-1], sources, strict=True))
        layout = build_machine(task, recipe, (x, y), inputs, (arms[-1], sink), protected)
        if layout is not None:
            return layout
    return None
