"""The four facings, their grid vectors, arrows, and the game's 2.0 direction numbers.

Tiles are addressed (x, y): x grows east, y grows south. A facing is the direction
items move (for belts, inserters, splitters and undergrounds alike).
"""

from __future__ import annotations

from enum import IntEnum


class Direction(IntEnum):
    """A facing; the value is the quarter-turn count clockwise from north."""

    NORTH = 0
    EAST = 1
    SOUTH = 2
    WEST = 3

    @property
    def dx(self) -> int:
        return DX[self]

    @property
    def dy(self) -> int:
        return DY[self]

    @property
    def arrow(self) -> str:
        return ARROWS[self]

    @property
    def game(self) -> int:
        """The Factorio 2.0 `defines.direction` value (16-way enum: 0, 4, 8, 12)."""
        return int(self) * 4

    def turned(self, quarter_turns: int) -> Direction:
        """This facing turned clockwise by `quarter_turns` (negative: anticlockwise)."""
        return Direction((int(self) + quarter_turns) % 4)

    @property
    def opposite(self) -> Direction:
        return self.turned(2)

    @classmethod
    def from_arrow(cls, arrow: str) -> Direction:
        try:
            return cls(ARROWS.index(arrow))
        except ValueError:
            raise ValueError(f"unknown arrow {arrow!r}: expected one of {' '.join(ARROWS)}") from None

    @classmethod
    def from_game(cls, value: int) -> Direction:
        """From a 2.0 `defines.direction` value; only the four cardinal ones are accepted."""
        if value not in (0, 4, 8, 12):
            raise ValueError(f"direction {value} is not a cardinal 2.0 direction (0, 4, 8 or 12)")
        return cls(value // 4)


# Indexed by Direction value; plain tuples so numba kernels and Python share one table.
DX = (0, 1, 0, -1)
DY = (-1, 0, 1, 0)
ARROWS = ("^", ">", "v", "<")
