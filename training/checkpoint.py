"""Policy checkpoints: the network's config and weights, plus whatever a trainer needs
to continue (optimizer, counters, random states), in one torch file.

Saving writes a temporary file and renames it, so a crash never leaves a half-written
checkpoint where a good one was. Loading names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from shared_schema import SCHEMA_VERSION
from training.model import ModelConfig, Policy

FORMAT = 1  # bump when the file layout changes
# ModelConfig fields added after the first checkpoints, at the value those were built with
LEGACY_MODEL_FIELDS = {"pool": 1}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def save(path: Path, policy: Policy, **state: Any) -> None:
    """Write `policy` (and any trainer `state`) to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model_config": policy.config.as_dict(),
        "model": policy.state_dict(),
        "state": state,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load(path: Path, device: str | torch.device = "cpu") -> tuple[Policy, dict[str, Any]]:
    """The policy stored at `path` and the trainer state saved with it. An ONNX export
    (`.onnx`) gives its policy back (`training.export.policy_from_onnx`) and no trainer
    state but its grid size."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".onnx":
        from training.export import policy_from_onnx  # export imports this module

        policy, state = policy_from_onnx(path)
        return policy.to(device), state
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a Factorion policy checkpoint of format {FORMAT}")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path} speaks schema version {payload.get('schema_version')}, this code {SCHEMA_VERSION}"
        )
    try:
        policy = Policy(ModelConfig(**{**LEGACY_MODEL_FIELDS, **payload["model_config"]}))
        policy.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} does not hold a policy this code can build: {error}") from None
    return policy.to(device), dict(payload.get("state") or {})
