"""The messages mod, bridge and server exchange, as pydantic models (schema version 1).

- `PlanRequest` / `PlanResponse`: the body of `POST /plan` and its answer.
- `PlanJob` / `PlanResult`: what the mod queues for the bridge (a plan request plus where
  in the game it applies) and what the bridge sends back, placements in batches.

Every model forbids unknown fields, so a typo fails loudly instead of being ignored.
Every top-level message carries `schema_version`; one this side does not speak is
refused with a message listing the versions it does (`SUPPORTED_SCHEMA_VERSIONS`).
Coordinates in a request are region tiles: (0, 0) is the region's top-left tile, x east,
y south. Items are the game's names (`iron-plate`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared_schema import SCHEMA_VERSION
from shared_schema.catalog import Catalog, load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.game import FacingName, facing_from_name, facing_name, from_game_entity, to_game_entity
from shared_schema.world import MAX_GRID, Channel, World

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (SCHEMA_VERSION,)

PlaceableName = Literal[
    "transport-belt", "underground-belt", "splitter", "inserter", "long-handed-inserter", "assembling-machine-1"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Versioned(_Model):
    """A top-level message: checks `schema_version` before anything else, so a message
    from another version gets one clear error rather than a list of field complaints."""

    @model_validator(mode="before")
    @classmethod
    def _speaks_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" in data:
            version = data["schema_version"]
            if version not in SUPPORTED_SCHEMA_VERSIONS:
                spoken = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
                raise ValueError(f"schema_version {version!r} is not spoken here; this side speaks version {spoken}")
        return data


_VERSION_DOC = f"Message schema version; this release speaks {', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}."


# ---------------------------------------------------------------------------- request


class Tile(_Model):
    """A region tile."""

    x: int = Field(description="Column, 0 <= x < region width (x grows east).")
    y: int = Field(description="Row, 0 <= y < region height (y grows south).")


class Marker(_Model):
    """A source (an endless supply of `item`, pushed the way it faces) or a sink (a belt
    tile that consumes and counts `item`)."""

    x: int = Field(description="Column, 0 <= x < region width.")
    y: int = Field(description="Row, 0 <= y < region height.")
    facing: FacingName = Field(description="The way items move through the marker.")
    item: str = Field(description="The item's game name, e.g. 'iron-plate'.", examples=["iron-plate"])

    @field_validator("item")
    @classmethod
    def _known_item(cls, item: str) -> str:
        load_catalog().item_id(item)  # raises UnknownNameError (a ValueError) naming the item
        return item


class Region(_Model):
    """The size of the area the player marked."""

    width: int = Field(ge=1, le=MAX_GRID, description=f"Tiles across, 1 to {MAX_GRID}.")
    height: int = Field(ge=1, le=MAX_GRID, description=f"Tiles down, 1 to {MAX_GRID}.")


class PlanOptions(_Model):
    """How to plan."""

    mode: Literal["greedy", "search", "expert"] = Field(
        default="search",
        description="'greedy': the policy's first choice at every step; 'search': the planner searches over the "
        "policy's proposals and keeps the best layout the mimic verifies; 'expert': the hand-written expert.",
    )
    time_budget_s: float = Field(default=1.0, gt=0, le=60, description="Planning wall-clock budget, s (0 < t <= 60).")
    seed: int = Field(default=0, description="Seed for every random choice, so the same request gives the same plan.")


class PlanRequest(_Versioned):
    """`POST /plan`: fill a region so that what the sources supply reaches the sinks."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "region": {"width": 6, "height": 1},
                    "sources": [{"x": 0, "y": 0, "facing": "east", "item": "iron-plate"}],
                    "sinks": [{"x": 5, "y": 0, "facing": "east", "item": "iron-plate"}],
                    "blocked": [{"x": 2, "y": 0}],
                    "options": {"mode": "search", "time_budget_s": 1, "seed": 0},
                }
            ]
        },
    )

    schema_version: int = Field(description=_VERSION_DOC)
    region: Region
    sources: list[Marker] = Field(default_factory=list, description="What comes in.")
    sinks: list[Marker] = Field(min_length=1, description="What must come out; at least one.")
    blocked: list[Tile] = Field(
        default_factory=list, description="Tiles that take no entity (underground belts may pass beneath them)."
    )
    options: PlanOptions = Field(default_factory=PlanOptions)

    @model_validator(mode="after")
    def _markers_fit(self) -> PlanRequest:
        w, h = self.region.width, self.region.height
        blocked = set()
        for i, tile in enumerate(self.blocked):
            if not (0 <= tile.x < w and 0 <= tile.y < h):
                raise ValueError(f"blocked[{i}] at ({tile.x}, {tile.y}) is off the {w}x{h} region")
            blocked.add((tile.x, tile.y))
        taken: dict[tuple[int, int], str] = {}
        for group, markers in (("sources", self.sources), ("sinks", self.sinks)):
            for i, m in enumerate(markers):
                where = f"{group}[{i}] at ({m.x}, {m.y})"
                if not (0 <= m.x < w and 0 <= m.y < h):
                    raise ValueError(f"{where} is off the {w}x{h} region")
                if (m.x, m.y) in blocked:
                    raise ValueError(f"{where} is on a blocked tile")
                if (m.x, m.y) in taken:
                    raise ValueError(f"{where} is on top of {taken[(m.x, m.y)]}")
                taken[(m.x, m.y)] = f"{group}[{i}]"
        return self

    def to_world(self, catalog: Catalog | None = None) -> World:
        """The region as a world: markers (with their catalog item ids) and blocked tiles placed."""
        catalog = catalog or load_catalog()
        world = World.empty(self.region.width, self.region.height)
        for tile in self.blocked:
            if world.entity(tile.x, tile.y) == Entity.EMPTY:  # a tile listed twice is still one tile
                world.place(Entity.BLOCKED, tile.x, tile.y)
        for kind, markers in ((Entity.SOURCE, self.sources), (Entity.SINK, self.sinks)):
            for m in markers:
                world.place(kind, m.x, m.y, facing_from_name(m.facing), catalog.item_id(m.item))
        return world

    @classmethod
    def from_world(cls, task: World, options: PlanOptions | None = None, catalog: Catalog | None = None) -> PlanRequest:
        """The request posing `task` (a lesson's task, say): its markers, and as blocked
        tiles its blocked tiles and every tile an entity already stands on (what the
        game sends for them). The inverse of `to_world` for a world of markers and
        blocked tiles alone."""
        catalog = catalog or load_catalog()
        markers: dict[Entity, list[Marker]] = {Entity.SOURCE: [], Entity.SINK: []}
        for kind, x, y in task.entities():
            if kind in markers:
                item = catalog.items[int(task.data[Channel.ITEM, y, x])]
                markers[kind].append(Marker(x=x, y=y, facing=facing_name(task.facing(x, y)), item=item))
        entity = task.data[Channel.ENTITY]
        ys, xs = np.nonzero((entity != Entity.EMPTY) & (entity != Entity.SOURCE) & (entity != Entity.SINK))
        return cls(
            schema_version=SCHEMA_VERSION,
            region=Region(width=task.width, height=task.height),
            sources=markers[Entity.SOURCE],
            sinks=markers[Entity.SINK],
            blocked=[Tile(x=int(x), y=int(y)) for y, x in zip(ys, xs, strict=True)],
            options=options or PlanOptions(),
        )


