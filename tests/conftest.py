"""Shared test helpers: the fixture files, worlds written as text grids, and a tiny
exported policy for the server's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared_schema.grid import ItemEntry, apply_items, parse_grid
from shared_schema.world import World

FIXTURE_DIR = Path(__file__).parent / "fixtures"
FIXTURE_FILES = sorted(FIXTURE_DIR.glob("*.yaml"))


def world_of(grid: str, items: list[tuple[int, int, str]] = ()) -> World:  # type: ignore[assignment]
    """A world from a text grid and (x, y, item) naming sources, sinks and assemblers."""
    world = parse_grid(grid)
    entries: list[ItemEntry] = [{"x": x, "y": y, "item": item} for x, y, item in items]
    apply_items(world, entries)
    return world


@pytest.fixture
def fixture_files() -> list[Path]:
    return FIXTURE_FILES


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained policy exported as the server would receive it."""
    import torch

    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("policy") / "tiny.onnx"
    export(Policy(ModelConfig(width=16, conv_blocks=1)).eval(), path, 11, source="tiny.pt")
    return path
