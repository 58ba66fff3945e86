"""The single environment: API, masks, rewards, episode ends, determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from shared_schema.catalog import load_catalog
from shared_schema.directions import Direction
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.placement import Action, check
from shared_schema.world import Channel, World
from training.env import ENDS, ENV_ID, PLACEABLE, FactoryEnv
from training.env.core import to_action
from training.env.masks import dead_placements
from training.lessons import KINDS, Lesson, generate

CHEAP = ["one-belt", "one-machine", "belt-routing"]  # quick to generate, for API tests
SIZE = 11
DONE = SIZE * SIZE
INFO_KEYS = {"kind", "lesson_seed", "score", "entities", "invalid", "invalid_rate", "invalid_reasons"}


def solution_actions(lesson: Lesson) -> list[np.ndarray]:
    """The factored actions that build the lesson's reference solution, anchor by anchor."""
    assert lesson.solution is not None
    data = lesson.solution.data
    actions = []
    for kind, x, y in lesson.solution_entities:
        end = int(data[Channel.UNDERGROUND, y, x])
        actions.append(
            np.array(
                [
                    y * lesson.task.width + x,
                    PLACEABLE.index(kind),
                    int(data[Channel.FACING, y, x]),
                    int(data[Channel.ITEM, y, x]) if kind == Entity.ASSEMBLER else 0,
                    ENDS.index(UndergroundEnd(end)) if kind == Entity.UNDERGROUND else 0,
                ]
            )
        )
    return actions


def test_gymnasium_env_checker_passes() -> None:
    # through make, so that the checker also sees the spec and tries the "ansi" render mode
    check_env(gym.make(ENV_ID, kinds=CHEAP, render_mode="ansi").unwrapped, skip_render_check=False)


def test_registered_under_its_id() -> None:
    env = gym.make(ENV_ID, kinds=CHEAP, max_steps=5)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert INFO_KEYS <= set(info)
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", kinds=CHEAP)
    obs, _ = envs.reset(seed=1)
    assert obs["world"].shape == (3, 6, SIZE, SIZE)


def test_defaults_draw_every_registered_kind() -> None:
    env = FactoryEnv()
    assert env.supply.kinds == tuple(KINDS)
    assert env.config.max_steps == SIZE * SIZE // 2


def test_mask_is_the_validators_answer_less_dead_placements_for_every_kind_facing_and_tile() -> None:
    env = FactoryEnv(kinds=["belt-wall"], prefill=0.5)
    obs, _ = env.reset(seed=3)
    world = World(obs["world"])
    dead = dead_placements(obs["world"][None])[0]
    assert dead.any()  # the prefilled layout rules some legal placements out
    gear = load_catalog().recipe_id("iron-gear-wheel")
    for k, kind in enumerate(PLACEABLE):
        for facing in Direction:
            for tile in range(DONE):
                end = UndergroundEnd.ENTRANCE if kind == Entity.UNDERGROUND else UndergroundEnd.NONE
                action = Action(kind, tile % SIZE, tile // SIZE, facing, gear if kind == Entity.ASSEMBLER else 0, end)
                allowed = check(world, action) is None and not dead[k, facing, tile]
                assert obs["action_mask"][k, facing, tile] == allowed


def test_an_illegal_action_changes_nothing_and_its_reason_is_counted() -> None:
    env = FactoryEnv(kinds=["one-belt"], invalid_penalty=0.5)
    obs, _ = env.reset(seed=0)
    source = int(np.flatnonzero(obs["world"][Channel.ENTITY].ravel() == Entity.SOURCE)[0])
    obs2, reward, terminated, truncated, info = env.step(np.array([source, 0, 0, 0, 0]))
    assert np.array_equal(obs2["world"], obs["world"]) and np.array_equal(obs2["action_mask"], obs["action_mask"])
    assert reward == -0.5 and not terminated and not truncated
    assert info["invalid"] == 1 and info["invalid_rate"] == 1.0 and info["entities"] == 0
    assert info["invalid_reasons"]["OCCUPIED"] == 1 and sum(info["invalid_reasons"].values()) == 1
    # an assembler without a recipe
    free = int(np.flatnonzero(obs["action_mask"][PLACEABLE.index(Entity.ASSEMBLER), 0])[0])
    _, _, _, _, info = env.step(np.array([free, PLACEABLE.index(Entity.ASSEMBLER), 0, 0, 0]))
    assert info["invalid_reasons"]["NEEDS_RECIPE"] == 1 and info["invalid_rate"] == 1.0


def test_done_terminates_and_the_step_limit_truncates() -> None:
    env = FactoryEnv(kinds=CHEAP, max_steps=3)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.array([DONE, 0, 0, 0, 0]))
    assert terminated and not truncated and reward == 0.0 and "on_path_fraction" in info
    env.reset(seed=0)
    ends = [env.step(np.array([0, 0, 0, 0, 0]))[2:4] for _ in range(3)]  # legal or not, each is a step
    assert ends == [(False, False), (False, False), (False, True)]


