"""The text grid format (MECHANICS.md): parse and render worlds, exact round trip.

One tile is two characters, tiles are separated by one character, so a row of n
tiles is 3n - 1 wide. `b` belt, `d` underground entrance, `u` underground exit,
`Y` splitter, `i` inserter, `l` long-handed inserter, `a` assembling machine,
`S` source, `K` sink, `..` empty, and (our addition) `##` a blocked tile. The second
character is the facing arrow `^ > v <`, the way items move. Splitters and
assemblers draw their letter on the separators inside them; an assembler is blank
in its middle tile. The grid holds no items: `items` lists name them (see
`apply_items` and `item_list`).
"""

from __future__ import annotations

from typing import TypedDict

from shared_schema.catalog import Catalog, load_catalog
from shared_schema.directions import ARROWS, Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel, PlacementError, World

_SIMPLE = {
    "b": (Entity.BELT, UndergroundEnd.NONE),
    "d": (Entity.UNDERGROUND, UndergroundEnd.ENTRANCE),
    "u": (Entity.UNDERGROUND, UndergroundEnd.EXIT),
    "i": (Entity.INSERTER, UndergroundEnd.NONE),
    "l": (Entity.LONG_INSERTER, UndergroundEnd.NONE),
    "S": (Entity.SOURCE, UndergroundEnd.NONE),
    "K": (Entity.SINK, UndergroundEnd.NONE),
}
_LETTER = {(kind, end): letter for letter, (kind, end) in _SIMPLE.items()}


class GridParseError(ValueError):
    """A malformed text grid; names the 1-based line and column of the bad tile."""

    def __init__(self, line: int, column: int, message: str) -> None:
        self.line, self.column = line, column
        super().__init__(f"line {line}, column {column} (tile x={(column - 1) // 3}, y={line - 1}): {message}")


