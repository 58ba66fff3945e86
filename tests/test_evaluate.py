"""`python -m training.evaluate`: held-out scores per kind, as JSON lines and a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared_schema.world import World
from tests.test_recovery import done_at_once
from training.evaluate import main, ordered_kinds
from training.lessons import HELD_OUT_SEEDS, KINDS, TRIAL_KINDS, VALIDATION_SEEDS, generate


def test_scores_the_expert_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "table.md"
    assert main(["--policy", "expert", "--seeds", "3", "--kinds", "one-belt", "trial-1", "--markdown", str(table)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["one-belt", "trial-1"]
    assert rows[0]["mean_score"] == 1.0 and rows[0]["solved"] == 1.0 and rows[0]["tasks"] == 3
    assert 0.0 <= rows[1]["mean_score"] <= 1.0
    text = table.read_text()
    assert text.startswith("| kind (expert, 11x11) |") and "| one-belt | 3 | 1.000 ± 0.000 | 100% |" in text


def test_refuses_unknown_policies_and_seed_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--policy", "oracle"])
    assert "unknown policy 'oracle'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--policy", "expert", "--seeds", "0"])
    assert "--seeds must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--policy", "expert", "--size", "40"])
    assert "--size must be 8 to 32, not 40" in capsys.readouterr().err


def test_validation_never_picks_a_checkpoint_on_the_seeds_evaluation_scores(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(VALIDATION_SEEDS) <= set(HELD_OUT_SEEDS)  # never trained on
    scored = len(HELD_OUT_SEEDS) - len(VALIDATION_SEEDS)  # the most evaluation takes
    assert set(VALIDATION_SEEDS).isdisjoint(HELD_OUT_SEEDS[:scored])
    with pytest.raises(SystemExit):
        main(["--policy", "expert", "--seeds", str(scored + 1)])
    assert f"--seeds must be 1 to {scored}" in capsys.readouterr().err


def test_kinds_are_listed_lessons_first_then_trials() -> None:
    kinds = ordered_kinds()
    assert sorted(kinds) == sorted(KINDS)
    assert kinds[-3:] == sorted(TRIAL_KINDS)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random-weight checkpoint and its ONNX export."""
    import torch

    from training.checkpoint import save
    from training.export import export
    from training.model import ModelConfig, Policy

    torch.manual_seed(0)
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    folder = tmp_path_factory.mktemp("policy")
    save(folder / "tiny.pt", policy, size=11)
    export(policy, folder / "tiny.onnx", 11)
    return folder / "tiny.pt", folder / "tiny.onnx"


