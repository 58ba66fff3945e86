"""Lessons: seeded task generators, each with a reference solution and its throughput.

`generate(kind, seed, size)` returns a `Lesson`; the same arguments give the same
lesson on any machine. `KINDS` lists what is registered, in curriculum order:
- sanity (`sanity.py`): one-belt, one-machine, the smallest tasks;
- belt routing (`routing.py`): belt-routing, belt-wall, belt-crossing;
- splitters (`splitters.py`): split, merge;
- machines (`machines.py`): machine (1 to 4 ingredients), machine-row (2 or 3 machines);
- trials (`trials.py`): trial-1, trial-2, trial-3, markers only, no known layout, scored
  against an upper bound (`TRIAL_KINDS`).
"""

from __future__ import annotations

# isort: off
# registration order is the curriculum's: simplest kinds first, trials last
from training.lessons import sanity, routing, splitters, machines, trials  # noqa: F401

# isort: on
from training.lessons.base import (
    EVALUATION_SEEDS,
    HELD_OUT_SEEDS,
    KINDS,
    TRIAL_KINDS,
    VALIDATION_SEEDS,
    Lesson,
    generate,
    register,
)

__all__ = [
    "EVALUATION_SEEDS",
    "HELD_OUT_SEEDS",
    "KINDS",
    "TRIAL_KINDS",
    "VALIDATION_SEEDS",
    "Lesson",
    "generate",
    "register",
]
