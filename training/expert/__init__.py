"""The expert planner: hand-written layout builders (belt routing first) that generate
lesson solutions and set the baseline the learned policy must beat."""

from __future__ import annotations

from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from training.expert.routing import apply_route, route_belt


def expert_layout(task: World, protected: frozenset[tuple[int, int]] = frozenset()) -> World | None:
    """The expert's layout for `task`, or None when it has none: it routes the one
    unprotected source to the one unprotected sink, when both carry the same item."""

    def open_markers(kind: Entity) -> list[tuple[int, int]]:
        return [(x, y) for k, x, y in task.entities() if k == kind and (x, y) not in protected]

    sources, sinks = open_markers(Entity.SOURCE), open_markers(Entity.SINK)
    if len(sources) != 1 or len(sinks) != 1:
        return None
    (sx, sy), (kx, ky) = sources[0], sinks[0]
    if task.data[Channel.ITEM, sy, sx] != task.data[Channel.ITEM, ky, kx]:
        return None
    steps = route_belt(task, (sx, sy), (kx, ky), protected=protected)
    if steps is None:
        return None
    layout = task.copy()
    apply_route(layout, steps)
    return layout
