"""The item and recipe catalog: the base game's figures, reproducible from its source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_schema.catalog import CATALOG_PATH, UnknownNameError, load_catalog, recipe_tables

ROOT = Path(__file__).parents[1]


def test_figures_the_mechanics_rely_on() -> None:
    catalog = load_catalog()
    gear = catalog.recipe("iron-gear-wheel")
    assert (gear.time, gear.ingredients, gear.products) == (0.5, (("iron-plate", 2),), (("iron-gear-wheel", 1.0),))
    assert catalog.recipe("accumulator").time == 10.0
    circuit = catalog.recipe("electronic-circuit")
    assert sorted(circuit.ingredients) == [("copper-cable", 3), ("iron-plate", 1)]
    assert catalog.recipe("copper-cable").products == (("copper-cable", 2.0),)


def test_only_solid_recipes_an_assembling_machine_1_makes() -> None:
    catalog = load_catalog()
    for fluid_made in ("plastic-bar", "sulfur", "processing-unit", "battery", "lubricant"):
        with pytest.raises(UnknownNameError, match=fluid_made):
            catalog.recipe_id(fluid_made)
    with pytest.raises(UnknownNameError, match="unobtainium"):
        catalog.item_id("unobtainium")


def test_recipe_tables_index_by_id() -> None:
    catalog = load_catalog()
    tables = recipe_tables()
    gear = catalog.recipe_id("iron-gear-wheel")
    assert tables.time[gear] == 0.5
    assert tables.ingredient_item[gear, 0] == catalog.item_id("iron-plate")
    assert tables.ingredient_amount[gear, 0] == 2
    assert np.count_nonzero(tables.ingredient_item[gear]) == 1


def test_the_committed_catalog_is_what_the_script_generates(tmp_path: Path) -> None:
    out = tmp_path / "catalog.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_catalog.py"), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_text() == CATALOG_PATH.read_text()
