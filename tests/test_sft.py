"""Supervised pre-training: samples rebuild the lessons' solutions, a tiny run writes its
folder and checkpoints, the loss goes down, and held-out seeds never reach training."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from shared_schema.entities import Entity
from shared_schema.placement import apply
from shared_schema.world import World
from training import sft
from training.checkpoint import load
from training.config import ConfigError
from training.env.core import PLACEABLE, to_action
from training.env.masks import action_masks
from training.env.supply import prepare, training_seed
from training.evaluate import SOLVED, score_layout
from training.expert import expert_layout
from training.lessons import HELD_OUT_SEEDS
from training.model import ModelConfig
from training.sft import LessonPool, SFTConfig, draw_sample, flow_keys, parse_config, solution_actions, train

TINY = SFTConfig(
    steps=6,
    batch_size=16,
    pool=2,
    refresh=1,
    val_every=3,
    val_seeds=1,
    log_every=2,
    kinds=("one-belt", "merge"),
    model=ModelConfig(width=8, conv_blocks=1),
)


@pytest.mark.parametrize("kind", sft.LESSON_KINDS)
def test_a_sample_and_the_rest_of_its_order_rebuild_the_solution(kind: str) -> None:
    rng = np.random.default_rng(0)
    for index in range(3):
        prepared = prepare(kind, training_seed(index), 11)
        if kind in SFTConfig().expert_kinds:
            prepared = sft.expert_solution(prepared)
        solution = prepared.lesson.solution
        assert solution is not None
        actions = solution_actions(prepared)
        for draw in range(10):
            keys = flow_keys(prepared) if draw % 2 else None  # flow order, then a random order
            world, target, remaining = draw_sample(prepared, actions, rng, keys)
            if target < 0:
                assert len(remaining) == 0 and (world == solution.data).all()
                continue
            assert remaining[0] == target
            tile, kind_index, facing = actions[target, :3]
            assert action_masks(world[None])[0, kind_index, facing, tile] == 1  # allowed by the env's mask
            built = World(world.copy())
            for i in remaining:  # the target first, then the rest of the order
                placing = to_action(actions[i], 11)
                assert placing is not None
                apply(built, placing)
            assert built == solution


def test_machine_lessons_imitate_the_experts_layout_which_solves_them() -> None:
    for index in range(3):
        prepared = prepare("machine", training_seed(index), 11)
        lesson = sft.expert_solution(prepared).lesson
        expert = expert_layout(lesson.task, lesson.protected)
        assert expert is not None and lesson.solution == expert
        assert score_layout(lesson, lesson.solution) >= SOLVED
        assert lesson.task == prepared.lesson.task and lesson.best == prepared.lesson.best  # the same task


def test_flow_order_builds_from_the_sources_towards_the_sinks() -> None:
    prepared = prepare("belt-routing", training_seed(3), 11)
    actions, keys = solution_actions(prepared), flow_keys(prepared)
    rng = np.random.default_rng(0)
    firsts = set()
    for _ in range(20):
        _, target, remaining = draw_sample(prepared, actions, rng, keys)
        assert (np.diff(keys[remaining]) >= 0).all()  # what is left comes in order of distance from the sources
        if len(remaining) == len(actions):
            firsts.add(target)
    assert firsts <= {int(i) for i in np.flatnonzero(keys == keys.min())}  # an empty task starts at a source


def test_flow_order_builds_machines_and_splitters_first() -> None:
    for kind, hub in (("machine", PLACEABLE.index(Entity.ASSEMBLER)), ("split", PLACEABLE.index(Entity.SPLITTER))):
        prepared = prepare(kind, training_seed(5), 11)
        actions, keys = solution_actions(prepared), flow_keys(prepared)
        order = np.argsort(keys, kind="stable")
        hubs = int((actions[:, 1] == hub).sum())
        assert hubs >= 1 and (actions[order[:hubs], 1] == hub).all()


def test_in_a_random_order_a_machine_or_splitter_still_to_build_comes_next() -> None:
    pool = LessonPool(("machine", "split"), 11, 4, np.random.default_rng(1))
    batch = sft.make_batch(pool, 96, np.random.default_rng(2), flow_order=0.0)
    tiles = batch.next.shape[1] - 1
    waiting_hub = 0
    for b in range(len(batch.next)):
        hubs = batch.todo[b, :tiles] & np.isin(batch.labels[b, :, 0], sft.HUB_KINDS)
        if hubs.any():
            waiting_hub += 1
            assert (batch.next[b, :tiles] == hubs).all()  # the hubs, and nothing else, are right
        else:
            assert (batch.next[b] == batch.todo[b]).all()  # then any entity still to build is
    assert 0 < waiting_hub < len(batch.next)


def test_a_tiny_run_writes_its_folder_and_checkpoints(tmp_path: Path) -> None:
    summary = train(replace(TINY, root=tmp_path, name="tiny"))
    folder = tmp_path / "tiny"
    assert {"config.yaml", "run.json", "metrics.csv", "summary.json", "tb", "checkpoints"} <= {
        p.name for p in folder.iterdir()
    }
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [32, 48, 64, 96]  # samples seen at steps 2, 3, 4, 6
    columns = {"losses/loss", "acc/tile", "acc/kind", "charts/samples_per_s", "val/mean_score", "val/merge"}
    assert columns <= set(rows[0])
    policy, state = load(folder / "checkpoints" / "best.pt")
    assert policy.config.width == 8 and state["size"] == 11 and 0.0 <= state["val_score"] <= 1.0
    assert load(folder / "checkpoints" / "latest.pt")[1]["step"] == 6 and summary["steps"] == 6


def test_cli_reads_yaml_then_flags_and_continues_from_a_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "sft.yaml"
    config.write_text("steps: 7\nlr: 0.5\nkinds: [one-belt]\nmodel: {width: 8, conv_blocks: 1}\n")
    parsed = parse_config(["--config", str(config), "--lr", "0.25"])
    assert parsed.steps == 7 and parsed.lr == 0.25 and parsed.kinds == ("one-belt",) and parsed.model.width == 8
    train(replace(TINY, root=tmp_path, name="first"))
    init = tmp_path / "first" / "checkpoints" / "latest.pt"
    args = ["--config", str(config), "--root", str(tmp_path), "--name", "second", "--steps", "2"]
    assert sft.main([*args, "--val-every", "2", "--val-seeds", "1", "--batch-size", "8", "--init", str(init)]) == 0
    policy, state = load(tmp_path / "second" / "checkpoints" / "latest.pt")
    assert policy.config.width == 8 and state["config"]["init"] == init


def test_a_missing_cuda_device_is_named_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_config(["--device", "cpu"]).device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--device cuda: no CUDA device"):
        train(replace(TINY, root=tmp_path, name="gpu", device="cuda"))
    assert not (tmp_path / "gpu").exists()


def test_an_unknown_precision_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precision is one of auto, fp32, bf16, not 'fp16'"):
        train(replace(TINY, root=tmp_path, name="half", precision="fp16"))
    assert not (tmp_path / "half").exists()


def test_loss_goes_down_on_a_fixed_set_of_one_belt_lessons(tmp_path: Path) -> None:
    config = replace(
        TINY,
        root=tmp_path,
        name="learn",
        kinds=("one-belt",),
        pool=8,
        refresh=0,
        steps=40,
        batch_size=32,
        lr=5e-3,
        log_every=10,
        val_every=40,
        model=ModelConfig(width=16, conv_blocks=1),
    )
    train(config)
    losses = [float(r["losses/loss"]) for r in csv.DictReader((tmp_path / "learn" / "metrics.csv").open())]
    assert losses[-1] < 0.5 * losses[0], losses


def test_training_never_draws_a_held_out_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    def recording(kind: str, seed: int, size: int) -> sft.Prepared:
        drawn.append(seed)
        return prepare(kind, seed, size)

    monkeypatch.setattr(sft, "prepare", recording)
    train(replace(TINY, root=tmp_path, name="seeds"))
    assert drawn and not any(seed in HELD_OUT_SEEDS for seed in drawn)
    # a pool whose stream reaches the held-out range steps over it
    pool = LessonPool(("one-belt",), 11, 1, np.random.default_rng(0))
    pool.next_seed = HELD_OUT_SEEDS.start - 2
    pool.refresh(1)
    pool.refresh(1)
    pool.refresh(1)
    assert sorted(pool.seeds_used)[-3:] == [HELD_OUT_SEEDS.start - 2, HELD_OUT_SEEDS.start - 1, HELD_OUT_SEEDS.stop]


def test_the_learning_rate_decays_by_steps_or_by_time_whichever_ends_first() -> None:
    config = replace(TINY, steps=100, minutes=1.0)
    assert sft.run_progress(50, 0.0, config) == 0.5
    assert sft.run_progress(10, 45.0, config) == 0.75  # three quarters of the minute
    assert sft.run_progress(100, 90.0, config) == 1.0
    assert sft.run_progress(10, 45.0, replace(config, minutes=0.0)) == 0.1  # no time limit