@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("trial")])
def test_building_the_reference_solution_scores_one(kind: str) -> None:
    env = FactoryEnv(kinds=[kind], entity_cost=0.01, max_steps=200)
    _, info = env.reset(seed=5)
    initial = info["score"]
    lesson = generate(kind, env.lesson.lesson.seed)
    actions = solution_actions(lesson)
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert info["invalid"] == 0 and not terminated and not truncated
    assert info["score"] == pytest.approx(1.0)
    assert total == pytest.approx(1.0 - initial - 0.01 * len(actions))
    _, _, terminated, _, info = env.step(np.array([DONE, 0, 0, 0, 0]))
    assert terminated and info["entities"] == len(actions) and info["on_path_fraction"] == 1.0


def test_prefill_places_that_share_of_the_solution() -> None:
    env = FactoryEnv(kinds=["belt-wall"], prefill=1.0)
    obs, info = env.reset(seed=2)
    assert info["score"] == pytest.approx(1.0)
    assert np.array_equal(obs["world"], env.lesson.lesson.solution.data)
    env.config.prefill = 0.5
    obs, _ = env.reset()
    lesson = env.lesson.lesson
    added = np.count_nonzero(obs["world"][Channel.ENTITY] != lesson.task.data[Channel.ENTITY])
    assert 0 < added < np.count_nonzero(lesson.solution.data[Channel.ENTITY] != lesson.task.data[Channel.ENTITY])


def test_trials_start_from_their_markers_alone() -> None:
    env = FactoryEnv(kinds=["trial-1"], prefill=1.0)
    obs, info = env.reset(seed=0)
    assert np.array_equal(obs["world"], env.lesson.lesson.task.data) and info["kind"] == "trial-1"


def test_same_seed_same_episode() -> None:
    def rollout(seed: int) -> list[tuple[np.ndarray, float]]:
        env = FactoryEnv(kinds=CHEAP, prefill=0.5, max_steps=6)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [(obs["world"], 0.0)]
        for _ in range(12):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            out.append((obs["world"], float(reward)))
            if terminated or truncated:
                obs, _ = env.reset()
                out.append((obs["world"], 0.0))
        return out

    first, again, other = rollout(7), rollout(7), rollout(8)
    assert all(np.array_equal(a, b) and r == s for (a, r), (b, s) in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other, strict=False))


def test_reset_options_pick_the_lesson() -> None:
    env = FactoryEnv(kinds=CHEAP)
    obs, info = env.reset(seed=0, options={"kind": "belt-wall", "seed": 12})
    assert (info["kind"], info["lesson_seed"]) == ("belt-wall", 12)
    assert np.array_equal(obs["world"], generate("belt-wall", 12).task.data)


def test_render_shows_the_grid() -> None:
    env = FactoryEnv(kinds=["one-belt"], render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text is not None and "S" in text and "K" in text and len(text.splitlines()) == SIZE


def test_to_action_reads_only_the_fields_its_kind_uses() -> None:
    belt = to_action(np.array([12, PLACEABLE.index(Entity.BELT), 1, 5, 1]), SIZE)
    assert belt == Action(Entity.BELT, 1, 1, Direction.EAST)
    machine = to_action(np.array([0, PLACEABLE.index(Entity.ASSEMBLER), 3, 5, 1]), SIZE)
    assert machine == Action(Entity.ASSEMBLER, 0, 0, Direction.NORTH, recipe=5)
    exit_ = to_action(np.array([0, PLACEABLE.index(Entity.UNDERGROUND), 2, 5, 1]), SIZE)
    assert exit_ == Action(Entity.UNDERGROUND, 0, 0, Direction.SOUTH, end=UndergroundEnd.EXIT)
    assert to_action(np.array([DONE, 0, 0, 0, 0]), SIZE) is None
