"""Experiments over seeds: config layers, Welch's test against scipy, the refusals, and a
tiny run-and-compare of two 2-seed experiments end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from training.experiment import (
    ExperimentError,
    compare,
    load_set,
    main,
    markdown,
    parse_sets,
    resolve,
    start_set,
    verdict,
    welch,
)
from training.runs import end_means

PPO_TINY = {
    "size": 8,
    "num_envs": 8,
    "rollout": 4,
    "minibatches": 2,
    "kinds": ["one-belt"],
    "total_steps": 64,
    "eval_every": 1,
    "eval_seeds": 1,
    "model": {"width": 8, "pool": 2},
}
SFT_TINY = {
    "steps": 4,
    "batch_size": 16,
    "pool": 2,
    "refresh": 1,
    "val_every": 2,
    "val_seeds": 1,
    "log_every": 2,
    "kinds": ["one-belt"],
    "size": 8,
    "model": {"width": 8, "conv_blocks": 1},
}


def write(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def with_sft(tmp_path: Path, name: str = "base") -> Path:
    return write(
        tmp_path / f"{name}.yaml",
        {
            "name": name,
            "hypothesis": "the tiny recipe",
            "stages": [
                {"name": "sft", "program": "sft", "set": SFT_TINY},
                {"name": "ppo", "program": "ppo", "init": "previous", "set": PPO_TINY},
            ],
            "evaluate": {"seeds": 2},
        },
    )


def without_sft(tmp_path: Path, name: str = "cand", changes: list[str] | None = None) -> Path:
    return write(
        tmp_path / f"{name}.yaml",
        {
            "name": name,
            "hypothesis": "pre-training does nothing at this size",
            "change": "no pre-training",
            "changes": ["sft", "ppo.init"] if changes is None else changes,
            "stages": [{"name": "ppo", "program": "ppo", "set": PPO_TINY}],
            "evaluate": {"seeds": 2},
        },
    )


def test_a_stage_config_is_defaults_then_its_file_then_its_fields_then_the_flags(tmp_path: Path) -> None:
    recipe = write(tmp_path / "ppo.yaml", {"lr": 0.1, "gamma": 0.9, "total_steps": 1000})
    spec = write(
        tmp_path / "e.yaml",
        {"stages": [{"program": "ppo", "config": str(recipe), "set": {"gamma": 0.8, "total_steps": 500}}]},
    )
    record = resolve(spec, parse_sets(["ppo.total_steps=50", "ppo.model.width=16", "evaluate.seeds=3"]))
    ppo = record["stages"]["ppo"]
    assert (ppo["clip"], ppo["lr"], ppo["gamma"], ppo["total_steps"]) == (0.2, 0.1, 0.8, 50)
    assert ppo["model"]["width"] == 16 and record["evaluate"] == {"seeds": 3, "kinds": None, "size": 11}
    assert "seed" not in ppo and "threads" not in ppo  # how a run executes is not what it learns
    assert record["name"] == "e" and record["primary"] == "eval/mean_score"


@pytest.mark.parametrize(
    ("spec", "overrides", "message"),
    [
        ({"stages": []}, [], "at least one stage"),
        ({"stages": [{"program": "dqn"}]}, [], "program must be one of sft, ppo"),
        ({"stages": [{"program": "ppo", "set": {"learning_rate": 1}}]}, [], "unknown field 'learning_rate'"),
        ({"stages": [{"program": "ppo", "init": "previous"}]}, [], "no previous stage"),
        ({"stages": [{"program": "ppo"}, {"program": "ppo"}]}, [], "stage name 'ppo' is taken"),
        ({"stages": [{"program": "ppo"}], "seeds": 3}, [], "unknown fields ['seeds']"),
        ({"stages": [{"program": "ppo"}]}, ["sft.steps=3"], "--set names no stage"),
        ({"stages": [{"program": "ppo", "set": [1]}]}, [], "`set` must map fields to values"),
        ({"stages": [{"program": "ppo"}], "evaluate": 20}, [], "`evaluate` must map fields to values"),
        ({"stages": [{"program": "ppo"}], "evaluate": {"episodes": 2}}, [], "evaluate: unknown fields"),
    ],
)
def test_a_malformed_experiment_is_refused_by_name(
    tmp_path: Path, spec: dict[str, Any], overrides: list[str], message: str
) -> None:
    with pytest.raises(ExperimentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve(write(tmp_path / "bad.yaml", spec), parse_sets(overrides))


def test_set_flags_must_name_a_stage_and_a_field() -> None:
    assert parse_sets(["ppo.model.width=16", "ppo.kinds=[split, merge]"]) == {
        "ppo": {"model": {"width": 16}, "kinds": ["split", "merge"]}
    }
    with pytest.raises(ExperimentError, match="STAGE.FIELD=VALUE"):
        parse_sets(["total_steps=5"])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.61, 0.64, 0.66, 0.70, 0.63], [0.71, 0.69, 0.74, 0.70, 0.77]),
        ([1.0, 2.0, 3.0], [1.5, 2.5, 9.0, 4.0]),  # unequal sizes and spreads
        ([0.5, 0.52], [0.49, 0.53]),
    ],
)
def test_welch_agrees_with_scipy(a: list[float], b: list[float]) -> None:
    ours = welch(a, b)
    theirs = stats.ttest_ind(b, a, equal_var=False)
    assert ours.t == pytest.approx(theirs.statistic, rel=1e-9)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(theirs.df, rel=1e-9)


def test_welch_without_spread_or_without_seeds() -> None:
    assert welch([1.0, 1.0], [1.0, 1.0]).p == 1.0  # the same certain value: no change
    assert welch([0.5, 0.5], [0.7, 0.7]).p == 0.0  # two different certain values
    assert math.isnan(welch([0.5], [0.6, 0.7]).p)
    assert verdict(welch([0.5], [0.6, 0.7]), 0.15, 0.05) == "too few seeds"
    significant = welch([0.60, 0.61, 0.62], [0.70, 0.71, 0.72])
    assert verdict(significant, 0.1, 0.05) == "better" and verdict(significant, 0.1, 0.05, minimize=True) == "worse"
    assert verdict(welch([0.6, 0.7], [0.61, 0.69]), 0.0, 0.05) == "no change"


def test_end_means_average_the_last_fifth_of_each_metric(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    rows = ["step,loss,val"] + [f"{i},{i},{'' if i % 5 else i}" for i in range(1, 11)]
    log.write_text("\n".join(rows) + "\n")
    assert end_means(log) == {"loss": 9.5, "val": 10.0}  # 2 of 10 points; 1 of the 2 validations
    assert end_means(tmp_path / "none.csv") == {}


def fake_set(root: Path, spec: Path, scores: list[float], commit: str = "abc") -> Path:
    """A finished set without training: its experiment.yaml and seed summaries."""
    folder = start_set(spec, root, {}, ["test"])
    for seed, score in enumerate(scores, 1):
        (folder / f"seed-{seed}").mkdir()
        summary = {"seed": seed, "minutes": 1.0, "commit": commit, "dirty": False}
        summary["metrics"] = {"eval/mean_score": score, "eval/one-belt": score, "speed/steps_per_s": 100.0 + seed}
        (folder / f"seed-{seed}" / "summary.json").write_text(json.dumps(summary))
    return folder


def test_compare_refuses_a_set_with_itself(tmp_path: Path) -> None:
    base = fake_set(tmp_path / "a", with_sft(tmp_path), [0.5, 0.6])
    with pytest.raises(ExperimentError, match="compared with itself"):
        compare(load_set(base), load_set(base))
    again = fake_set(tmp_path / "b", with_sft(tmp_path), [0.5, 0.6])  # same config, same commit
    with pytest.raises(ExperimentError, match="same configuration at the same commit"):
        compare(load_set(base), load_set(again))
    newer = fake_set(tmp_path / "c", with_sft(tmp_path), [0.6, 0.7], commit="def")  # a change of code
    assert compare(load_set(base), load_set(newer)).metrics[0].metric == "eval/mean_score"


def test_compare_refuses_differences_the_candidate_does_not_declare(tmp_path: Path) -> None:
    base = fake_set(tmp_path, with_sft(tmp_path), [0.5, 0.6])
    partial = fake_set(tmp_path, without_sft(tmp_path, "partial", changes=["sft"]), [0.4, 0.5])
    with pytest.raises(ExperimentError, match=r"declared: \['sft'\]\): ppo.init \('previous' -> None\)"):
        compare(load_set(base), load_set(partial))
    silent = fake_set(tmp_path, without_sft(tmp_path, "silent", changes=[]), [0.4, 0.5])
    with pytest.raises(ExperimentError, match=r"sft \(a stage only the baseline runs\)"):
        compare(load_set(base), load_set(silent))
    declared = fake_set(tmp_path, without_sft(tmp_path), [0.3, 0.31, 0.29])
    result = compare(load_set(base), load_set(declared))
    assert [m.metric for m in result.metrics] == ["eval/mean_score", "eval/one-belt", "speed/steps_per_s"]
    table = markdown(result)
    assert "| **eval/mean_score** (primary) | 0.550 ± 0.071 | 0.300 ± 0.010 | -45.5% |" in table
    assert "| 3 | - | 0.290 |" in table  # the per-seed table


def test_a_set_is_extended_only_with_its_own_configuration(tmp_path: Path) -> None:
    spec = with_sft(tmp_path)
    folder = fake_set(tmp_path, spec, [0.5])
    assert start_set(spec, tmp_path, {}, ["again"]) == folder  # same config: more seeds welcome
    assert [r["command"] for r in yaml.safe_load((folder / "experiment.yaml").read_text())["runs"]] == [
        ["test"],
        ["again"],
    ]
    with pytest.raises(ExperimentError, match=r"another configuration \(differs in ppo.total_steps\)"):
        start_set(spec, tmp_path, parse_sets(["ppo.total_steps=128"]), ["changed"])


def test_two_tiny_two_seed_experiments_run_and_compare_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "runs"
    for spec in (with_sft(tmp_path), without_sft(tmp_path)):
        assert main(["run", str(spec), "--seeds", "2", "--jobs", "2", "--root", str(root)]) == 0
    seed = root / "base" / "seed-2"
    for stage in ("sft", "ppo"):  # every stage is a full run folder
        for part in ("config.yaml", "run.json", "metrics.csv", "tb", "checkpoints/latest.pt"):
            assert (seed / stage / part).exists(), (stage, part)
        assert json.loads((seed / stage / "summary.json").read_text())["end_means"]
    assert yaml.safe_load((seed / "ppo" / "config.yaml").read_text())["init"].endswith("seed-2/sft/checkpoints/best.pt")
    assert "| one-belt | 2 |" in (seed / "evaluation.md").read_text()
    metrics = json.loads((seed / "summary.json").read_text())["metrics"]
    assert {"eval/mean_score", "eval/one-belt", "speed/steps_per_s", "sft:losses/loss", "ppo:val/mean_score"} <= set(
        metrics
    )
    capsys.readouterr()

    log = tmp_path / "docs" / "EXPERIMENTS.md"
    png = tmp_path / "curves.png"
    args = ["compare", str(root / "base"), str(root / "cand"), "--log", str(log), "--png", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| **eval/mean_score** (primary) |" in out and "p (Welch)" in out and "Verdict on eval/mean_score" in out
    assert png.stat().st_size > 10_000
    entry = log.read_text()
    assert entry.startswith("# Experiment log") and "## " in entry and "cand against base" in entry
    assert (
        "Hypothesis: pre-training does nothing at this size" in entry
        and "sft (a stage only the baseline runs)" in entry
    )
    assert "training.experiment run" in entry and "training.experiment compare" in entry
    assert main(["compare", str(root / "base"), str(root / "base")]) == 2
    assert "compared with itself" in capsys.readouterr().err


def test_an_unfinished_seed_is_refused_rather_than_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = without_sft(tmp_path)
    folder = start_set(spec, tmp_path, {}, ["test"])
    (folder / "seed-1" / "ppo").mkdir(parents=True)
    (folder / "seed-1" / "ppo" / "config.yaml").write_text("kept: true\n")
    assert main(["run", str(spec), "--seeds", "1", "--root", str(tmp_path)]) == 2
    assert "seed-1 holds an unfinished run of seed 1" in capsys.readouterr().err
    assert (folder / "seed-1" / "ppo" / "config.yaml").read_text() == "kept: true\n"
    np.testing.assert_equal(sorted(p.name for p in folder.iterdir()), ["experiment.yaml", "seed-1"])


def test_a_field_added_since_a_set_ran_counts_as_its_default(tmp_path: Path) -> None:
    old = fake_set(tmp_path / "old", with_sft(tmp_path), [0.5, 0.6])
    saved = yaml.safe_load((old / "experiment.yaml").read_text())
    del saved["stages"]["ppo"]["clip"]  # as if PPOConfig had no `clip` field when it ran
    (old / "experiment.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    new = fake_set(tmp_path / "new", with_sft(tmp_path), [0.6, 0.7], commit="def")
    assert compare(load_set(old), load_set(new)).differences == ""
    other = fake_set(tmp_path / "other", with_sft(tmp_path), [0.6, 0.7], commit="def")
    saved["stages"]["ppo"]["clip"] = 0.3  # a real difference is still one
    (other / "experiment.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.raises(ExperimentError, match=r"ppo.clip \(0.2 -> 0.3\)"):
        compare(load_set(new), load_set(other))