def parse_grid(text: str) -> World:
    """Parse a text grid into a world (items left 0). Raises GridParseError."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise GridParseError(1, 1, "the grid is empty")
    width_chars = max(len(line.rstrip()) for line in lines)
    if (width_chars + 1) % 3:
        longest = max(range(len(lines)), key=lambda i: len(lines[i].rstrip()))
        raise GridParseError(
            longest + 1, width_chars, f"a row of n tiles is 3n-1 characters wide, this one is {width_chars}"
        )
    rows = [line.rstrip().ljust(width_chars) for line in lines]
    width, height = (width_chars + 1) // 3, len(rows)
    try:
        world = World.empty(width, height)
    except ValueError as error:
        raise GridParseError(1, 1, str(error)) from None

    def tile(x: int, y: int) -> str:
        return rows[y][3 * x : 3 * x + 2]

    def sep(x: int, y: int) -> str:  # separator right of tile x
        return rows[y][3 * x + 2] if x + 1 < width else " "

    claimed = [[False] * width for _ in range(height)]
    joined_seps: set[tuple[int, int]] = set()  # (x, y) of separators that are inside an entity

    def fail(x: int, y: int, message: str) -> GridParseError:
        return GridParseError(y + 1, 3 * x + 1, message)

    def put(kind: Entity, x: int, y: int, facing: Direction, end: UndergroundEnd = UndergroundEnd.NONE) -> None:
        try:
            world.place(kind, x, y, facing, 0, end)
        except PlacementError as error:
            raise fail(x, y, str(error)) from None

    for y in range(height):
        for x in range(width):
            if claimed[y][x]:
                continue
            t = tile(x, y)
            if t == "..":
                pass
            elif t == "##":
                put(Entity.BLOCKED, x, y, Direction.NORTH)
            elif t == "aa":
                _claim_assembler(x, y, width, height, tile, sep, fail)
                for dy in range(3):
                    for dx in range(3):
                        claimed[y + dy][x + dx] = True
                for dy in (0, 2):
                    joined_seps.update({(x, y + dy), (x + 1, y + dy)})
                put(Entity.ASSEMBLER, x, y, Direction.NORTH)
            elif t[0] == "Y" and t[1] in ARROWS:
                facing = Direction.from_arrow(t[1])
                if facing in (Direction.NORTH, Direction.SOUTH):
                    if x + 1 >= width or sep(x, y) != "Y" or tile(x + 1, y) != t:
                        raise fail(x, y, f"a {facing.name.lower()}-facing splitter is drawn {t}Y{t}")
                    claimed[y][x + 1] = True
                    joined_seps.add((x, y))
                else:
                    # east/west splitters stack two tiles; a column run pairs from its top
                    if y + 1 >= height or tile(x, y + 1) != t or claimed[y + 1][x]:
                        raise fail(x, y, f"a {facing.name.lower()}-facing splitter is {t} on two stacked rows")
                    claimed[y + 1][x] = True
                put(Entity.SPLITTER, x, y, facing)
            elif t[0] in _SIMPLE and t[1] in ARROWS:
                kind, end = _SIMPLE[t[0]]
                put(kind, x, y, Direction.from_arrow(t[1]), end)
            elif 3 * x >= len(lines[y].rstrip()):
                raise fail(x, y, f"row {y + 1} has {len(lines[y].rstrip()) // 3 + 1} tiles, the widest has {width}")
            else:
                raise fail(x, y, f"unknown tile {t!r}")
            claimed[y][x] = True

    for y in range(height):
        for x in range(width - 1):
            if (x, y) not in joined_seps and sep(x, y) != " ":
                raise GridParseError(y + 1, 3 * x + 3, f"separator {sep(x, y)!r} between two entities (expected ' ')")
    return world


def _claim_assembler(x, y, width, height, tile, sep, fail) -> None:  # type: ignore[no-untyped-def]
    if x + 3 > width or y + 3 > height:
        raise fail(x, y, "an assembler needs 3x3 tiles")
    for dy in range(3):
        for dx in range(3):
            want = "  " if (dx, dy) == (1, 1) else "aa"
            if tile(x + dx, y + dy) != want:
                raise fail(x + dx, y + dy, f"assembler tile should be {want!r}, found {tile(x + dx, y + dy)!r}")
        for dx in range(2):
            want = " " if dy == 1 else "a"
            if sep(x + dx, y + dy) != want:
                raise fail(x + dx, y + dy, f"assembler separator should be {want!r}, found {sep(x + dx, y + dy)!r}")


def render_grid(world: World) -> str:
    """The world as a text grid (no trailing newline); `parse_grid` inverts it exactly."""
    rows = [[" "] * (3 * world.width - 1) for _ in range(world.height)]
    for y in range(world.height):
        for x in range(world.width):
            kind = world.entity(x, y)
            arrow = ARROWS[world.facing(x, y)]
            part = int(world.data[Channel.PART, y, x])
            if kind == Entity.EMPTY:
                text = ".."
            elif kind == Entity.BLOCKED:
                text = "##"
            elif kind == Entity.ASSEMBLER:
                text = "  " if part == 4 else "aa"
                if part in (0, 1, 6, 7):
                    rows[y][3 * x + 2] = "a"
            elif kind == Entity.SPLITTER:
                text = "Y" + arrow
                if part == 0 and world.facing(x, y) in (Direction.NORTH, Direction.SOUTH):
                    rows[y][3 * x + 2] = "Y"
            else:
                end = UndergroundEnd(int(world.data[Channel.UNDERGROUND, y, x]))
                text = _LETTER[(kind, end)] + arrow
            rows[y][3 * x : 3 * x + 2] = text
    return "\n".join("".join(row) for row in rows)


class ItemEntry(TypedDict):
    x: int
    y: int
    item: str


def apply_items(world: World, items: list[ItemEntry], catalog: Catalog | None = None) -> None:
    """Name what each source emits, each sink counts and each assembler makes.

    Any tile of an entity names it. Raises ValueError naming the bad entry."""
    catalog = catalog or load_catalog()
    for entry in items:
        x, y, name = entry["x"], entry["y"], entry["item"]
        if not (0 <= x < world.width and 0 <= y < world.height):
            raise ValueError(f"item entry ({x}, {y}) {name!r} is off the {world.width}x{world.height} grid")
        kind = world.entity(x, y)
        if kind in (Entity.SOURCE, Entity.SINK):
            world.data[Channel.ITEM, y, x] = catalog.item_id(name)
        elif kind == Entity.ASSEMBLER:
            ax, ay = world.anchor(x, y)
            world.data[Channel.ITEM, ay : ay + 3, ax : ax + 3] = catalog.recipe_id(name)
        else:
            raise ValueError(
                f"item entry ({x}, {y}) {name!r} names a {kind.name.lower()}, not a source, sink or assembler"
            )


def item_list(world: World, catalog: Catalog | None = None) -> list[ItemEntry]:
    """The `items` list naming every source, sink and assembler by its anchor tile."""
    catalog = catalog or load_catalog()
    entries: list[ItemEntry] = []
    for kind, x, y in world.entities():
        value = int(world.data[Channel.ITEM, y, x])
        if kind in (Entity.SOURCE, Entity.SINK) and value:
            entries.append({"x": x, "y": y, "item": catalog.items[value]})
        elif kind == Entity.ASSEMBLER and value:
            entries.append({"x": x, "y": y, "item": catalog.recipe(value).name})
    return entries
