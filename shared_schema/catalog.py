"""The base game's items and solid recipes an assembling-machine-1 can craft.

Loaded from `data/catalog.json`, which `scripts/generate_catalog.py` writes from the
game's data. Ids are dense small integers (0 means "none") so kernels and tensors
never look up strings: item id = index in `ITEMS`, recipe id = index in `RECIPES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

CATALOG_PATH = Path(__file__).with_name("data") / "catalog.json"


@dataclass(frozen=True)
class Recipe:
    name: str
    time: float  # seconds at crafting speed 1
    ingredients: tuple[tuple[str, int], ...]
    products: tuple[tuple[str, float], ...]  # amount may be fractional (expected value)


class UnknownNameError(ValueError):
    """An item or recipe name the catalog does not know."""


@dataclass(frozen=True, eq=False)  # hashed by identity: its name indices are cached per catalog
class Catalog:
    items: tuple[str, ...]  # items[0] == "" (none)
    recipes: tuple[Recipe | None, ...]  # recipes[0] is None (none)
    source: str

    def item_id(self, name: str) -> int:
        try:
            return self._item_index[name]
        except KeyError:
            raise UnknownNameError(f"unknown item {name!r}: not a solid item of the base game") from None

    def recipe_id(self, name: str) -> int:
        """Id of the recipe called `name`, or else of the one whose main product is `name`."""
        index = self._recipe_index.get(name)
        if index is None:
            index = self._product_index.get(name)
        if index is None:
            raise UnknownNameError(
                f"unknown recipe {name!r}: no assembling-machine-1 recipe makes it from solid ingredients"
            )
        return index

    def recipe(self, name_or_id: str | int) -> Recipe:
        index = name_or_id if isinstance(name_or_id, int) else self.recipe_id(name_or_id)
        recipe = self.recipes[index]
        if recipe is None:
            raise UnknownNameError(f"recipe id {index} is not a recipe")
        return recipe

    def recipe_making(self, item: str) -> int | None:
        """Id of the recipe whose main product is `item`, or None if no recipe makes it."""
        return self._product_index.get(item)

    @property
    def _item_index(self) -> dict[str, int]:
        return _indices(self)[0]

    @property
    def _recipe_index(self) -> dict[str, int]:
        return _indices(self)[1]

    @property
    def _product_index(self) -> dict[str, int]:
        return _indices(self)[2]


@cache
def _indices(catalog: Catalog) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    items = {name: i for i, name in enumerate(catalog.items) if name}
    recipes = {r.name: i for i, r in enumerate(catalog.recipes) if r is not None}
    products: dict[str, int] = {}
    for i, r in enumerate(catalog.recipes):
        if r is not None and r.products:
            products.setdefault(r.products[0][0], i)
    return items, recipes, products


@cache
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    raw = json.loads(path.read_text())
    recipes: list[Recipe | None] = [None]
    for r in raw["recipes"]:
        recipes.append(
            Recipe(
                name=r["name"],
                time=float(r["time"]),
                ingredients=tuple((i["name"], int(i["amount"])) for i in r["ingredients"]),
                products=tuple((p["name"], float(p["amount"])) for p in r["products"]),
            )
        )
    return Catalog(items=("", *raw["items"]), recipes=tuple(recipes), source=raw["source"])


MAX_RECIPE_SLOTS = 8  # max distinct ingredients or products per recipe (spidertron has 8)


@dataclass(frozen=True)
class RecipeTables:
    """Recipes as flat arrays for kernels.

    time: float64[R]; ingredient_item / product_item: int32[R, MAX_RECIPE_SLOTS] (0 = unused);
    ingredient_amount / product_amount: float64[R, MAX_RECIPE_SLOTS]. Row 0 is "no recipe".
    """

    time: np.ndarray
    ingredient_item: np.ndarray
    ingredient_amount: np.ndarray
    product_item: np.ndarray
    product_amount: np.ndarray


@cache
def recipe_tables(catalog: Catalog | None = None) -> RecipeTables:
    catalog = catalog or load_catalog()
    n = len(catalog.recipes)
    time = np.ones(n, np.float64)
    ing_item = np.zeros((n, MAX_RECIPE_SLOTS), np.int32)
    ing_amount = np.zeros((n, MAX_RECIPE_SLOTS), np.float64)
    prod_item = np.zeros((n, MAX_RECIPE_SLOTS), np.int32)
    prod_amount = np.zeros((n, MAX_RECIPE_SLOTS), np.float64)
    for i, r in enumerate(catalog.recipes):
        if r is None:
            continue
        time[i] = r.time
        for j, (name, amount) in enumerate(r.ingredients):
            ing_item[i, j] = catalog.item_id(name)
            ing_amount[i, j] = amount
        for j, (name, amount_f) in enumerate(r.products):
            prod_item[i, j] = catalog.item_id(name)
            prod_amount[i, j] = amount_f
    return RecipeTables(time, ing_item, ing_amount, prod_item, prod_amount)
