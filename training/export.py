"""Export a policy checkpoint to ONNX for the server.

    python -m training.export CKPT -o policy.onnx [--size N] [--opset 18]

The graph is the network's plain `forward` (STYLE.md): inputs "world" int16[B, 6, H, W]
and its distance hints "hints" float32[B, 6, H, W] (`training.hints.distance_hints`,
which `training.onnx_policy` computes), with the batch, height and width axes dynamic
(nothing in the network depends on the grid size); outputs "tile" [B, H*W+1],
"kind" [B, H*W, 6], "facing" [B, H*W, 6, 4], "recipe" [B, H*W, R], "end" [B, H*W, 2]
and "value" [B], as in `training.model.Heads`.
The model's metadata_props (strings; JSON where not plain) tell the server what it
speaks: see `metadata`. Run it without torch through `training.onnx_policy`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from shared_schema import SCHEMA_VERSION
from shared_schema.catalog import load_catalog
from training.checkpoint import load
from training.env.core import ENDS, PLACEABLE
from training.hints import distance_hints
from training.model import Policy
from training.onnx_policy import HEAD_NAMES

DEFAULT_SIZE = 11  # a checkpoint that does not say which grid it trained at


class _Graph(nn.Module):
    """The policy with a tuple output (the exporter names outputs positionally)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, world: Tensor, hints: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.policy(world, hints))


def catalog_fingerprint() -> str:
    """sha256 of the catalog file (`shared_schema/data/catalog.json`) the ids come from."""
    data = resources.files("shared_schema").joinpath("data/catalog.json").read_bytes()
    return hashlib.sha256(data).hexdigest()


def trained_size(state: dict[str, Any]) -> int | None:
    """The grid side a checkpoint's trainer state records (`size`, or `config["size"]`)."""
    size = state.get("size")
    if size is None and isinstance(state.get("config"), dict):
        size = state["config"].get("size")
    return int(size) if size is not None else None


def metadata(policy: Policy, size: int, source: str) -> dict[str, str]:
    """What the server needs to use the exported model, as metadata_props strings."""
    catalog = load_catalog()
    values: dict[str, Any] = {
        "grid_size": size,
        "schema_version": SCHEMA_VERSION,
        "placeable": [kind.name.lower() for kind in PLACEABLE],
        "ends": [end.name.lower() for end in ENDS],
        "recipes": len(catalog.recipes),
        "items": len(catalog.items),
        "catalog_sha256": catalog_fingerprint(),
        "model_config": policy.config.as_dict(),
        "source_checkpoint": source,
        "inputs": {"world": "int16[B, 6, H, W]", "hints": "float32[B, 6, H, W] (training.hints.distance_hints)"},
        "outputs": list(HEAD_NAMES),
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def export(policy: Policy, path: Path, size: int, source: str = "", opset: int = 18) -> None:
    """Write `policy` as ONNX to `path` with dynamic batch, height and width axes."""
    graph = _Graph(policy.cpu().eval())
    example = torch.zeros(2, 6, size, size, dtype=torch.int16)
    example[:, 4] = 1  # buildable everywhere: a plain empty world
    hints = torch.as_tensor(distance_hints(example.numpy()))
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic; the test checks the result
        torch.onnx.export(
            graph,
            (example, hints),
            str(path),
            input_names=["world", "hints"],
            output_names=list(HEAD_NAMES),
            dynamic_axes={"world": axes, "hints": axes, **{name: {0: "batch"} for name in HEAD_NAMES}},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for key, value in metadata(policy, size, source).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a policy checkpoint (.pt) from training")
    parser.add_argument("-o", "--output", type=Path, default=Path("policy.onnx"), help="the ONNX file to write")
    parser.add_argument("--size", type=int, help="grid side to record (default: the checkpoint's, else 11)")
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args(argv)
    policy, state = load(args.checkpoint)
    size = args.size or trained_size(state) or DEFAULT_SIZE
    export(policy, args.output, size, source=str(args.checkpoint), opset=args.opset)
    kib = args.output.stat().st_size / 1024
    print(f"wrote {args.output} ({kib:.0f} KiB, grid {size}x{size}, from {args.checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