# ---------------------------------------------------------------------------- response


class Position(_Model):
    """A point in game tile units (an entity's centre)."""

    x: float
    y: float


class Placement(_Model):
    """One entity to build, in both our terms (anchor tile, facing) and the game's
    (name, centre position, 2.0 direction number, underground type, recipe)."""

    name: PlaceableName = Field(description="The entity's game name.")
    x: int = Field(description="Anchor (top-left) tile column.")
    y: int = Field(description="Anchor (top-left) tile row.")
    position: Position = Field(description="The entity's centre as the game places it.")
    direction: Literal[0, 4, 8, 12] = Field(
        description="Factorio 2.0 defines.direction (0 north, 4 east, 8 south, 12 west) as the game records it: "
        "the way items move, except for inserters, which point where they pick up (the opposite)."
    )
    facing: FacingName = Field(description="The way items move (for assemblers always 'north').")
    type: Literal["input", "output"] | None = Field(
        default=None, description="Underground belts only: 'input' (entrance) or 'output' (exit)."
    )
    recipe: str | None = Field(default=None, description="Assembling machines only: the recipe's game name.")

    @model_validator(mode="after")
    def _game_fields_agree(self) -> Placement:
        """The game's fields must say the same as ours: catches a placement built by hand wrongly."""
        if (self.type is not None) != (self.name == "underground-belt"):
            raise ValueError(f"{self.name}: 'type' is for underground belts, and they need one")
        if self.recipe is not None and self.name != "assembling-machine-1":
            raise ValueError(f"{self.name}: only an assembling machine has a recipe")
        ours = from_game_entity(self.model_dump())
        if (ours.x, ours.y) != (self.x, self.y) or facing_name(ours.facing) != self.facing:
            raise ValueError(
                f"{self.name} at ({self.x}, {self.y}) facing {self.facing}: position ({self.position.x}, "
                f"{self.position.y}) and direction {self.direction} describe ({ours.x}, {ours.y}) facing "
                f"{facing_name(ours.facing)}"
            )
        return self

    def shifted(self, dx: int, dy: int) -> Placement:
        """The same placement moved by (dx, dy) tiles, e.g. from region to game tiles."""
        position = Position(x=self.position.x + dx, y=self.position.y + dy)
        return self.model_copy(update={"x": self.x + dx, "y": self.y + dy, "position": position})


