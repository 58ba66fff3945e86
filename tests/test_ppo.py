"""PPO: config layering, GAE, a run's folder, learning, exact resume, DDP, bad checkpoints."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoint, ppo
from training.config import ConfigError
from training.export import export
from training.model import ModelConfig, Policy
from training.ppo import PPOConfig, gae, main, parse_config, train

TINY = [
    "--size", "8", "--num-envs", "8", "--rollout", "4", "--minibatches", "2", "--kinds", "one-belt",
    "--threads", "1", "--env-threads", "1", "--no-progress", "--model.width", "8", "--model.pool", "2",
]  # fmt: skip


def tiny(tmp_path: Path, name: str, *extra: str) -> PPOConfig:
    return parse_config([*TINY, "--root", str(tmp_path), "--name", name, *extra])


def test_config_layers_defaults_then_yaml_then_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 0.1\ngamma: 0.9\nkinds: [one-belt, split]\nmodel:\n  width: 8\n")
    config = parse_config(["--config", str(recipe), "--lr", "0.5", "--model.heads", "2"])
    assert config.lr == 0.5  # the flag beats the file
    assert config.gamma == 0.9 and config.kinds == ("one-belt", "split")  # the file beats the defaults
    assert config.model == ModelConfig(width=8, heads=2)
    assert config.clip == PPOConfig().clip  # untouched: the default
    recipe.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        parse_config(["--config", str(recipe)])


def test_gae_matches_a_hand_computation_with_truncation_and_termination() -> None:
    gamma, lam = 0.9, 0.8
    # one env, three steps: step 0 goes on, step 1 is truncated (final obs worth 2.0), step 2
    # terminates; a second env runs on past the rollout's end (next value 4.0)
    rewards = torch.tensor([[1.0, 0.0], [0.5, 0.0], [2.0, 1.0]])
    values = torch.tensor([[0.3, 1.0], [0.6, 2.0], [0.2, 3.0]])
    terminated = torch.tensor([[False, False], [False, False], [True, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False]])
    final_values = torch.tensor([[9.0, 9.0], [2.0, 9.0], [9.0, 9.0]])  # read only where truncated
    next_value = torch.tensor([7.0, 4.0])
    adv, ret = gae(rewards, values, terminated, truncated, final_values, next_value, gamma, lam)
    # env 0, by hand
    d2 = 2.0 - 0.2  # terminated: nothing follows
    d1 = 0.5 + gamma * 2.0 - 0.6  # truncated: bootstrapped from the final observation's value
    d0 = 1.0 + gamma * 0.6 - 0.3
    a2, a1 = d2, d1  # episodes end at steps 1 and 2: no advantage flows back across them
    a0 = d0 + gamma * lam * a1
    # env 1: one episode through the rollout, bootstrapped from next_value
    e2 = 1.0 + gamma * 4.0 - 3.0
    e1 = 0.0 + gamma * 3.0 - 2.0 + gamma * lam * e2
    e0 = 0.0 + gamma * 2.0 - 1.0 + gamma * lam * e1
    expected = torch.tensor([[a0, e0], [a1, e1], [a2, e2]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)


@pytest.mark.parametrize("bootstrap", [False, True])
def test_an_episode_cut_at_the_step_limit_is_worth_nothing_more_unless_bootstrapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bootstrap: bool
) -> None:
    # with two steps per episode and "done" rare, most episodes are cut at the limit; the
    # values GAE adds for them are 0 (the task ends there) unless bootstrapping is asked for
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(rewards, values, terminated, truncated, final_values, *rest):  # type: ignore[no-untyped-def]
        seen.append((truncated.clone(), final_values.clone()))
        return gae(rewards, values, terminated, truncated, final_values, *rest)

    monkeypatch.setattr(ppo, "gae", recording)
    flags = ["--total-steps", "64", "--max-steps", "2", *(["--bootstrap-truncated"] if bootstrap else [])]
    train(tiny(tmp_path, "cut", *flags))
    truncated = torch.cat([t for t, _ in seen])
    final_values = torch.cat([v for _, v in seen])
    assert truncated.any()
    assert (final_values[truncated] != 0).all() == bootstrap and (final_values[~truncated] == 0).all()


def test_the_critic_predicts_the_final_score_and_the_value_is_what_is_left_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with the reference solution built at reset every episode starts solved (score 1): the
    # same network read as the final score gives values lower by exactly that score
    first_values: dict[bool, torch.Tensor] = {}

    def recording(rewards, values, *rest):  # type: ignore[no-untyped-def]
        first_values.setdefault(final_score, values.clone())
        return gae(rewards, values, *rest)

    monkeypatch.setattr(ppo, "gae", recording)
    for final_score in (False, True):
        flag = "--critic-final-score" if final_score else "--no-critic-final-score"
        train(tiny(tmp_path, f"critic-{final_score}", "--total-steps", "32", "--prefill-start", "1.0", flag))
    assert torch.allclose(first_values[False][0] - first_values[True][0], torch.ones(8))


def test_a_tiny_run_writes_config_metrics_tensorboard_and_a_checkpoint(tmp_path: Path) -> None:
    summary = train(tiny(tmp_path, "run", "--total-steps", "96"))
    folder = tmp_path / "run"
    assert summary["updates"] == 3 and summary["steps"] == 96
    assert (folder / "config.yaml").exists() and any((folder / "tb").iterdir())
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["32", "64", "96"]
    for column in ("charts/steps_per_s", "losses/approx_kl", "losses/entropy_tile", "time/env", "time/update"):
        assert column in rows[0]
    policy, state = checkpoint.load(folder / "checkpoints" / "latest.pt")
    assert state["update"] == 3 and policy.config.width == 8
    assert json.loads((folder / "summary.json").read_text())["updates"] == 3


def test_both_precisions_train_and_an_unknown_one_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    digests = {
        p: train(tiny(tmp_path, p, "--total-steps", "64", "--precision", p))["weights_sha256"] for p in ("fp32", "bf16")
    }
    assert digests["fp32"] != digests["bf16"]  # bf16 really ran: its rounding changes the weights
    with pytest.raises(ConfigError, match="precision is one of auto, fp32, bf16, not 'fp16'"):
        train(tiny(tmp_path, "half", "--precision", "fp16"))
    assert not (tmp_path / "half").exists()


def test_kind_weights_need_one_weight_per_listed_kind(tmp_path: Path) -> None:
    for flags in (
        ["--kind-weights", "1", "2"],
        ["--kinds", "one-belt", "split", "--kind-weights", "1"],
        ["--kind-weights", "0"],
    ):
        with pytest.raises(ConfigError, match="one non-negative weight per kind"):
            train(tiny(tmp_path, "weighted", *flags))
    assert not (tmp_path / "weighted").exists()
    # weight 0: never drawn, so no split episode ever ends
    flags = ("--total-steps", "128", "--max-steps", "2", "--kinds", "one-belt", "split", "--kind-weights", "1", "0")
    history = train(tiny(tmp_path, "one", *flags))
    assert any("charts/score/one-belt" in m for m in history["history"])
    assert not any("charts/score/split" in m for m in history["history"])


def test_returns_improve_on_the_one_belt_lesson(tmp_path: Path) -> None:
    # from scratch the lesson's one right belt is a needle in a haystack, but each entity
    # costs 0.05: the return rises as the policy learns to place fewer wasted entities
    # (and to say "done"); the mean entities per episode falls well below where it began
    config = tiny(
        tmp_path, "learn", "--num-envs", "16", "--rollout", "8", "--total-steps", "5120", "--lr", "3e-3",
        "--epochs", "2", "--max-steps", "8", "--entity-cost", "0.05",
    )  # fmt: skip
    entities = [m["charts/episode_entities"] for m in train(config)["history"]]
    assert sum(entities[-4:]) / 4 < 0.7 * sum(entities[:3]) / 3, entities


def test_the_kl_stop_skips_the_minibatch_that_passes_it(tmp_path: Path) -> None:
    # the first minibatch's policy is the rollout's (KL 0): it steps; after one Adam step
    # every later minibatch's KL passes the tiny limit, so none of them steps
    config = tiny(tmp_path, "kl", "--total-steps", "64", "--epochs", "2", "--target-kl", "1e-6", "--lr", "1e-2")
    history = train(config)["history"]
    assert [m["losses/minibatches"] for m in history] == [1, 1]
    assert all(m["losses/approx_kl"] > 1e-6 for m in history)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = train(tiny(tmp_path, "straight", "--total-steps", "128", "--checkpoint-every", "1"))
    first = train(tiny(tmp_path, "halves", "--total-steps", "128", "--max-updates", "2"))
    assert first["updates"] == 2
    second = train(parse_config(["--resume", str(tmp_path / "halves")]))
    assert second["updates"] == 4
    assert second["weights_sha256"] == straight["weights_sha256"]
    rows = list(csv.DictReader((tmp_path / "halves" / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["32", "64", "96", "128"]


def test_the_imitation_anchor_teaches_the_reference_while_ppo_runs(tmp_path: Path) -> None:
    config = tiny(
        tmp_path, "anchor", "--total-steps", "320", "--imitation-coef", "1", "--imitation-batch", "16", "--lr", "3e-3",
    )  # fmt: skip
    losses = [m["losses/imitation"] for m in train(config)["history"]]
    assert len(losses) == 10 and losses[-1] < 0.85 * losses[0], losses
    for flags in (["--kinds", "trial-1"], ["--imitation-kinds", "one-belt", "trial-2"]):
        with pytest.raises(ConfigError, match="non-trial"):
            train(tiny(tmp_path, "trials", *flags, "--imitation-coef", "1", "--total-steps", "32"))
    assert not (tmp_path / "trials").exists()
    # the anchor may imitate kinds PPO does not play: here trials are played, one-belt imitated
    flags = ("--kinds", "trial-1", "--imitation-kinds", "one-belt", "--imitation-coef", "1", "--total-steps", "32")
    assert "losses/imitation" in train(tiny(tmp_path, "elsewhere", *flags))["history"][-1]


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_critic_warmup_trains_only_the_value_head(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    start = Policy(ModelConfig(width=8)).eval()
    init = tmp_path / f"init{suffix}"
    if suffix == ".onnx":  # PPO from a policy that exists only as an export, the shipped one's case
        export(start, init, 8)
    else:
        checkpoint.save(init, start)
    train(tiny(tmp_path, "warm", "--init", str(init), "--critic-warmup", "2", "--total-steps", "64"))
    after, _ = checkpoint.load(tmp_path / "warm" / "checkpoints" / "latest.pt")
    before, now = start.state_dict(), after.state_dict()
    changed = {k for k in before if not torch.equal(before[k], now[k])}
    assert changed and all(k.startswith("value_head.") for k in changed)


@pytest.mark.parametrize("flag", ["--init", "--resume"])
def test_a_corrupt_checkpoint_is_named(tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    if flag == "--init":
        bad = tmp_path / "bad.pt"
        target = bad
    else:
        train(tiny(tmp_path, "broken", "--total-steps", "32"))
        target = tmp_path / "broken"
        bad = target / "checkpoints" / "latest.pt"
    bad.write_bytes(b"not a checkpoint")
    code = main([*TINY, "--root", str(tmp_path), "--name", "next", flag, str(target)])
    assert code == 2 and str(bad) in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_with_gloo_keeps_both_ranks_identical(tmp_path: Path) -> None:
    # compile and cache the numba kernels here first: two ranks compiling them at once on a
    # fresh clone take minutes on two cores, and may read each other's half-written cache
    train(tiny(tmp_path, "warm-up", "--total-steps", "32"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "training.ppo",
        *TINY, "--root", str(tmp_path), "--name", "ddp", "--total-steps", "192", "--device", "cpu",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["updates"] == 3 and summary["steps"] == 192  # 2 ranks x 8 envs x 4 steps per update
    first, second = summary["weights_sha256"]
    assert first == second
    rows = list(csv.DictReader((tmp_path / "ddp" / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["64", "128", "192"]


def test_evaluation_keeps_the_best_policy_starting_with_the_initial_one(tmp_path: Path) -> None:
    summary = train(tiny(tmp_path, "eval", "--total-steps", "64", "--eval-every", "1", "--eval-seeds", "1"))
    scores = [m["val/mean_score"] for m in summary["history"] if "val/mean_score" in m]
    assert len(scores) == 3  # before the first update, then after each of the two
    policy, state = checkpoint.load(tmp_path / "eval" / "checkpoints" / "best.pt")
    assert state["val_score"] == max(scores)
    assert state["update"] == scores.index(max(scores))  # the first best, from the update that made it


def test_with_the_done_rule_episodes_run_on_while_the_sink_gets_nothing(tmp_path: Path) -> None:
    # one-belt from scratch: the sink gets nothing until its belt is built, so under the rule
    # an untrained policy's episodes run to the step limit, placing an entity at every step
    flags = ("--kinds", "one-belt", "--num-envs", "8", "--rollout", "8", "--total-steps", "256", "--max-steps", "6")

    def entities(*extra: str) -> float:
        history = train(tiny(tmp_path, f"run{len(extra)}", *flags, *extra))["history"]
        return float(np.mean([m["charts/episode_entities"] for m in history if "charts/episode_entities" in m]))

    assert entities("--done-rule") == 6.0 and entities() < 6.0  # without it, some said "done" early
