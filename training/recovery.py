"""Other ways to solve a lesson than its one reference solution, for supervised pre-training.

Hub choices (SFT's `--hub-kinds`, `hub_choices`): the expert puts a lesson's splitter or
machine at one spot by a global rule (cheapest, ties to the top left; nearest the
markers), but from most spots its layout *through that hub* solves the lesson too. SFT
imitates one of those at random, and counts every one right on the bare task.

Recovery lessons (SFT's `--recovery`; DAgger, Ross, Gordon and Bagnell 2011): states the
policy reaches by itself, each labelled with a way to solve its lesson from there.
Imitating the reference solutions teaches only their own partial layouts. One stray
placement in a greedy rollout leaves the policy in a state it never saw, and from there
it wanders, as in the machine lessons' failures: the right machine and one inserter
wrong. So SFT rolls the policy out greedily on
lessons of its pool now and then. For each rollout that does not solve its lesson, it
keeps the state just after the first placement the solution lacks, and the final state.
Each state is kept if it can still be solved, keeping all it holds:
- by the solution's entities whose tiles are still empty (the policy's strays stay);
- failing that, where the policy built its own splitter or machine, by the expert's
  layout through that one (`around_own_hub`): many spots work besides the solution's;
- else by the expert's layout planned around what stands (`expert_layout`). It is not
  asked when the policy built a hub: it would build a second one.

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
from training.env.core import PLACEABLE, place, reasons
from training.env.supply import Prepared, solution_parts
from training.evaluate import SOLVED, HeadsFn, rollout, score_layout
from training.expert import HUBS, expert_layout, open_markers
from training.expert.machines import CANDIDATE_ANCHORS, free_anchors, infer_chain, plan_chain
from training.expert.splitters import CANDIDATE_SPLITTERS, SplitterSpot, split_through, splitter_spots
from training.lessons import Lesson
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


def own_hubs(world: np.ndarray, lesson: Lesson) -> list[tuple[Entity, int, int]]:
    """(kind, x, y) of the splitters and machines in `world` that the lesson's task lacks."""
    given = set(lesson.task.entities())
    return [(k, x, y) for k, x, y in World(world).entities() if k in HUBS and (k, x, y) not in given]


def around_own_hub(world: np.ndarray, lesson: Lesson) -> World | None:
    """The expert's layout from `world` through the one splitter (one source, two sinks)
    or machine (one sink its recipe chain makes) the policy built, or None."""
    hubs = own_hubs(world, lesson)
    if len(hubs) != 1:
        return None
    kind, x, y = hubs[0]
    state = World(world.copy())
    sources = open_markers(state, Entity.SOURCE, lesson.protected)
    sinks = open_markers(state, Entity.SINK, lesson.protected)
    if kind == Entity.SPLITTER and len(sources) == 1 and len(sinks) == 2:
        for half in (0, 1):
            spot = SplitterSpot(0, x, y, state.facing(x, y), half)
            layout = split_through(state, sources[0][0], [tile for tile, _ in sinks], spot, lesson.protected)
            if layout is not None:
                return layout
        return None
    if kind != Entity.ASSEMBLER or len(sinks) != 1:
        return None
    chain = infer_chain(sinks[0][1], [item for _, item in sources])
    if chain is None or int(world[Channel.ITEM, y, x]) != chain[0]:
        return None  # the machine makes something else
    state.remove(x, y)  # the chain's builder places its first machine again, just there
    by_item = {item: tile for tile, item in sources}
    return plan_chain(state, chain, by_item, sinks[0][0], lesson.protected, roots=[(x, y)])


def hub_choices(prepared: Prepared) -> list[tuple[np.ndarray, World]]:
    """Where the lesson's one splitter (one source, two sinks) or first machine (one sink
    a recipe chain makes) may stand: every spot of the `CANDIDATE_SPLITTERS` cheapest, or
    anchor of the `CANDIDATE_ANCHORS` nearest, from which the expert's layout through it
    (`around_own_hub`) solves the lesson, as (env action int64[5] placing it, that layout).
    The expert's own rule picks one of many that work; a policy need not find that one."""
    lesson = prepared.lesson
    task = lesson.task
    sources = open_markers(task, Entity.SOURCE, lesson.protected)
    sinks = open_markers(task, Entity.SINK, lesson.protected)
    placements: list[tuple[int, int, int, int]] = []  # x, y, kind index, facing or recipe
    if len(sources) == 1 and len(sinks) == 2:
        spots = splitter_spots(task, sources[0][0], [tile for tile, _ in sinks], lesson.protected)
        for spot in spots[:CANDIDATE_SPLITTERS]:
            placement = (spot.x, spot.y, PLACEABLE.index(Entity.SPLITTER), int(spot.facing))
            if placement not in placements:  # the same splitter fed into its other half
                placements.append(placement)
    elif len(sinks) == 1 and sinks[0][1] not in {item for _, item in sources}:
        chain = infer_chain(sinks[0][1], [item for _, item in sources])
        if chain is not None:
            markers = [tile for tile, _ in sources + sinks]
            for _, y, x in free_anchors(task, markers)[:CANDIDATE_ANCHORS]:
                placements.append((x, y, PLACEABLE.index(Entity.ASSEMBLER), chain[0]))
    choices = []
    for x, y, kind, detail in placements:
        machine = kind == PLACEABLE.index(Entity.ASSEMBLER)
        action = np.array([y * task.width + x, kind, 0 if machine else detail, detail if machine else 0, 0], np.int64)
        world = task.data[None].copy()
        if reasons(world, np.array([0]), action[None]).item() != -1:
            continue  # not buildable there
        place(world, np.array([0]), action[None])
        layout = around_own_hub(world[0], lesson)
        if layout is not None and score_layout(lesson, layout) >= SOLVED:
            choices.append((action, layout))
    return choices


def completion(world: np.ndarray, prepared: Prepared, use_expert: bool = True) -> np.ndarray | None:
    """A layout that solves `prepared`'s lesson from `world` and keeps all of it (see the
    module docstring for which), or None."""
    lesson = prepared.lesson
    built = world[Channel.ENTITY] != Entity.EMPTY

    def solves(candidate: World | None) -> bool:
        if candidate is None or not (candidate.data[:, built] == world[:, built]).all():
            return False
        return score_layout(lesson, candidate) >= SOLVED

    completed = World(with_solution(world, prepared))
    if solves(completed):
        return completed.data
    if not use_expert:
        return None
    # the expert is slow: asked only when the solution's own entities do not do
    if own_hubs(world, lesson):
        layout = around_own_hub(world, lesson)
    else:
        layout = expert_layout(World(world.copy()), lesson.protected)
    return layout.data if layout is not None and solves(layout) else None


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
