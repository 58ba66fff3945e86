"""The policy network and its masked, factored action distribution."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import torch

from shared_schema.entities import Entity
from shared_schema.world import Channel
from training.env import PLACEABLE, FactoryVectorEnv
from training.env.core import to_action
from training.lessons import generate
from training.model import (
    ASSEMBLER,
    FactoredDistribution,
    ModelConfig,
    Policy,
    bf16_native,
    precision_autocast,
    resolve_device,
)


@pytest.fixture(scope="module")
def batch() -> tuple[FactoryVectorEnv, dict[str, np.ndarray]]:
    env = FactoryVectorEnv(num_envs=16, size=11)
    obs, _ = env.reset(seed=3)
    return env, obs


def test_heads_have_the_documented_shapes_at_any_grid_size() -> None:
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    recipes = policy.config.recipes
    for h, w in ((8, 8), (11, 11), (5, 9)):
        heads = policy(torch.zeros(3, 6, h, w, dtype=torch.int16))
        t = h * w
        assert heads.tile.shape == (3, t + 1) and heads.kind.shape == (3, t, len(PLACEABLE))
        assert heads.facing.shape == (3, t, len(PLACEABLE), 4) and heads.recipe.shape == (3, t, recipes)
        assert heads.end.shape == (3, t, 2) and heads.value.shape == (3,)


def test_sampled_and_greedy_actions_are_always_legal(batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]]) -> None:
    _, obs = batch
    torch.manual_seed(0)
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    with torch.no_grad():
        dist = FactoredDistribution(policy(torch.as_tensor(obs["world"])), torch.as_tensor(obs["action_mask"]))
        actions = [dist.sample() for _ in range(20)] + [dist.mode()]
    for action in actions:
        for b in range(len(action)):
            if to_action(action[b].numpy(), 11) is None:
                continue  # "done"
            # the env's mask is the validator's answer (tests/test_env*.py hold them equal)
            assert obs["action_mask"][b, int(action[b, 1]), int(action[b, 2]), int(action[b, 0])] == 1
            if int(action[b, 1]) == ASSEMBLER:
                assert int(action[b, 3]) > 0 and int(action[b, 2]) == 0


def test_log_prob_is_the_probability_of_what_sample_draws(
    batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]],
) -> None:
    _, obs = batch
    torch.manual_seed(1)
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    with torch.no_grad():
        dist = FactoredDistribution(policy(torch.as_tensor(obs["world"])), torch.as_tensor(obs["action_mask"]))
        action = dist.sample()
        logp = dist.log_prob(action)
        assert torch.isfinite(logp).all() and (logp <= 0).all()
        # a forced "done" carries only the tile head's probability
        done = torch.zeros_like(action)
        done[:, 0] = 121
        expected = torch.log_softmax(dist.tile_logits, dim=-1)[:, 121]
        assert torch.allclose(dist.log_prob(done), expected)
        entropy = dist.entropy(action)
        assert set(entropy) == {"tile", "kind", "facing", "recipe", "end"}
        assert all((v >= -1e-6).all() for v in entropy.values())


def test_done_is_never_chosen_where_the_done_mask_forbids_it(
    batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]],
) -> None:
    _, obs = batch
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    with torch.no_grad():
        heads = policy(torch.as_tensor(obs["world"]))
    heads = heads._replace(tile=heads.tile.clone().index_fill_(1, torch.tensor([121]), 50.0))  # done, by far
    done_mask = torch.arange(len(heads.tile)) % 2  # every other world may stop
    dist = FactoredDistribution(heads, torch.as_tensor(obs["action_mask"]), done_mask=done_mask)
    torch.manual_seed(2)
    for action in [dist.mode()] + [dist.sample() for _ in range(10)]:
        assert ((action[:, 0] == 121) == done_mask.bool()).all()
    # without a done mask "done" is always legal
    assert (FactoredDistribution(heads, torch.as_tensor(obs["action_mask"])).mode()[:, 0] == 121).all()


def test_gradients_reach_every_head(batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]]) -> None:
    _, obs = batch
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    heads = policy(torch.as_tensor(obs["world"]))
    dist = FactoredDistribution(heads, torch.as_tensor(obs["action_mask"]))
    (-dist.log_prob(dist.sample()).mean() + heads.value.pow(2).mean()).backward()
    assert policy.tile_head.weight.grad is not None and policy.value_head[0].weight.grad is not None


def test_from_features_gives_what_the_full_heads_give(batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]]) -> None:
    _, obs = batch
    torch.manual_seed(2)
    policy = Policy(ModelConfig(width=16, conv_blocks=1, pool=2))
    world, mask = torch.as_tensor(obs["world"]), torch.as_tensor(obs["action_mask"])
    with torch.no_grad():
        full = FactoredDistribution(policy(world), mask)
        lazy = FactoredDistribution.from_features(policy, policy.features(world), mask)
        action = full.sample()
        assert torch.equal(full.mode(), lazy.mode())
        assert torch.allclose(full.log_prob(action), lazy.log_prob(action), atol=1e-5)
        for head, entropy in full.entropy(action).items():
            assert torch.allclose(entropy, lazy.entropy(action)[head], atol=1e-5), head


def test_the_policy_is_told_where_each_item_goes_and_what_is_still_to_make() -> None:
    policy = Policy(ModelConfig(width=8, conv_blocks=1, heads=1))
    assert policy.recipe_hint is not None

    def roles(world: np.ndarray) -> np.ndarray:
        return policy.recipe_hint(torch.as_tensor(world[None]))[1][0].numpy()  # [ROLES, H, W]

    def at(world: np.ndarray, entity: Entity) -> np.ndarray:
        return world[Channel.ENTITY] == entity

    belts, machine, trial = generate("belt-routing", 7, 11), generate("machine", 7, 11), generate("trial-2", 7, 11)
    direct = roles(belts.task.data)
    assert (direct[0][at(belts.task.data, Entity.SOURCE)] == 1).all()  # the source's item goes to the sink
    assert direct[1:].max() == 0  # and nothing is to be made, split or merged
    split, merge = generate("split", 7, 11).task.data, generate("merge", 7, 11).task.data
    assert roles(split)[3][at(split, Entity.SOURCE)].min() > 0  # two sinks take the source's item
    assert roles(merge)[4][at(merge, Entity.SINK)].min() > 0  # two sources carry the sink's item
    made = roles(machine.task.data)
    assert (made[0][at(machine.task.data, Entity.SOURCE)] == 0).all()
    assert (made[1][at(machine.task.data, Entity.SOURCE)] == 1).all()  # every source feeds the machine
    assert (made[2][at(machine.task.data, Entity.SINK)] == 1).all()  # the sink's item must be made
    assert (made[5:7] == 1).all()  # so far no machine makes it
    assert machine.solution is not None
    built = roles(machine.solution.data)
    assert (built[5] == 1).all() and (built[6:] == 0).all()  # the built machine makes it
    deep = roles(trial.task.data)
    assert deep[7].max() > 0  # a trial's intermediate items must be made too
    assert (deep[1][at(trial.task.data, Entity.SOURCE)] == 1).all()


def test_under_bf16_autocast_the_trunk_runs_in_bf16_and_the_heads_stay_float32(
    batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]],
) -> None:
    _, obs = batch
    torch.manual_seed(4)
    policy = Policy(ModelConfig(width=16, conv_blocks=2))
    world = torch.as_tensor(obs["world"])
    seen: list[torch.dtype] = []
    policy.blocks[0].conv1.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.no_grad():
        exact = policy(world)
        with precision_autocast(torch.device("cpu"), "bf16"):
            rounded = policy(world)
        with precision_autocast(torch.device("cpu"), "fp32"):
            assert torch.equal(policy(world).tile, exact.tile)
        with precision_autocast(torch.device("cpu"), "auto"):  # bf16 exactly where the CPU runs it natively
            policy(world)
    expected_auto = torch.bfloat16 if bf16_native(torch.device("cpu")) else torch.float32
    assert seen == [torch.float32, torch.bfloat16, torch.float32, expected_auto]
    for name, value in rounded._asdict().items():
        assert value.dtype == torch.float32, name
    assert torch.allclose(exact.tile, rounded.tile, atol=0.1)  # bf16's rounding in the trunk, no more
    with pytest.raises(ValueError, match="precision is one of auto, fp32, bf16, not 'fp16'"):
        precision_autocast(torch.device("cpu"), "fp16")


def test_the_embeddings_learn_as_torch_embedding_does(batch: tuple[FactoryVectorEnv, dict[str, np.ndarray]]) -> None:
    # training looks the tile embeddings up with a faster backward (`_Lookup`); the gradients are the same
    _, obs = batch
    torch.manual_seed(5)
    policy = Policy(ModelConfig(width=8, conv_blocks=1, heads=1))
    world = torch.as_tensor(obs["world"])
    policy(world).value.sum().backward()
    fast = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
    policy.zero_grad()
    with patch("training.model._lookup", lambda table, index: table(index)):
        policy(world).value.sum().backward()
    for name, p in policy.named_parameters():
        if p.grad is not None:
            assert torch.allclose(fast[name], p.grad, atol=1e-6), name
    assert fast["entity.weight"].abs().sum() > 0


def test_a_trainers_device_is_cuda_when_present_and_a_missing_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit, match="--device cuda:1: no CUDA device"):
        resolve_device("cuda:1")
    with pytest.raises(SystemExit, match="--device gpu0: not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
