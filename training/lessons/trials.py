"""Trials: the tasks players pose. Only the markers, no known layout.

A trial of depth d asks for a product made by a chain of d recipes: the product's
recipe, one of its ingredients made in the region by a second recipe, one of that
recipe's ingredients by a third (each ingredient not made in the region comes from its
own source; every item appears once). The score's normaliser is an upper bound,
`chain_bound`: the best rate one assembling machine per recipe of the chain can give.
"""

from __future__ import annotations

import numpy as np

from shared_schema.catalog import load_catalog
from shared_schema.entities import ASSEMBLER_SPEED, BELT_RATE, LONG_INSERTER_RATE, Entity
from shared_schema.world import World
from training.lessons.base import Posed, register
from training.lessons.machines import recipes_with
from training.lessons.routing import spot

MAX_SOURCES = 4
MAX_CHAIN_DRAWS = 500
# Inserters that can reach a 3x3 machine: one on each of the 12 tiles beside it
# (plain or long-handed) and a long-handed one on each of the 12 tiles beyond those.
ARMS_PER_MACHINE = 24


def chain_leaves(chain: list[int]) -> list[str]:
    """The items a chain (recipe ids, product's recipe first, each next one making an
    ingredient of the one before) takes from sources, in the order of the chain."""
    catalog = load_catalog()
    made = {catalog.recipe(r).products[0][0] for r in chain}
    return [name for r in chain for name, _ in catalog.recipe(r).ingredients if name not in made]


def random_chain(rng: np.random.Generator, depth: int) -> list[int]:
    """A chain of `depth` recipes with at most MAX_SOURCES distinct leaves, every item once."""
    catalog = load_catalog()
    usable = {r for n in (1, 2, 3) for r in recipes_with(n)}
    for _ in range(MAX_CHAIN_DRAWS):
        chain = [int(rng.choice(sorted(usable)))]
        while len(chain) < depth:
            options = [catalog.recipe_making(name) for name, _ in catalog.recipe(chain[-1]).ingredients]
            options = [r for r in options if r in usable and r not in chain]
            if not options:
                break
            chain.append(int(rng.choice(options)))  # type: ignore[arg-type]
        if len(chain) < depth:
            continue
        leaves = chain_leaves(chain)
        products = [catalog.recipe(r).products[0][0] for r in chain]
        items = leaves + products
        if len(leaves) <= MAX_SOURCES and len(set(items)) == len(items):
            return chain
    raise RuntimeError(f"no recipe chain of depth {depth} in {MAX_CHAIN_DRAWS} draws")


def chain_bound(chain: list[int]) -> float:
    """Upper bound on the product rate (items/s) of one machine per recipe of `chain`.

    Each machine crafts at most ASSEMBLER_SPEED / time per second, and no faster than
    its inserters can move its ingredients and products (ARMS_PER_MACHINE long-handed
    inserters at most). Each machine but the last is fed by the next one's products, and
    the product leaves on at most one belt's worth."""
    catalog = load_catalog()
    crafts = float("inf")  # crafts/s the machine below can support, none below the last
    for k in range(len(chain) - 1, -1, -1):
        recipe = catalog.recipe(chain[k])
        moved = sum(a for _, a in recipe.ingredients) + recipe.products[0][1]
        rate = min(ASSEMBLER_SPEED / recipe.time, ARMS_PER_MACHINE * LONG_INSERTER_RATE / moved)
        if k + 1 < len(chain):
            below = catalog.recipe(chain[k + 1])
            needed = dict(recipe.ingredients)[below.products[0][0]]
            rate = min(rate, crafts * below.products[0][1] / needed)
        crafts = rate
    return min(crafts * catalog.recipe(chain[0]).products[0][1], BELT_RATE)


def _trial(depth: int):  # type: ignore[no-untyped-def]
    def generate_trial(rng: np.random.Generator, size: int) -> Posed:
        catalog = load_catalog()
        chain = random_chain(rng, depth)
        for _ in range(200):
            task = World.empty(size, size)
            markers = [(Entity.SOURCE, name) for name in chain_leaves(chain)]
            markers.append((Entity.SINK, catalog.recipe(chain[0]).products[0][0]))
            for kind, name in markers:
                found = spot(task, rng, (0, 0, size, size))
                if found is None:
                    break
                task.place(kind, found[0], found[1], found[2], catalog.item_id(name))
            else:
                return task, (chain_bound(chain),)
        raise RuntimeError(f"no room for the markers of a depth-{depth} trial on a {size}x{size} grid")

    return generate_trial


for _depth in (1, 2, 3):
    register(f"trial-{_depth}", trial=True)(_trial(_depth))
