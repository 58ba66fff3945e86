"""The `Lesson` record and the registry of lesson kinds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared_schema.entities import Entity
from shared_schema.world import World

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 8, 32, 11
# Seeds kept out of training: evaluation uses the first 100 (any kind, any size).
HELD_OUT_SEEDS = range(1_000_000_000, 1_000_100_000)
# The last 1,000 of them: training's validation picks its best checkpoint on these, so the
# checkpoint is never chosen on the seeds it is then evaluated on.
VALIDATION_SEEDS = HELD_OUT_SEEDS[-1_000:]
# The rest: what evaluation scores.
EVALUATION_SEEDS = HELD_OUT_SEEDS[: -len(VALIDATION_SEEDS)]


@dataclass(frozen=True)
class Lesson:
    """A task and its reference solution.

    task: the world the agent starts from (markers, blocked tiles, protected entities);
    protected: tiles of `task` the agent must leave alone; solution: `task` plus the
    reference entities, or None for trials, which have no known layout; best: each
    sink's best expected rate (sinks row-major), the normaliser of the score: the
    solution's rates, or for trials an upper bound from the recipes and the grid.
    """

    kind: str
    seed: int
    task: World
    protected: frozenset[tuple[int, int]]
    solution: World | None
    best: tuple[float, ...]

    @property
    def solution_entities(self) -> list[tuple[Entity, int, int]]:
        """(kind, x, y) of what the solution adds to the task (none for trials)."""
        if self.solution is None:
            return []
        before = set(self.task.entities())
        return [e for e in self.solution.entities() if e not in before]


Tile = tuple[int, int]
Built = tuple[World, frozenset[Tile], World]  # task, protected tiles, solution
MAX_DRAWS = 200  # a lesson that needs more draws than this is a generator bug


def draw_until_built(
    rng: np.random.Generator, size: int, build: Callable[[np.random.Generator, int], Built | None]
) -> Built:
    """Call `build` (which returns None when its random draw has no solution) until it
    builds a lesson."""
    for _ in range(MAX_DRAWS):
        lesson = build(rng, size)
        if lesson is not None:
            return lesson
    raise RuntimeError(f"no solvable lesson in {MAX_DRAWS} draws on a {size}x{size} grid")


Posed = tuple[World, tuple[float, ...]]  # a trial: task (markers only), each sink's upper bound
Generator = Callable[[np.random.Generator, int], Built | Posed]
KINDS: dict[str, Generator] = {}
TRIAL_KINDS: set[str] = set()  # kinds with no known layout, scored against an upper bound


def register(kind: str, *, trial: bool = False) -> Callable[[Generator], Generator]:
    """Register a generator: (rng, size) -> (task, protected tiles, solution), or for a
    trial (rng, size) -> (task, per-sink upper bounds)."""

    def add(generator: Generator) -> Generator:
        if kind in KINDS:
            raise ValueError(f"lesson kind {kind!r} is registered twice")
        KINDS[kind] = generator
        if trial:
            TRIAL_KINDS.add(kind)
        return generator

    return add


def generate(kind: str, seed: int, size: int = DEFAULT_SIZE) -> Lesson:
    """The lesson of `kind` for `seed` on a `size` x `size` grid; its best rates come
    from simulating the solution in the mimic (trials bring their own bounds)."""
    from training.sim import sink_rates_batch

    if kind not in KINDS:
        raise ValueError(f"unknown lesson kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"lesson grids are {MIN_SIZE} to {MAX_SIZE} tiles a side, not {size}")
    # one stream per (kind, seed): kinds never share random numbers
    rng = np.random.default_rng([seed, sum(map(ord, kind))])
    made = KINDS[kind](rng, size)
    if len(made) == 2:
        task, bounds = made
        return Lesson(kind, seed, task, frozenset(), None, bounds)
    task, protected, solution = made
    out, counts = sink_rates_batch(solution.data[None], trusted=True)  # built by World.place
    best = tuple(float(r) for r in out[0, : counts[0]])
    return Lesson(kind, seed, task, protected, solution, best)