def placements_from_world(world: World, catalog: Catalog | None = None) -> list[Placement]:
    """Every game entity of `world` as a Placement (region tiles), row-major by anchor;
    sources, sinks and blocked tiles are not built and are left out."""
    catalog = catalog or load_catalog()
    out = []
    for kind, x, y in world.entities():
        if kind in (Entity.SOURCE, Entity.SINK, Entity.BLOCKED):
            continue
        tile = world.data[:, y, x]
        facing = Direction(int(tile[Channel.FACING]))
        end = UndergroundEnd(int(tile[Channel.UNDERGROUND]))
        recipe_id = int(tile[Channel.ITEM]) if kind == Entity.ASSEMBLER else 0
        recipe = catalog.recipe(recipe_id).name if recipe_id else None
        game = to_game_entity(kind, x, y, facing, end, recipe)
        out.append(
            Placement(
                name=game["name"],
                x=x,
                y=y,
                position=Position(**game["position"]),
                direction=game["direction"],
                facing=facing_name(facing),
                type=game.get("type"),
                recipe=recipe,
            )
        )
    return out


class SinkResult(_Model):
    """What one sink receives in the planned layout."""

    x: int = Field(description="Sink column (region tiles).")
    y: int = Field(description="Sink row (region tiles).")
    item: str = Field(description="The item the sink counts (game name).")
    per_second: float = Field(ge=0, description="Items per second the mimic says reach the sink.")
    best_per_second: float = Field(ge=0, description="The best rate achievable for this sink in this task.")


class PlanResponse(_Versioned):
    """The answer to `POST /plan`: the best layout found, verified in the mimic."""

    schema_version: int = Field(default=SCHEMA_VERSION, description=_VERSION_DOC)
    placements: list[Placement] = Field(description="Entities to build, row-major by anchor tile (region tiles).")
    sinks: list[SinkResult] = Field(description="Per-sink throughput, in the order of the request's sinks.")
    score: float = Field(ge=0, le=1, description="Power mean (p = 0.5) of per-sink rate / best rate, in [0, 1].")
    grid: str = Field(description="The layout in the text grid format (markers included).")
    blueprint: str = Field(description="The layout as a Factorio 2.0 blueprint string (markers left out).")
    policy: str = Field(description="The policy (or expert) that produced the layout, name and version.")
    expert_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The expert's score on the same request, for comparison (0 when it finds no layout; "
        "null when it was not run).",
    )
    timings_ms: dict[str, float] = Field(default_factory=dict, description="Time spent per planning phase, in ms.")


# ---------------------------------------------------------------------------- mod <-> bridge


class GameTile(_Model):
    """A tile on a game surface (may be negative)."""

    x: int
    y: int


class PlanJob(_Versioned):
    """A plan the mod queued for the bridge to pick up over RCON."""

    schema_version: int = Field(description=_VERSION_DOC)
    job_id: str = Field(min_length=1, max_length=64, description="The mod's id for this job, echoed in results.")
    player_index: int = Field(ge=1, description="LuaPlayer::index of the player who asked.")
    surface: str = Field(min_length=1, description="Name of the surface the region is on, e.g. 'nauvis'.")
    origin: GameTile = Field(description="Game tile of the region's top-left tile (region tile (0, 0)).")
    request: PlanRequest = Field(description="The plan request, in region tiles.")


class PlanResult(_Versioned):
    """The bridge's answer to a PlanJob. Placements travel in batches (RCON commands are
    size-limited): batch `batch_index` of `batch_count`, each with its share."""

    schema_version: int = Field(default=SCHEMA_VERSION, description=_VERSION_DOC)
    job_id: str = Field(min_length=1, max_length=64, description="The PlanJob's job_id.")
    status: Literal["ok", "error"] = Field(description="'error' when no plan could be made; `message` says why.")
    message: str = Field(default="", description="What to tell the player (a summary, or the error).")
    placements: list[Placement] = Field(
        default_factory=list, description="This batch's placements, in game tiles (the job's origin added)."
    )
    batch_index: int = Field(default=0, ge=0, description="0-based index of this batch.")
    batch_count: int = Field(default=1, ge=1, description="How many batches the job's placements come in.")

    @model_validator(mode="after")
    def _batch_consistent(self) -> PlanResult:
        if self.batch_index >= self.batch_count:
            raise ValueError(f"batch_index {self.batch_index} is not below batch_count {self.batch_count}")
        if self.status == "error" and self.placements:
            raise ValueError("an error result carries no placements")
        return self


MODELS: tuple[type[BaseModel], ...] = (
    PlanRequest,
    PlanResponse,
    PlanJob,
    PlanResult,
    Marker,
    Tile,
    Region,
    PlanOptions,
    Placement,
    Position,
    SinkResult,
    GameTile,
)
"""Every public model; `python -m shared_schema.export` writes a JSON Schema for each."""