def test_learned_policies_evaluate_from_a_checkpoint_or_onnx(
    tiny_checkpoint: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {}
    for path in tiny_checkpoint:
        chart = tmp_path / f"{path.suffix[1:]}.png"
        args = ["--policy", str(path), "--seeds", "2", "--kinds", "one-belt", "split", "--png", str(chart)]
        assert main(args) == 0
        rows[path.suffix] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert chart.read_bytes().startswith(b"\x89PNG")
    for got in rows.values():
        assert [r["kind"] for r in got] == ["one-belt", "split"] and all(r["tasks"] == 2 for r in got)
        assert all(0.0 <= r["mean_score"] <= 1.0 and r["no_layout"] == 0.0 for r in got)
    # the same network in torch and in onnxruntime plays the same greedy games
    assert [r["mean_score"] for r in rows[".pt"]] == pytest.approx([r["mean_score"] for r in rows[".onnx"]])


def test_compare_expert_scores_both_and_draws_them(
    tiny_checkpoint: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart, table = tmp_path / "chart.png", tmp_path / "table.md"
    args = ["--policy", str(tiny_checkpoint[1]), "--seeds", "2", "--kinds", "one-belt", "--compare-expert"]
    assert main([*args, "--png", str(chart), "--markdown", str(table)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["policy"] for r in rows] == [str(tiny_checkpoint[1]), "expert"] and rows[1]["mean_score"] == 1.0
    assert chart.stat().st_size > 1000 and table.read_text().count("| kind (") == 2


def test_rollout_plays_as_the_env_steps(tiny_checkpoint: tuple[Path, Path]) -> None:
    """A batched greedy rollout ends in the world, and the score, of stepping FactoryEnv greedily."""
    from training.env import FactoryEnv
    from training.evaluate import rollout, score_layout
    from training.lessons import HELD_OUT_SEEDS, generate
    from training.onnx_policy import OnnxPolicy, choose

    policy = OnnxPolicy(tiny_checkpoint[1])
    lessons = [generate(kind, HELD_OUT_SEEDS[i], 11) for i, kind in enumerate(["belt-routing", "machine", "merge"])]
    worlds = rollout(policy.heads, np.stack([lesson.task.data for lesson in lessons]))
    assert worlds is not None
    env = FactoryEnv(size=11)
    for lesson, world in zip(lessons, worlds, strict=True):
        obs, info = env.reset(options={"kind": lesson.kind, "seed": lesson.seed})
        ended = False
        while not ended:
            action = choose(
                policy.heads(obs["world"][None]), obs["action_mask"][None], done_mask=obs["done_mask"][None]
            )[0]
            obs, _, terminated, truncated, info = env.step(action)
            ended = terminated or truncated
        assert (obs["world"] == world).all()
        assert info["score"] == pytest.approx(score_layout(lesson, World(world)))


def test_search_keeps_the_best_of_the_greedy_and_the_sampled_rollouts(
    tiny_checkpoint: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from training.evaluate import policy_planner, score_layout, search_planner
    from training.lessons import HELD_OUT_SEEDS, generate
    from training.onnx_policy import OnnxPolicy

    heads = OnnxPolicy(tiny_checkpoint[1]).heads
    lessons = [generate("belt-routing", seed, 8) for seed in HELD_OUT_SEEDS[:6]]
    greedy = [score_layout(lesson, w) for lesson, w in zip(lessons, policy_planner(heads)(lessons), strict=True)]
    found = search_planner(heads, 8)(lessons)
    searched = [score_layout(lesson, w) for lesson, w in zip(lessons, found, strict=True)]
    assert all(s >= g for s, g in zip(searched, greedy, strict=True))
    again = search_planner(heads, 8)(lessons)  # the same seed, the same answer
    assert all(a is not None and b is not None and a == b for a, b in zip(again, found, strict=True))
    args = ["--policy", str(tiny_checkpoint[1]), "--seeds", "2", "--kinds", "one-belt", "--search", "4"]
    assert main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["policy"] == f"{tiny_checkpoint[1]} (search 4)"
    with pytest.raises(SystemExit):
        main([*args[:-1], "-1"])
    assert "--search must be 0 or more" in capsys.readouterr().err


def test_a_beam_of_width_one_is_the_greedy_rollout_and_wider_beams_stay_legal(
    tiny_checkpoint: tuple[Path, Path],
) -> None:
    from server.planner import replay
    from training.evaluate import beam_rollout, rollout
    from training.lessons import HELD_OUT_SEEDS, generate
    from training.onnx_policy import OnnxPolicy

    heads = OnnxPolicy(tiny_checkpoint[1]).heads
    for kind in ("belt-routing", "machine"):
        task = generate(kind, HELD_OUT_SEEDS[0], 8).task
        greedy = rollout(heads, task.data[None])
        narrow = beam_rollout(heads, task.data, 1)
        assert greedy is not None and narrow is not None and np.array_equal(narrow, greedy)
        wide = beam_rollout(heads, task.data, 4)
        assert wide is not None and 1 <= len(wide)
        assert len({w.tobytes() for w in wide}) == len(wide)  # no layout twice
        for world in wide:
            replay(task, World(world))  # every entity legal, one at a time, through the shared validator
        again = beam_rollout(heads, task.data, 4)
        assert again is not None and np.array_equal(again, wide)
        assert beam_rollout(heads, task.data, 4, deadline=0.0) is None


def test_with_the_done_rule_rollouts_keep_placing_while_a_sink_is_short() -> None:
    from training.evaluate import beam_rollout, rollout

    task = generate("one-belt", HELD_OUT_SEEDS[0], 11).task.data
    assert (rollout(done_at_once, task[None]) == task).all()
    beamed = beam_rollout(done_at_once, task, 2)
    assert beamed is not None and (beamed[0] == task).all()  # the first layout finished: the bare task
    for ruled in (rollout(done_at_once, task[None], max_steps=5, done_rule=True),
                  beam_rollout(done_at_once, task, 2, max_steps=5, done_rule=True)):  # fmt: skip
        assert ruled is not None and (ruled != task).any(axis=(1, 2, 3)).all()  # each had to place something


def test_the_cli_names_the_done_rule_when_it_plays_by_it(
    tiny_checkpoint: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--policy", str(tiny_checkpoint[1]), "--seeds", "2", "--kinds", "one-belt", "--done-rule"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["policy"] for r in rows] == [f"{tiny_checkpoint[1]} (done rule)"]


def test_the_validation_seeds_give_a_second_opinion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--policy", "expert", "--seeds", "2", "--kinds", "split", "--seed-set", "validation"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.splitlines()[0])
    assert row["seed_set"] == "validation" and row["tasks"] == 2 and row["mean_score"] == 1.0
    assert "on 2 validation seeds" in captured.err
    with pytest.raises(SystemExit):
        main(["--policy", "expert", "--seed-set", "validation", "--seeds", str(len(VALIDATION_SEEDS) + 1)])
    assert f"--seeds must be 1 to {len(VALIDATION_SEEDS)} (validation seeds)" in capsys.readouterr().err
