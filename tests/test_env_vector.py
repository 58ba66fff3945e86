"""The vector environment: same as N single envs, autoreset, vectorised legality, lesson supply."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from shared_schema.directions import Direction
from shared_schema.entities import Entity
from shared_schema.placement import apply, check, legal_anchors
from shared_schema.world import Channel, World
from training.env import PLACEABLE, REASONS, FactoryEnv, FactoryVectorEnv
from training.env.core import anchor_masks, n_recipes, place, reasons, to_action
from training.env.supply import LessonSupply, training_seed
from training.env.vector import random_legal_actions
from training.lessons.base import HELD_OUT_SEEDS
from training.sim.random_layouts import noisy_layout, stack

KINDS = ["one-belt", "one-machine", "belt-routing", "belt-crossing", "trial-1"]


def _random_worlds(rng: np.random.Generator, count: int, size: int = 9) -> np.ndarray:
    worlds = stack([noisy_layout(rng, size, float(rng.uniform(0.1, 0.6))) for _ in range(count)])
    # some empty tiles the player marked unbuildable, so NOT_BUILDABLE happens too
    empty = worlds[:, Channel.ENTITY] == Entity.EMPTY
    worlds[:, Channel.BUILDABLE][empty & (rng.random(empty.shape) < 0.1)] = 0
    return worlds


def _random_actions(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """Anything the action space allows but "done" (recipe 0 included)."""
    highs = [size * size, len(PLACEABLE), 4, n_recipes(), 2]
    actions = np.stack([rng.integers(0, h, count) for h in highs], 1)
    actions[rng.random(count) < 0.2, 3] = 0  # often no recipe, so assemblers lack one
    return actions


def test_vectorised_masks_agree_with_the_validator() -> None:
    rng = np.random.default_rng(0)
    worlds = _random_worlds(rng, 20)
    masks = anchor_masks(worlds)
    for b, data in enumerate(worlds):
        world = World(data)
        for k, kind in enumerate(PLACEABLE):
            for facing in Direction:
                assert np.array_equal(masks[b, k, facing], legal_anchors(world, kind, facing).ravel()), (b, kind)


def test_vectorised_reasons_and_placement_agree_with_check_and_apply() -> None:
    rng = np.random.default_rng(1)
    worlds = _random_worlds(rng, 400)
    actions = _random_actions(rng, 400, 9)
    # half the actions aimed at legal anchors, so placements are tested as much as refusals
    masks = anchor_masks(worlds)
    aimed = random_legal_actions(masks, rng, n_recipes())
    use = (rng.random(400) < 0.5) & (aimed[:, 0] < 81)
    actions[use] = aimed[use]
    envs = np.arange(400)
    code = reasons(worlds, envs, actions)
    expected_worlds = worlds.copy()
    for b in envs:
        action = to_action(actions[b], 9)
        assert action is not None
        reason = check(World(worlds[b]), action)
        assert code[b] == (-1 if reason is None else REASONS.index(reason)), (b, action, reason)
        if reason is None:
            world = World(expected_worlds[b])
            apply(world, action)
    legal = envs[code < 0]
    assert 100 < len(legal) < 390
    place(worlds, legal, actions[legal])
    assert np.array_equal(worlds, expected_worlds)
    assert {REASONS[c].name for c in code[code >= 0]} == {"OFF_GRID", "OCCUPIED", "NOT_BUILDABLE", "NEEDS_RECIPE"}


def _same(vec_obs: dict[str, np.ndarray], i: int, obs: dict[str, np.ndarray]) -> None:
    assert np.array_equal(vec_obs["world"][i], obs["world"])
    assert np.array_equal(vec_obs["action_mask"][i], obs["action_mask"])
    assert vec_obs["done_mask"][i] == obs["done_mask"]


def _same_info(vec_info: dict[str, Any], i: int, info: dict[str, Any]) -> None:
    for key in ("kind", "lesson_seed", "entities", "invalid"):
        assert vec_info[key][i] == info[key], key
    for key in ("score", "invalid_rate"):
        assert vec_info[key][i] == pytest.approx(info[key], abs=1e-12), key
    assert {name: int(v[i]) for name, v in vec_info["invalid_reasons"].items()} == info["invalid_reasons"]


def test_vector_env_equals_single_envs_on_the_same_actions() -> None:
    n, seed = 5, 40
    options: dict[str, Any] = {"kinds": KINDS, "prefill": 0.5, "max_steps": 5, "invalid_penalty": 0.1}
    vec = FactoryVectorEnv(num_envs=n, **options)
    singles = [FactoryEnv(**options) for _ in range(n)]
    obs, info = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=seed + i)
        _same(obs, i, single_obs)
        _same_info(info, i, single_info)
    rng = np.random.default_rng(2)
    ended = 0
    for _ in range(30):
        actions = random_legal_actions(obs["action_mask"], rng, n_recipes())
        wild = rng.random(n) < 0.3  # unmasked actions, often illegal
        actions[wild] = _random_actions(rng, n, vec.size)[wild]
        actions[rng.random(n) < 0.1, 0] = vec.size * vec.size  # done
        obs, reward, terminated, truncated, info = vec.step(actions)
        for i, env in enumerate(singles):
            single_obs, single_reward, single_term, single_trunc, single_info = env.step(actions[i])
            assert reward[i] == pytest.approx(single_reward, abs=1e-12)
            assert (terminated[i], truncated[i]) == (single_term, single_trunc)
            if single_term or single_trunc:
                ended += 1
                assert info["_final_obs"][i] and info["_final_info"][i]
                _same({k: v[None] for k, v in info["final_obs"][i].items()}, 0, single_obs)
                _same_info(info["final_info"], i, single_info)
                assert info["final_info"]["on_path_fraction"][i] == pytest.approx(single_info["on_path_fraction"])
                single_obs, single_info = env.reset()
            else:
                assert "_final_obs" not in info or not info["_final_obs"][i]
            _same(obs, i, single_obs)
            _same_info(info, i, single_info)
    assert ended >= n


def test_autoreset_happens_in_the_same_step() -> None:
    vec = FactoryVectorEnv(num_envs=3, kinds=KINDS, max_steps=2)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = vec.reset(seed=0)
    done = np.array([[vec.size * vec.size, 0, 0, 0, 0]] * 3)
    done[0] = random_legal_actions(obs["action_mask"][:1], np.random.default_rng(0), n_recipes())[0]
    done[0, 0] = min(done[0, 0], vec.size * vec.size - 1)  # env 0 places (or tries to), the others end
    obs, reward, terminated, truncated, info = vec.step(done)
    assert list(terminated) == [False, True, True] and not truncated.any()
    assert list(info["_final_obs"]) == [False, True, True] and info["final_obs"][0] is None
    assert np.isnan(info["final_info"]["on_path_fraction"][0])
    assert (info["entities"][1:] == 0).all() and (info["invalid"][1:] == 0).all()  # the new episodes' info
    obs, reward, terminated, truncated, info = vec.step(done)
    assert truncated[0] and not terminated[0] and info["_final_info"][0]
    assert 0.0 <= info["final_info"]["on_path_fraction"][0] <= 1.0


def test_observations_and_info_have_the_single_envs_shape() -> None:
    vec = FactoryVectorEnv(num_envs=4, kinds=KINDS)
    obs, info = vec.reset(seed=3)
    assert vec.single_observation_space.contains({k: np.asarray(v[0]) for k, v in obs.items()})
    assert vec.observation_space.contains(obs)
    assert vec.action_space.shape == (4, 5)
    assert set(info) == {"kind", "lesson_seed", "score", "entities", "invalid", "invalid_rate", "invalid_reasons"}
    assert set(info["invalid_reasons"]) == {r.name for r in REASONS}
    # copies by default: stepping does not change what was handed out
    before = obs["world"].copy()
    vec.step(random_legal_actions(obs["action_mask"], np.random.default_rng(0), n_recipes()))
    assert np.array_equal(obs["world"], before)


def test_training_resets_draw_varied_lessons_and_never_held_out_seeds() -> None:
    supply = LessonSupply(11, KINDS, pool_size=8, pool_resets=4)
    rng = np.random.default_rng(0)
    picks = [supply.pick(rng, resets) for resets in range(400)]
    assert {kind for kind, _ in picks} == set(KINDS)
    assert len(set(picks)) > 200  # the window slides on: fresh lessons over time
    # the k-th reset draws from the 8 seeds from 2k on, a window every env shares
    assert all(2 * k <= seed < 2 * k + 8 for k, (_, seed) in enumerate(picks))
    boundary = HELD_OUT_SEEDS.start // 2
    near = [supply.pick(rng, resets) for resets in range(boundary - 8, boundary + 8) for _ in range(10)]
    assert not any(seed in HELD_OUT_SEEDS for _, seed in near)
    assert max(seed for _, seed in near) >= HELD_OUT_SEEDS.stop  # past the held-out range, not into it
    assert training_seed(HELD_OUT_SEEDS.start - 1) == HELD_OUT_SEEDS.start - 1
    assert training_seed(HELD_OUT_SEEDS.start) == HELD_OUT_SEEDS.stop


def test_a_vector_env_draws_varied_lessons_from_a_shared_pool() -> None:
    vec = FactoryVectorEnv(num_envs=32, kinds=KINDS, pool_size=4)
    _, info = vec.reset(seed=0)
    lessons = set(zip(info["kind"], info["lesson_seed"], strict=True))
    assert 8 <= len(lessons) <= 4 * len(KINDS)
    assert all(0 <= seed < 4 for seed in info["lesson_seed"])


def test_evaluation_seeds_and_weights_are_respected() -> None:
    held_out = list(HELD_OUT_SEEDS[:3])
    supply = LessonSupply(11, ["one-belt", "belt-routing"], weights={"belt-routing": 1.0}, seeds=held_out)
    rng = np.random.default_rng(0)
    picks = [supply.pick(rng, r) for r in range(50)]
    assert {kind for kind, _ in picks} == {"belt-routing"}
    assert {seed for _, seed in picks} == set(held_out)
    with pytest.raises(ValueError, match="unknown lesson kinds"):
        LessonSupply(11, ["no-such-kind"])


def test_reset_options_pick_each_envs_first_lesson() -> None:
    vec = FactoryVectorEnv(num_envs=2, kinds=KINDS)
    _, info = vec.reset(seed=0, options={"lessons": [("belt-crossing", 3), ("one-machine", 4)]})
    assert list(info["kind"]) == ["belt-crossing", "one-machine"] and list(info["lesson_seed"]) == [3, 4]


def test_random_legal_actions_are_legal() -> None:
    rng = np.random.default_rng(4)
    worlds = _random_worlds(rng, 50)
    actions = random_legal_actions(anchor_masks(worlds), rng, n_recipes())
    placing = actions[:, 0] < 81
    assert placing.sum() > 40
    assert (reasons(worlds, np.flatnonzero(placing), actions[placing]) == -1).all()
    assert set(actions[:, 4]) == {0, 1} and (actions[:, 3] >= 1).all()


def test_a_step_where_nothing_changes_needs_no_world_scored() -> None:
    vec = FactoryVectorEnv(num_envs=2, kinds=KINDS)
    obs, info = vec.reset(seed=5)
    source = int(np.flatnonzero(obs["world"][0, Channel.ENTITY].ravel() == Entity.SOURCE)[0])
    actions = np.array([[source, 0, 0, 0, 0], [vec.size * vec.size, 0, 0, 0, 0]])  # occupied, then done
    obs2, reward, terminated, truncated, info2 = vec.step(actions)
    assert np.array_equal(obs2["world"][0], obs["world"][0]) and list(terminated) == [False, True]
    assert reward[0] == 0.0 and info2["invalid_reasons"]["OCCUPIED"][0] == 1
    vec.close()


def test_get_state_and_set_state_continue_exactly() -> None:
    env = FactoryVectorEnv(num_envs=6, size=8, kinds=["one-belt", "belt-routing"], prefill=0.3, max_steps=4)
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = env.step(random_legal_actions(obs["action_mask"], rng, n_recipes()))[0]
    state = env.get_state()
    actions = []
    expected = []
    for _ in range(9):
        actions.append(random_legal_actions(obs["action_mask"], rng, n_recipes()))
        obs, reward, terminated, truncated, info = env.step(actions[-1])
        expected.append((obs["world"], reward, terminated | truncated, info["kind"]))
    other = FactoryVectorEnv(num_envs=6, size=8, kinds=["one-belt", "belt-routing"], prefill=0.0, max_steps=4)
    other.set_state(state)
    for action, (world, reward, done, kind) in zip(actions, expected, strict=True):
        obs, r, terminated, truncated, info = other.step(action)
        assert (obs["world"] == world).all() and (r == reward).all() and ((terminated | truncated) == done).all()
        assert (info["kind"] == kind).all()


def test_the_done_rule_masks_done_on_a_bare_task_unless_turned_off() -> None:
    lessons = {"lessons": [("one-belt", 5), ("split", 5)]}
    for rule, expected in ((True, [0, 0]), (False, [1, 1])):
        vec = FactoryVectorEnv(num_envs=2, kinds=KINDS, done_rule=rule)
        obs, _ = vec.reset(seed=0, options=lessons)
        assert obs["done_mask"].tolist() == expected
        single = FactoryEnv(kinds=KINDS, done_rule=rule)
        assert single.reset(options={"kind": "split", "seed": 5})[0]["done_mask"] == expected[1]
