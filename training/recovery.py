"""Recovery lessons for supervised pre-training (DAgger, Ross, Gordon and Bagnell 2011):
states the policy reaches by itself, each labelled with a way to solve its lesson from there.

Imitating the reference solutions teaches only their own partial layouts. One stray
placement in a greedy rollout leaves the policy in a state it never saw, and from there
it wanders: most greedy failures on the machine lessons look like this, with the right
machine and one inserter wrong. So SFT (`--recovery`) rolls the policy out greedily on
lessons of its pool now and then. For each rollout that does not solve its lesson, it
keeps the state just after the first placement the solution lacks, and the final state.
Each state is kept if it can still be solved:
- by the solution's entities whose tiles are still empty (the policy's strays stay), or
- failing that, by the expert's layout planned around what stands (`expert_layout`).

Each kept state becomes a lesson of its own: its task is the state and its solution that
completion. SFT draws these like the reference lessons, prefixes included. A state where
the layout already solves the lesson (a later placement broke it) teaches "done".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from training.env.supply import Prepared, solution_parts
from training.evaluate import SOLVED, HeadsFn, rollout, score_layout
from training.expert import expert_layout
from training.sim.engine import sink_rates_batch


def strays(states: np.ndarray, solution: np.ndarray) -> np.ndarray:
    """bool[T]: whether step t of a rollout placed something `solution` does not have there;
    `states` int16[T + 1, 6, H, W] are the rollout's worlds, its task first."""
    changed = (states[1:] != states[:-1]).any(axis=1)
    differs = (states[1:] != solution[None]).any(axis=1)
    return (changed & differs).any(axis=(1, 2))


def with_solution(world: np.ndarray, prepared: Prepared) -> np.ndarray:
    """`world` plus every entity of the lesson's solution whose tiles are all still empty."""
    solution = prepared.lesson.solution
    assert solution is not None, f"{prepared.lesson.kind} has no solution to complete with"
    completed = world.copy()
    flat, source = completed.reshape(len(Channel), -1), solution.data.reshape(len(Channel), -1)
    empty = flat[Channel.ENTITY] == Entity.EMPTY
    for part in prepared.parts:
        if empty[part].all():
            flat[:, part] = source[:, part]
    return completed


def completion(world: np.ndarray, prepared: Prepared, use_expert: bool = True) -> np.ndarray | None:
    """A layout that solves `prepared`'s lesson from `world` and keeps all of it: the
    solution's free entities, else the expert's layout around it; None when neither does."""
    lesson = prepared.lesson
    completed = with_solution(world, prepared)
    if score_layout(lesson, World(completed)) >= SOLVED:
        return completed
    if use_expert:
        layout = expert_layout(World(world.copy()), lesson.protected)
        if layout is not None and score_layout(lesson, layout) >= SOLVED:
            return layout.data
    return None


def recovery_lesson(world: np.ndarray, solution: np.ndarray, prepared: Prepared) -> Prepared:
    """`prepared`'s lesson restarted from `world`, with `solution` (which keeps all of it) to imitate."""
    lesson = replace(prepared.lesson, task=World(world.copy()), solution=World(solution))
    task_rates = sink_rates_batch(world[None])[0][0]
    return Prepared(lesson, prepared.best, task_rates, solution_parts(lesson))


def recoveries(states: np.ndarray, prepared: Prepared, use_expert: bool = True) -> list[Prepared]:
    """Recovery lessons from one greedy rollout (`states` as in `strays`): none when it
    solved its lesson; else from the state after its first stray placement and from its
    final state, those that can still be solved (`completion`)."""
    lesson = prepared.lesson
    assert lesson.solution is not None, f"{lesson.kind} has no solution to recover to"
    final = len(states) - 1
    if score_layout(lesson, World(states[final])) >= SOLVED:
        return []
    stray = np.flatnonzero(strays(states, lesson.solution.data))
    picks = sorted({int(stray[0]) + 1, final} if len(stray) else {final})
    found = []
    for t in picks:
        solution = completion(states[t], prepared, use_expert)
        if solution is not None:
            found.append(recovery_lesson(states[t], solution, prepared))
    return found


def collect(heads: HeadsFn, lessons: Sequence[Prepared], use_expert: bool = True) -> tuple[list[Prepared], float]:
    """Greedy rollouts of `heads` on `lessons` (one grid size): their recovery lessons, and
    the share of the lessons the rollouts solved."""
    tasks = np.stack([prepared.lesson.task.data for prepared in lessons])
    states = [tasks.copy()]
    rollout(heads, tasks, states=states)
    trajectories = np.stack(states, axis=1)
    found: list[Prepared] = []
    solved = 0
    for prepared, trajectory in zip(lessons, trajectories, strict=True):
        if score_layout(prepared.lesson, World(trajectory[-1])) >= SOLVED:
            solved += 1
        else:
            found += recoveries(trajectory, prepared, use_expert)
    return found, solved / max(len(lessons), 1)
