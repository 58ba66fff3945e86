"""Self-imitation: only solved episodes reach the buffer, whole and in order; a tiny run
writes its folder, keeps the starting policy as a candidate and says what is missing."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from training import improvement, self_imitation
from training.checkpoint import load
from training.config import ConfigError
from training.model import ModelConfig
from training.self_imitation import SelfImitationConfig, SolvedEpisodes, parse_config, train
from training.sft import SFTConfig
from training.sft import train as sft_train


def _step(episodes: SolvedEpisodes, value: int) -> None:
    n = len(episodes.length)
    worlds = np.full((n, *episodes.worlds.shape[1:]), value, np.int16)
    masks = np.full((n, *episodes.masks.shape[1:]), value, np.int8)
    actions = np.full((n, 5), value, np.int64) + np.arange(n)[:, None] * 100  # env i's actions: value + 100 i
    episodes.record(worlds, masks, actions)


def test_only_solved_episodes_reach_the_buffer_whole_and_in_order() -> None:
    episodes = SolvedEpisodes(num_envs=3, max_steps=4, world_shape=(1, 2, 2), mask_shape=(1, 4), capacity=10)
    _step(episodes, 1)
    _step(episodes, 2)
    episodes.end(np.array([0, 2]), np.array([True, False]))  # env 0 solved in 2 steps, env 2 failed
    assert episodes.size == 2 and episodes.actions[:2, 0].tolist() == [1, 2]
    assert episodes.length.tolist() == [0, 2, 0]  # env 1 goes on; envs 0 and 2 start afresh
    _step(episodes, 3)
    episodes.end(np.array([1]), np.array([True]))  # env 1: steps 1, 2, 3
    assert episodes.size == 5 and episodes.actions[2:5, 0].tolist() == [101, 102, 103]
    assert episodes.worlds[2:5, 0, 0, 0].tolist() == [1, 2, 3] and episodes.masks[4, 0, 0] == 3


def test_the_buffer_drops_the_oldest_steps_when_full() -> None:
    episodes = SolvedEpisodes(num_envs=1, max_steps=4, world_shape=(1, 1, 1), mask_shape=(1, 1), capacity=5)
    for episode in range(3):  # 3 episodes of 2 steps into room for 5
        _step(episodes, 10 * episode + 1)
        _step(episodes, 10 * episode + 2)
        episodes.end(np.array([0]), np.array([True]))
    assert episodes.size == 5 and sorted(episodes.actions[:, 0].tolist()) == [2, 11, 12, 21, 22]
    drawn = episodes.sample(np.random.default_rng(0), 50)[2][:, 0]
    assert set(drawn.tolist()) <= {2, 11, 12, 21, 22}


def test_every_kind_in_the_buffer_is_drawn_as_often_as_any_other() -> None:
    episodes = SolvedEpisodes(num_envs=2, max_steps=9, world_shape=(1, 1, 1), mask_shape=(1, 1), capacity=20)
    for value in range(9):  # env 0: an easy kind's long episode; env 1: a hard kind's one-step episode
        _step(episodes, value)
        if value == 0:
            episodes.end(np.array([1]), np.array([True]), np.array([1]))
    episodes.end(np.array([0]), np.array([True]), np.array([0]))
    assert episodes.size == 10 and episodes.kinds[:10].tolist() == [1] + [0] * 9
    drawn = episodes.sample(np.random.default_rng(0), 4000)[2][:, 0]
    assert abs(np.mean(drawn == 100) - 0.5) < 0.03  # 1 step in 10, drawn half the time


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sft")
    config = SFTConfig(
        root=root,
        name="tiny",
        steps=2,
        batch_size=8,
        pool=2,
        val_every=2,
        val_seeds=1,
        kinds=("one-belt",),
        model=ModelConfig(width=8, conv_blocks=1),
    )
    sft_train(config)
    return root / "tiny" / "checkpoints" / "best.pt"


TINY = SelfImitationConfig(
    kinds=("one-belt", "trial-1"),
    steps=4,
    num_envs=8,
    collect_steps=4,
    updates_per_collect=2,
    batch_size=8,
    min_buffer=4,
    expert_batch=4,
    pool=2,
    val_every=2,
    val_seeds=1,
    log_every=2,
)


def test_a_tiny_run_writes_its_folder_and_checkpoints(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an untrained policy seldom solves a lesson: here every ended episode counts as solved
    monkeypatch.setattr(self_imitation, "SOLVED", -1.0)
    summary = train(replace(TINY, init=tiny_checkpoint, root=tmp_path, name="tiny"))
    folder = tmp_path / "tiny"
    assert {"config.yaml", "run.json", "metrics.csv", "summary.json", "tb", "checkpoints"} <= {
        p.name for p in folder.iterdir()
    }
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert float(rows[0]["val/mean_score"]) == summary["start_val_mean_score"]  # the starting policy, at step 0
    columns = {"losses/self", "losses/loss", "charts/buffer", "collect/episodes", "val/mean_score", "val/trial-1"}
    assert columns <= set(rows[-1])
    assert set(summary["weights"]) == {"one-belt", "trial-1"} and summary["steps"] == 4
    _, best = load(folder / "checkpoints" / "best.pt")
    assert best["val_score"] == summary["best_val_mean_score"] >= summary["start_val_mean_score"]
    assert load(folder / "checkpoints" / "latest.pt")[1]["step"] == 4


def test_it_needs_a_starting_policy_and_says_when_the_policy_solves_too_little(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert self_imitation.main(["--root", str(tmp_path), "--name", "none"]) == 2
    assert "--init is required" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="expert_batch needs a non-trial kind"):
        train(replace(TINY, init=tiny_checkpoint, root=tmp_path, kinds=("trial-1",)))
    monkeypatch.setattr(self_imitation, "SOLVED", 2.0)  # nothing ever solves
    args = ["--init", str(tiny_checkpoint), "--root", str(tmp_path), "--name", "stuck", "--minutes", "0.001"]
    assert self_imitation.main([*args, "--kinds", "one-belt", "--num-envs", "4", "--val-seeds", "1"]) == 2
    assert "short of min_buffer" in capsys.readouterr().err


def test_cli_reads_yaml_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "self.yaml"
    config.write_text("minutes: 20\nlr: 0.5\nkinds: [machine, trial-1]\n")
    parsed = parse_config(["--config", str(config), "--lr", "0.25"])
    assert parsed.minutes == 20 and parsed.lr == 0.25 and parsed.kinds == ("machine", "trial-1")


def test_improved_collection_imitates_changed_greedy_rollouts(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an untrained policy's greedy rollouts: here none counts as solved and any change improves
    monkeypatch.setattr(improvement, "SOLVED", 2.0)
    config = replace(
        TINY,
        init=tiny_checkpoint,
        root=tmp_path,
        name="improved",
        collect="improved",
        lessons_per_collect=2,
        solved_only=False,
        margin=-1.0,
    )
    summary = train(config)
    rows = list(csv.DictReader((tmp_path / "improved" / "metrics.csv").open()))
    assert summary["steps"] == 4 and float(rows[-1]["charts/buffer"]) > 0
    assert {"collect/improved_one-belt", "collect/solved_one-belt", "losses/self"} <= set(rows[-1])


def test_an_unknown_collection_is_refused_before_anything_is_written(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="collect must be one of sampled, improved"):
        train(replace(TINY, init=tiny_checkpoint, root=tmp_path, name="bad", collect="beam"))
    assert not (tmp_path / "bad").exists()


def test_an_unbalanced_draw_takes_every_step_alike() -> None:
    episodes = SolvedEpisodes(num_envs=1, max_steps=9, world_shape=(1, 1, 1), mask_shape=(1, 1), capacity=20)
    for kind, length in ((0, 9), (1, 1)):
        episodes.add(np.zeros((length, 1, 1, 1)), np.zeros((length, 1, 1)), np.full((length, 5), kind), kind)
    rng = np.random.default_rng(0)
    drawn = episodes.sample(rng, 4000, balanced=False)[2][:, 0]
    assert abs(np.mean(drawn == 1) - 0.1) < 0.02  # 1 step in 10, drawn as often as any other step
    assert abs(np.mean(episodes.sample(rng, 4000)[2][:, 0] == 1) - 0.5) < 0.03  # balanced: half the time
