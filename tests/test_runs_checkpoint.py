"""Run folders and policy checkpoints."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from training.checkpoint import CheckpointError, load, save
from training.model import ModelConfig, Policy
from training.runs import Run


@dataclass
class Config:
    lr: float = 0.001
    name: str = "x"


def test_a_run_keeps_its_config_command_and_metrics(tmp_path: Path) -> None:
    run = Run.create("first", Config(), root=tmp_path)
    assert run.config() == {"lr": 0.001, "name": "x"}
    info = json.loads((run.folder / "run.json").read_text())
    assert {"command", "commit", "dirty", "started"} <= set(info)
    run.log(1, {"score": 0.5})
    run.log(2, {"score": 0.6, "kl": 0.01})  # a new metric adds a column
    run.close()
    rows = list(csv.DictReader((run.folder / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2"] and rows[0]["kl"] == "" and rows[1]["kl"] == "0.01"
    assert any((run.folder / "tb").iterdir())
    with pytest.raises(FileExistsError, match="--resume"):
        Run.create("first", Config(), root=tmp_path)
    assert Run.open(run.folder).config()["lr"] == 0.001


def test_checkpoints_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    policy = Policy(ModelConfig(width=16, conv_blocks=1))
    path = tmp_path / "ck.pt"
    save(path, policy, step=7)
    loaded, state = load(path)
    assert state == {"step": 7} and loaded.config == policy.config
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"broken\.pt cannot be read"):
        load(broken)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="not a Factorion policy checkpoint"):
        load(other)
