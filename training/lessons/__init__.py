"""Lessons: seeded task generators, each with a reference solution and its throughput.

`generate(kind, seed, size)` returns a `Lesson`; the same arguments give the same
lesson on any machine. `KINDS` lists what is registered. Kinds so far are the two
sanity lessons (one belt, one machine) that show learning happens at all; the
routing, splitter, machine-row and trial kinds arrive with the expert planner.
"""

from __future__ import annotations

from training.lessons import sanity  # noqa: F401  (registers its kinds)
from training.lessons.base import KINDS, Lesson, generate, register

__all__ = ["KINDS", "Lesson", "generate", "register"]
