"""Lessons: seeded task generators, each with a reference solution and its throughput.

`generate(kind, seed, size)` returns a `Lesson`; the same arguments give the same
lesson on any machine. `KINDS` lists what is registered: the two sanity lessons (one
belt, one machine) that show learning happens at all, and the belt routing lessons
(`routing.py`); the splitter, machine-row and trial kinds are still to come.
"""

from __future__ import annotations

from training.lessons import machines, routing, sanity, splitters  # noqa: F401  (register their kinds)
from training.lessons.base import KINDS, Lesson, generate, register

__all__ = ["KINDS", "Lesson", "generate", "register"]
