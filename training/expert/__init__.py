"""The expert planner: hand-written layout builders that generate lesson solutions, teach
the policy by example, and set the baseline it must beat.

`expert_layout(task, protected)` reads what the task asks from its open markers (the
sources and sinks not in `protected`) and calls the builder for it:
- one source, one sink of the same item: an A* belt route (routing.py);
- one source, two sinks: a splitter (splitters.py);
- two sources, one sink: inserters from both onto one belt (splitters.py);
- a sink whose item the sources do not carry: a chain of assembling machines making
  it from them, or for a single recipe of 1 or 2 ingredients a row of machines if
  that makes more (machines.py).
"""

from __future__ import annotations

from shared_schema.catalog import load_catalog
from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from training.expert.machines import fastest, infer_chain, plan_chain, plan_row
from training.expert.routing import apply_route, route_belt
from training.expert.splitters import plan_merge, plan_split

Tile = tuple[int, int]
HUBS = (Entity.ASSEMBLER, Entity.SPLITTER)  # what a layout's routes lead to


def open_markers(task: World, kind: Entity, protected: frozenset[Tile] = frozenset()) -> list[tuple[Tile, str]]:
    """(tile, item) of the task's sources or sinks (`kind`) not in `protected`: what it asks for."""
    items = load_catalog().items
    return [
        ((x, y), items[int(task.data[Channel.ITEM, y, x])])
        for k, x, y in task.entities()
        if k == kind and (x, y) not in protected
    ]


def expert_layout(task: World, protected: frozenset[Tile] = frozenset()) -> World | None:
    """The expert's layout for `task`, or None when it has none."""
    sources, sinks = open_markers(task, Entity.SOURCE, protected), open_markers(task, Entity.SINK, protected)
    if not sources or not sinks:
        return None
    source_items = [item for _, item in sources]
    if len(sinks) == 1 and sinks[0][1] not in source_items:
        chain = infer_chain(sinks[0][1], source_items)
        if chain is None:
            return None
        by_item = {item: tile for tile, item in sources}
        layouts = [plan_chain(task, chain, by_item, sinks[0][0], protected)]
        if len(chain) == 1:  # one recipe: a row of machines may make more
            layouts.append(plan_row(task, chain[0], by_item, sinks[0][0], protected))
        return fastest([layout for layout in layouts if layout is not None])
    if len({item for _, item in sources + sinks}) != 1:
        return None
    if len(sources) == 1 and len(sinks) == 1:
        steps = route_belt(task, sources[0][0], sinks[0][0], protected=protected)
        if steps is None:
            return None
        layout = task.copy()
        apply_route(layout, steps)
        return layout
    if len(sources) == 1 and len(sinks) == 2:
        return plan_split(task, sources[0][0], [tile for tile, _ in sinks], protected)
    if len(sources) == 2 and len(sinks) == 1:
        return plan_merge(task, [tile for tile, _ in sources], sinks[0][0], protected)
    return None
