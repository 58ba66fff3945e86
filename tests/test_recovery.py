"""Recovery lessons (DAgger): states a policy's own rollout reaches become lessons that
keep everything the policy built and show a way to solve the task from there."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared_schema.entities import Entity
from shared_schema.world import Channel, World
from tests.test_sft import TINY
from training import sft
from training.config import ConfigError
from training.env.core import PLACEABLE, n_recipes, place
from training.env.supply import Prepared, prepare, training_seed
from training.evaluate import SOLVED, score_layout
from training.expert import open_markers
from training.expert.splitters import SplitterSpot, split_through, splitter_spots
from training.onnx_policy import HeadArrays
from training.recovery import around_own_hub, collect, completion, hub_choices, recoveries, strays, with_solution
from training.sft import LessonPool, solution_actions, train

BELT = PLACEABLE.index(Entity.BELT)


def placed(world: np.ndarray, action: tuple[int, ...]) -> np.ndarray:
    """`world` after the env places `action` (tile, kind, facing, recipe, end)."""
    after = world[None].copy()
    place(after, np.array([0]), np.array([action], np.int64))
    return after[0]


def routing() -> Prepared:
    prepared = prepare("belt-routing", training_seed(0), 11)
    assert len(prepared.parts) >= 4  # a route of a few belts
    return prepared


def stray_tile(prepared: Prepared) -> int:
    """A buildable tile of the task two tiles or more from anything of the solution."""
    task, solution = prepared.lesson.task.data, prepared.lesson.solution
    assert solution is not None
    used = np.argwhere(solution.data[Channel.ENTITY] != Entity.EMPTY)
    for y in range(11):
        for x in range(11):
            far = (np.abs(used - (y, x)).max(axis=1) >= 2).all()
            if far and task[Channel.ENTITY, y, x] == Entity.EMPTY and task[Channel.BUILDABLE, y, x] == 1:
                return y * 11 + x
    raise AssertionError("no free tile away from the solution")


def test_strays_are_placements_the_solution_lacks() -> None:
    prepared = routing()
    solution = prepared.lesson.solution
    assert solution is not None
    task = prepared.lesson.task.data
    right = placed(task, tuple(solution_actions(prepared)[0]))
    wrong = placed(right, (stray_tile(prepared), BELT, 0, 0, 0))
    states = np.stack([task, right, wrong, wrong])  # the last step placed nothing (the rollout was over)
    assert strays(states, solution.data).tolist() == [False, True, False]


def test_a_recovery_keeps_the_policys_strays_and_finishes_the_solution_around_them() -> None:
    prepared = routing()
    solution = prepared.lesson.solution
    assert solution is not None
    task = prepared.lesson.task.data
    actions = solution_actions(prepared)
    stray = placed(task, (stray_tile(prepared), BELT, 1, 0, 0))
    further = placed(stray, tuple(actions[0]))
    found = recoveries(np.stack([task, stray, further]), prepared)
    assert [lesson.lesson.task.data.tolist() for lesson in found] == [stray.tolist(), further.tolist()]
    for lesson in found:
        recovered = lesson.lesson.solution
        assert recovered is not None
        built = lesson.lesson.task.data[Channel.ENTITY] != Entity.EMPTY
        assert (recovered.data[:, built] == lesson.lesson.task.data[:, built]).all()  # nothing of it removed
        assert score_layout(lesson.lesson, recovered) >= SOLVED
        assert lesson.lesson.best == prepared.lesson.best
    # the first recovery still has every solution entity to build, the second one fewer
    assert [len(lesson.parts) for lesson in found] == [len(actions), len(actions) - 1]


def test_when_a_stray_blocks_the_solution_the_expert_routes_around_it() -> None:
    prepared = routing()
    solution = prepared.lesson.solution
    assert solution is not None
    actions = solution_actions(prepared)
    middle = actions[len(actions) // 2]
    facing = (int(middle[2]) + 2) % 4  # the solution's tile, the belt turned the other way
    blocked = placed(prepared.lesson.task.data, (int(middle[0]), BELT, facing, 0, 0))
    assert score_layout(prepared.lesson, World(with_solution(blocked, prepared))) < SOLVED
    (lesson,) = recoveries(np.stack([prepared.lesson.task.data, blocked]), prepared)
    recovered = lesson.lesson.solution
    assert recovered is not None and recovered != solution
    assert score_layout(lesson.lesson, recovered) >= SOLVED
    built = blocked[Channel.ENTITY] != Entity.EMPTY
    assert (recovered.data[:, built] == blocked[:, built]).all()  # the wrong belt stays


def test_a_rollout_that_solved_its_lesson_teaches_nothing() -> None:
    prepared = routing()
    states = [prepared.lesson.task.data]
    for action in solution_actions(prepared):
        states.append(placed(states[-1], tuple(action)))
    assert recoveries(np.stack(states), prepared) == []


def done_at_once(worlds: np.ndarray) -> HeadArrays:
    """A policy that says "done" before placing anything."""
    b, tiles = len(worlds), worlds.shape[2] * worlds.shape[3]
    tile = np.zeros((b, tiles + 1), np.float32)
    tile[:, -1] = 100.0
    return HeadArrays(
        tile,
        np.zeros((b, tiles, len(PLACEABLE)), np.float32),
        np.zeros((b, tiles, len(PLACEABLE), 4), np.float32),
        np.zeros((b, tiles, n_recipes()), np.float32),
        np.zeros((b, tiles, 2), np.float32),
        np.zeros(b, np.float32),
    )


def test_a_policy_that_stops_at_once_is_taught_each_whole_solution() -> None:
    lessons = [prepare(kind, training_seed(1), 11) for kind in ("one-belt", "merge", "split")]
    found, solved = collect(done_at_once, lessons)
    assert solved == 0.0
    assert [lesson.lesson.task for lesson in found] == [lesson.lesson.task for lesson in lessons]
    assert [lesson.lesson.solution for lesson in found] == [lesson.lesson.solution for lesson in lessons]


def test_batches_draw_their_recovery_share_from_the_recovery_lessons() -> None:
    pool = LessonPool(("one-belt",), 11, 2, np.random.default_rng(0))
    merge = prepare("merge", training_seed(0), 11)
    pool.add_recoveries([merge], keep=4)

    def sources(batch: sft.Batch) -> list[int]:  # one-belt lessons have 1 source, merge lessons 2
        return (batch.worlds[:, Channel.ENTITY] == Entity.SOURCE).sum(axis=(1, 2)).tolist()

    assert set(sources(sft.make_batch(pool, 32, np.random.default_rng(1), recovery=1.0))) == {2}
    assert set(sources(sft.make_batch(pool, 32, np.random.default_rng(1), recovery=0.0))) == {1}
    mixed = sources(sft.make_batch(pool, 200, np.random.default_rng(1), recovery=0.25))
    assert 0.1 < mixed.count(2) / len(mixed) < 0.4


def test_the_oldest_recovery_lessons_make_way_for_new_ones() -> None:
    pool = LessonPool(("one-belt",), 11, 1, np.random.default_rng(0))
    lessons = [prepare("one-belt", training_seed(i), 11) for i in range(5)]
    pool.add_recoveries(lessons, keep=3)
    assert [slot[0].lesson.seed for slot in pool.recoveries] == [training_seed(i) for i in (3, 4, 2)]


def test_a_tiny_run_with_recovery_logs_what_its_rollouts_found(tmp_path: Path) -> None:
    train(replace(TINY, root=tmp_path, name="recover", recovery=0.5, recovery_every=2, recovery_lessons=3))
    rows = list(csv.DictReader((tmp_path / "recover" / "metrics.csv").open()))
    assert {"recovery/greedy_solved", "recovery/found_per_lesson", "recovery/kept"} <= set(rows[-1])
    assert all(0.0 <= float(row["recovery/greedy_solved"]) <= 1.0 for row in rows)


@pytest.mark.parametrize("bad", [{"recovery": 1.5}, {"recovery": -0.1}, {"recovery_every": 0}])
def test_recovery_settings_out_of_range_are_refused(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="recovery"):
        train(replace(TINY, root=tmp_path, name="bad", **bad))  # type: ignore[arg-type]


def test_a_splitter_the_policy_put_elsewhere_is_kept_and_wired_up() -> None:
    prepared = prepare("split", training_seed(2), 11)
    lesson = prepared.lesson
    assert lesson.solution is not None
    ((source, _),), sinks = open_markers(lesson.task, Entity.SOURCE), open_markers(lesson.task, Entity.SINK)
    splitter = PLACEABLE.index(Entity.SPLITTER)

    def placing(spot: SplitterSpot) -> np.ndarray:
        return placed(lesson.task.data, (spot.y * 11 + spot.x, splitter, spot.facing, 0, 0))

    # a spot that wires up, where the solution's own entities no longer fit
    other = next(
        spot
        for spot in splitter_spots(lesson.task, source, [tile for tile, _ in sinks])
        if split_through(lesson.task, source, [tile for tile, _ in sinks], spot)
        and score_layout(lesson, World(with_solution(placing(spot), prepared))) < SOLVED
    )
    world = placing(other)
    layout = completion(world, prepared)
    assert layout is not None and score_layout(lesson, World(layout)) >= SOLVED
    splitters = [(x, y) for k, x, y in World(layout).entities() if k == Entity.SPLITTER]
    assert splitters == [(other.x, other.y)]  # the policy's, and no second one


def test_a_machine_the_policy_put_elsewhere_is_kept_unless_it_makes_the_wrong_thing() -> None:
    prepared = sft.expert_solution(prepare("machine", training_seed(0), 11))
    lesson = prepared.lesson
    assert lesson.solution is not None
    (kind, x0, y0), *_ = [e for e in lesson.solution.entities() if e[0] == Entity.ASSEMBLER]
    recipe = int(lesson.solution.data[Channel.ITEM, y0, x0])
    machine = PLACEABLE.index(Entity.ASSEMBLER)
    kept = 0
    for y in range(9):
        for x in range(9):
            if (x, y) == (x0, y0) or (lesson.task.data[Channel.ENTITY, y : y + 3, x : x + 3] != Entity.EMPTY).any():
                continue
            world = placed(lesson.task.data, (y * 11 + x, machine, 0, recipe, 0))
            layout = around_own_hub(world, lesson)
            if layout is not None and score_layout(lesson, layout) >= SOLVED:
                assert [(xx, yy) for k, xx, yy in layout.entities() if k == Entity.ASSEMBLER] == [(x, y)]
                assert (layout.data[:, world[0] != Entity.EMPTY] == world[:, world[0] != Entity.EMPTY]).all()
                kept += 1
                wrong = placed(lesson.task.data, (y * 11 + x, machine, 0, recipe % (n_recipes() - 1) + 1, 0))
                assert around_own_hub(wrong, lesson) is None  # a machine making another item is not reused
    assert kept >= 2  # other spots than the expert's wire up


@pytest.mark.parametrize("kind", ["split", "machine"])
def test_every_hub_choice_solves_its_lesson_through_a_hub_just_there(kind: str) -> None:
    prepared = prepare(kind, training_seed(4), 11)
    expert = sft.expert_solution(prepared).lesson.solution
    assert expert is not None
    hub_kind = Entity.SPLITTER if kind == "split" else Entity.ASSEMBLER
    choices = hub_choices(prepared)
    assert len(choices) >= 3  # the expert's rule picks one of several that work
    anchors = []
    for action, layout in choices:
        assert score_layout(prepared.lesson, layout) >= SOLVED
        hubs = [(x, y) for k, x, y in layout.entities() if k == hub_kind]
        assert hubs == [(int(action[0]) % 11, int(action[0]) // 11)] and PLACEABLE[action[1]] == hub_kind
        anchors.append(hubs[0])
    assert next((x, y) for k, x, y in expert.entities() if k == hub_kind) in anchors  # the expert's own among them


def test_on_a_bare_task_every_hub_choice_is_a_right_tile() -> None:
    pool = LessonPool(("split",), 11, 3, np.random.default_rng(0), hub_kinds=("split",))
    for prepared, actions, _, hubs in pool.slots:
        assert len(hubs) >= 2
        solution = prepared.lesson.solution
        assert solution is not None and any(
            (action == hubs).all(axis=1).any() for action in actions
        )  # its solution goes through one of them
    batch = sft.make_batch(pool, 64, np.random.default_rng(1), flow_order=0.75)
    bare = 0
    for b, world in enumerate(batch.worlds):
        slot = next((s for s in pool.slots if (s[0].lesson.task.data == world).all()), None)
        if slot is None:
            continue  # part of a solution is built
        bare += 1
        hubs = slot[3]
        assert batch.next[b, hubs[:, 0]].all() and batch.next[b].sum() == len(set(hubs[:, 0].tolist()))
        assert (batch.labels[b, hubs[:, 0], 0] == PLACEABLE.index(Entity.SPLITTER)).all()
    assert bare > 0
