"""The explain view: per entity and lane, what it carries, so a person can see why a
layout scores what it does."""

from __future__ import annotations

from shared_schema.entities import BELT_LIKE, Entity
from shared_schema.grid import render_grid
from shared_schema.world import World
from training.sim.engine import SimResult


def _lane_text(result: SimResult, x: int, y: int, side: int) -> str:
    if result.clogged[y, x, side]:
        return "clogged"
    flows = result.lane_flow[y, x, side]
    parts = [f"{rate:.4g} {name}" for name, rate in zip(result.items, flows, strict=True) if rate > 1e-12]
    return ", ".join(parts) if parts else "0"


def explain(world: World, result: SimResult) -> str:
    """A readable account of every entity's flow in `world` (as `simulate` found it)."""
    lines = [render_grid(world), ""]
    for s in result.sinks:
        lines.append(f"sink ({s.x}, {s.y}) {s.item}: {s.per_second:.6g}/s")
    for kind, x, y in world.entities():
        name = kind.name.lower().replace("_", "-")
        arrow = world.facing(x, y).arrow
        if kind in BELT_LIKE:
            tiles = [(x, y)]
            if kind == Entity.SPLITTER:
                tiles.append((x + 1, y) if world.facing(x, y) % 2 == 0 else (x, y + 1))
            for tx, ty in tiles:
                left, right = _lane_text(result, tx, ty, 0), _lane_text(result, tx, ty, 1)
                lines.append(f"{name}{arrow} ({tx}, {ty}): left {left} | right {right}")
        elif kind in (Entity.INSERTER, Entity.LONG_INSERTER):
            flows = result.inserter_flow.get((x, y), {})
            moved = ", ".join(f"{rate:.4g} {item}" for item, rate in flows.items()) or "0"
            lines.append(f"{name}{arrow} ({x}, {y}): moves {moved}")
        elif kind == Entity.ASSEMBLER:
            lines.append(f"assembler ({x}, {y}): {result.crafts.get((x, y), 0.0):.4g} crafts/s")
    return "\n".join(lines)
