"""Where episodes come from: which lesson each reset draws, and the world it starts in.

Generating a lesson costs milliseconds, an env step microseconds, so lessons are
reused. The design, chosen so that a sub-environment of the vector env and a single
env with the same seed draw the same lessons (each draw is a pure function of the
env's own random stream and reset count):

- Training seeds come from a sliding window: the k-th reset of an env draws its kind
  by `weights` and its seed uniformly from the `pool_size` seeds starting at
  `k * pool_size // pool_resets` (mapped around `HELD_OUT_SEEDS`, which training
  never sees). Every env walks the same windows, so at any time the envs share a pool
  of about `pool_size` lessons per kind, refreshed a seed at a time: the window moves
  on by one seed every `pool_resets / pool_size` resets of each env, so new lessons
  come in a steady trickle rather than in bursts.
- `prepare` memoises generated lessons (LRU, `LESSON_CACHE` entries), so each lesson
  is generated once, when first drawn, then reused: with N envs each serves about
  N * pool_resets / (pool_size * kinds) resets (256 envs, the defaults and 12 kinds:
  about 40), and a step generates that many times fewer lessons than it resets.
- With `seeds` given (evaluation), the seed is drawn uniformly from that list instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shared_schema.entities import footprint
from shared_schema.world import Channel
from training.lessons import KINDS, Lesson, generate
from training.lessons.base import HELD_OUT_SEEDS
from training.sim.engine import MAX_SINKS, sink_rates_batch

LESSON_CACHE = 2048  # prepared lessons kept; a few windows' worth for a dozen kinds


@dataclass(frozen=True)
class Prepared:
    """A lesson with what resets need ready: best: float64[MAX_SINKS], the score's
    normalisers padded with 1; task_rates: float64[MAX_SINKS], the task's own sink rates
    (so a reset with nothing prefilled needs no mimic call); parts: flat tile indices of
    each solution entity."""

    lesson: Lesson
    best: np.ndarray
    task_rates: np.ndarray
    parts: tuple[np.ndarray, ...]

    @property
    def n_sinks(self) -> int:
        return len(self.lesson.best)


@lru_cache(maxsize=LESSON_CACHE)
def prepare(kind: str, seed: int, size: int) -> Prepared:
    lesson = generate(kind, seed, size)
    n = len(lesson.best)
    if not 0 < n <= MAX_SINKS or min(lesson.best) <= 0:
        raise ValueError(f"lesson {kind} seed {seed}: needs 1 to {MAX_SINKS} sinks with positive best rates")
    best = np.ones(MAX_SINKS)
    best[:n] = lesson.best
    task_rates = sink_rates_batch(lesson.task.data[None])[0][0]
    return Prepared(lesson, best, task_rates, solution_parts(lesson))


def solution_parts(lesson: Lesson) -> tuple[np.ndarray, ...]:
    """Flat tile indices of each entity the lesson's solution adds (none for trials)."""
    parts = []
    if lesson.solution is not None:
        data, size = lesson.solution.data, lesson.solution.width
        for entity, x, y in lesson.solution_entities:
            w, h = footprint(entity, int(data[Channel.FACING, y, x]))
            parts.append(np.array([(y + dy) * size + x + dx for dy in range(h) for dx in range(w)]))
    return tuple(parts)


def training_seed(index: int) -> int:
    """The index-th training seed: 0, 1, 2, ... skipping the held-out range."""
    return index + len(HELD_OUT_SEEDS) if index >= HELD_OUT_SEEDS.start else index


def kind_shares(kinds: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None) -> np.ndarray:
    """How often each of `kinds` is drawn, float64[len(kinds)] summing to 1, from relative
    `weights` (a mapping by name, or one per kind; None: equally); ValueError unless
    there is one non-negative weight per kind, not all zero."""
    if weights is None:
        p = np.ones(len(kinds))
    elif isinstance(weights, Mapping):
        p = np.array([float(weights.get(k, 0.0)) for k in kinds])
    else:
        p = np.array(weights, np.float64)
    if p.shape != (len(kinds),) or (p < 0).any() or p.sum() <= 0:
        raise ValueError("weights: one non-negative weight per kind, not all zero")
    return p / p.sum()


class LessonSupply:
    """Draws lessons for resets (see the module docstring)."""

    def __init__(
        self,
        size: int,
        kinds: Sequence[str] | None = None,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        seeds: Sequence[int] | None = None,
        pool_size: int = 32,
        pool_resets: int = 64,
    ) -> None:
        self.size = size
        self.kinds = tuple(kinds) if kinds is not None else tuple(KINDS)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"unknown lesson kinds {unknown}; known: {', '.join(KINDS)}")
        self.cumulative = np.cumsum(kind_shares(self.kinds, weights))
        self.seeds = tuple(seeds) if seeds is not None else None
        if self.seeds == ():
            raise ValueError("seeds: give at least one seed, or None for training seeds")
        if pool_size < 1 or pool_resets < 1:
            raise ValueError("pool_size and pool_resets must be at least 1")
        self.pool_size, self.pool_resets = pool_size, pool_resets

    def pick(self, rng: np.random.Generator, resets: int) -> tuple[str, int]:
        """(kind, seed) of an env's `resets`-th reset (counted from its last seeding)."""
        # inverse CDF: what rng.choice(p=...) does, at a tenth of its per-call cost
        kind = self.kinds[min(int(np.searchsorted(self.cumulative, rng.random(), "right")), len(self.kinds) - 1)]
        if self.seeds is not None:
            return kind, self.seeds[int(rng.integers(len(self.seeds)))]
        first = resets * self.pool_size // self.pool_resets
        return kind, training_seed(first + int(rng.integers(self.pool_size)))

    def draw(self, rng: np.random.Generator, resets: int) -> Prepared:
        return prepare(*self.pick(rng, resets), self.size)


def start(prepared: Prepared, rng: np.random.Generator, prefill: float) -> tuple[np.ndarray, bool]:
    """The episode's first world, int16[6, H, W]: the task plus a random `prefill`
    fraction (rounded) of the solution's entities (trials have none), and whether
    anything was added (if not, its rates are `prepared.task_rates`)."""
    data = prepared.lesson.task.data.copy()
    count = int(prefill * len(prepared.parts) + 0.5)
    if count and prepared.lesson.solution is not None:
        solution = prepared.lesson.solution.data.reshape(data.shape[0], -1)
        flat = data.reshape(data.shape[0], -1)
        for i in rng.choice(len(prepared.parts), count, replace=False):
            flat[:, prepared.parts[i]] = solution[:, prepared.parts[i]]
    return data, count > 0
