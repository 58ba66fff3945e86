"""Fixture files: YAML documents of a layout, its items and the throughputs expected.

Keys per document (MECHANICS.md): `factory` (text grid), `items` (list of {x, y, item}),
`throughput` (list of {item, per_second}, matched against the sinks as a multiset,
each within 1e-6) and optional `description`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared_schema.grid import apply_items, parse_grid
from shared_schema.world import World
from training.sim.engine import SimResult, simulate

TOLERANCE = 1e-6


class FixtureError(ValueError):
    """A fixture document that cannot be read; names the file and document."""


@dataclass(frozen=True)
class Fixture:
    path: Path
    index: int  # 1-based document number in its file
    description: str
    world: World
    expected: list[tuple[str, float]]

    @property
    def name(self) -> str:
        return f"{self.path.name}#{self.index}"


def load_fixtures(path: str | Path) -> list[Fixture]:
    path = Path(path)
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        raise FixtureError(f"{path}: cannot read: {error}") from None
    return [_fixture(path, i + 1, doc) for i, doc in enumerate(documents)]


def _fixture(path: Path, index: int, doc: Any) -> Fixture:
    where = f"{path}, document {index}"
    if not isinstance(doc, dict) or "factory" not in doc:
        raise FixtureError(f"{where}: expected a mapping with a 'factory' key")
    try:
        world = parse_grid(str(doc["factory"]))
        apply_items(world, list(doc.get("items") or []))
        expected = [(str(t["item"]), float(t["per_second"])) for t in doc.get("throughput") or []]
    except (ValueError, KeyError, TypeError) as error:
        raise FixtureError(f"{where}: {error}") from None
    return Fixture(path, index, str(doc.get("description", "")).strip(), world, expected)


@dataclass(frozen=True)
class Outcome:
    fixture: Fixture
    result: SimResult
    passed: bool

    @property
    def got(self) -> list[tuple[str, float]]:
        return sorted((s.item, round(s.per_second, 9)) for s in self.result.sinks)


def check(fixture: Fixture) -> Outcome:
    """Run a fixture's layout and compare its sinks with the expected multiset."""
    result = simulate(fixture.world)
    got = sorted((s.item, s.per_second) for s in result.sinks)
    want = sorted(fixture.expected)
    passed = len(got) == len(want) and _multiset_match(got, want)
    return Outcome(fixture, result, passed)


def _multiset_match(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    remaining = list(got)
    for item, rate in want:
        for j, (g_item, g_rate) in enumerate(remaining):
            if g_item == item and abs(g_rate - rate) <= TOLERANCE:
                del remaining[j]
                break
        else:
            return False
    return not remaining
