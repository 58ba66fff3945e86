"""Export a policy checkpoint to ONNX for the server, and read an export back.

    python -m training.export CKPT -o policy.onnx [--size N] [--opset 18]
    python -m training.export CKPT CKPT ... -o policy.onnx    # an ensemble (training.ensemble)
    python -m training.export ENSEMBLE.onnx --member I -o member.onnx

The graph is the network's plain `forward` (STYLE.md): inputs "world" int16[B, 6, H, W]
and its distance hints "hints" float32[B, 7, H, W] (`training.hints.distance_hints`,
which `training.onnx_policy` computes), with the batch, height and width axes dynamic
(nothing in the network depends on the grid size); outputs "tile" [B, H*W+1],
"kind" [B, H*W, 6], "facing" [B, H*W, 6, 4], "recipe" [B, H*W, R], "end" [B, H*W, 2]
and "value" [B], as in `training.model.Heads`.
The model's metadata_props (strings; JSON where not plain) tell the server what it
speaks: see `metadata`. Run it without torch through `training.onnx_policy`.

`policy_from_onnx` rebuilds the torch policy from an export's weights, so training can
start from a policy that exists only as ONNX (the shipped `server/policies/default.onnx`):
`training.checkpoint.load` calls it for `.onnx` files, which makes every `--init` take one.
An ensemble's export (`training.ensemble`; its model_config is a list, one per member)
reads back through `module_from_onnx`; `--member I` writes one of its members alone.
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

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import Tensor, nn

from shared_schema import SCHEMA_VERSION
from shared_schema.catalog import load_catalog
from training.checkpoint import CheckpointError, load
from training.ensemble import Ensemble
from training.env.core import ENDS, PLACEABLE
from training.hints import HINTS, distance_hints
from training.lessons import generate
from training.model import ModelConfig, Policy
from training.onnx_policy import HEAD_NAMES, OnnxPolicy

DEFAULT_SIZE = 11  # a checkpoint that does not say which grid it trained at


class _Graph(nn.Module):
    """The policy with a tuple output (the exporter names outputs positionally)."""

    def __init__(self, policy: Policy | Ensemble) -> None:
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


def metadata(policy: Policy | Ensemble, size: int, source: str) -> dict[str, str]:
    """What the server needs to use the exported model, as metadata_props strings
    (an ensemble's model_config: a list of its members' configs)."""
    catalog = load_catalog()
    values: dict[str, Any] = {
        "grid_size": size,
        "schema_version": SCHEMA_VERSION,
        "placeable": [kind.name.lower() for kind in PLACEABLE],
        "ends": [end.name.lower() for end in ENDS],
        "recipes": len(catalog.recipes),
        "items": len(catalog.items),
        "catalog_sha256": catalog_fingerprint(),
        "model_config": _model_config(policy),
        "source_checkpoint": source,
        "inputs": {"world": "int16[B, 6, H, W]", "hints": f"float32[B, {HINTS}, H, W] (training.hints.distance_hints)"},
        "outputs": list(HEAD_NAMES),
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _model_config(policy: Policy | Ensemble) -> dict[str, int] | list[dict[str, int]]:
    if isinstance(policy, Ensemble):
        return [member.config.as_dict() for member in policy.policies]
    return policy.config.as_dict()


def export(policy: Policy | Ensemble, path: Path, size: int, source: str = "", opset: int = 18) -> None:
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


def policy_from_onnx(path: Path) -> tuple[Policy, dict[str, Any]]:
    """The policy an export (`export`) was made from, and {"size": its grid side}; an
    ensemble's export is refused (training starts from one policy). See `module_from_onnx`."""
    module, state = module_from_onnx(path)
    if isinstance(module, Ensemble):
        raise CheckpointError(
            f"ONNX policy {path} is an ensemble of {len(module.policies)} policies: training starts from one "
            f"(python -m training.export {path} --member I -o member.onnx writes member I alone)"
        )
    return module, state


def module_from_onnx(path: Path) -> tuple[Policy | Ensemble, dict[str, Any]]:
    """The policy or ensemble an export (`export`) was made from, and {"size": its grid side}.

    The exporter names a graph node after the module that made it ("/policy/blocks/
    blocks.0/norm/Mul") but not always the weight it reads: a linear layer's weight is
    stored transposed under a generated name, a GroupNorm's scale and shift as [C, 1, 1]
    constants, and weights of equal value (a fresh norm's ones) once, the others as
    Identity nodes of it. So each weight is found from the node that reads it: its
    module, and its place in the op. The rebuilt policy must give onnxruntime's outputs
    on lesson tasks, or a `CheckpointError` says it does not."""
    try:
        exported, model = OnnxPolicy(path, threads=1), onnx.load(str(path))
    except Exception as error:  # onnxruntime and protobuf raise many kinds for a damaged file
        raise CheckpointError(f"ONNX policy {path} cannot be read ({type(error).__name__}: {error})") from None
    meta = exported.metadata
    if "model_config" not in meta:
        raise CheckpointError(f"ONNX policy {path} has no model_config: it was not written by training.export")
    if meta.get("schema_version") != SCHEMA_VERSION:
        version = meta.get("schema_version")
        raise CheckpointError(f"ONNX policy {path} speaks schema version {version}, this code {SCHEMA_VERSION}")
    configs = meta["model_config"]
    try:
        if isinstance(configs, list):
            policy: Policy | Ensemble = Ensemble([Policy(ModelConfig(**config)) for config in configs])
        else:
            policy = Policy(ModelConfig(**configs))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"ONNX policy {path} has a model_config this code cannot build: {error}") from None
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:  # a weight equal to another's is an Identity of it
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    wanted = policy.state_dict()
    weights: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        module = _module_path(node.name)
        for position, name in enumerate(node.input):
            if name not in arrays:
                continue
            key = f"{module}.{_param_read(node, position)}"
            if key not in wanted:  # not a module's own weight (the recipe hint's mix, say): trust its name
                key = name.removeprefix("policy.")
            value = arrays[name]
            transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attribute(node, "transB"))
            if key.endswith(".weight") and transposed and value.ndim == 2:
                value = value.T
            if key in wanted:
                weights[key] = value.reshape(wanted[key].shape)
    missing = [key for key in wanted if key not in weights]
    if missing:
        raise CheckpointError(f"ONNX policy {path} does not hold the weights {missing}")
    policy.load_state_dict({key: torch.as_tensor(np.array(value)) for key, value in weights.items()})
    size = int(meta.get("grid_size", DEFAULT_SIZE))
    _check_agrees(policy.eval(), exported, size)
    return policy, {"size": size}


def _module_path(node_name: str) -> str:
    """ "/policy/attention/attention.0/ff/ff.0/MatMul" -> "attention.0.ff.0": a child of a
    Sequential is scoped by its full name ("ff.0"), any other by its attribute ("ff")."""
    path: list[str] = []
    for part in node_name.strip("/").split("/")[1:-1]:  # between "policy" and the op
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _param_read(node: onnx.NodeProto, position: int) -> str:
    """Which of its module's weights a node reads at input `position`: an Add adds the
    bias; Conv, Gemm and LayerNormalization read (input, weight, bias)."""
    if node.op_type == "Add" or (node.op_type in ("Conv", "Gemm", "LayerNormalization") and position == 2):
        return "bias"
    return "weight"


def _attribute(node: onnx.NodeProto, name: str) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), 0)


def _check_agrees(policy: Policy | Ensemble, exported: OnnxPolicy, size: int) -> None:
    """Raise a `CheckpointError` unless `policy` gives the exported heads on a few lesson tasks."""
    worlds = np.stack([generate(kind, 0, size).task.data for kind in ("one-belt", "split", "machine-row", "trial-1")])
    got = exported.heads(worlds)
    with torch.no_grad():
        want = policy(torch.as_tensor(worlds))
    for name, a, b in zip(HEAD_NAMES, got, want, strict=True):
        if a.shape != tuple(b.shape) or not np.allclose(a, b.numpy(), atol=1e-4, rtol=0):
            raise CheckpointError(
                f"ONNX policy {exported.path}: the weights read back do not reproduce its '{name}' head"
            )


def _read(path: Path) -> tuple[list[Policy], dict[str, Any]]:
    """The policies in a checkpoint or an export (an ensemble's members), and its state."""
    if path.suffix == ".onnx":
        module, state = module_from_onnx(path)
        return (module.policies if isinstance(module, Ensemble) else [module]), state
    policy, state = load(path)
    return [policy], state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", type=Path, nargs="+", help="a policy checkpoint (.pt) or export (.onnx); several make an ensemble"
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("policy.onnx"), help="the ONNX file to write")
    parser.add_argument("--size", type=int, help="grid side to record (default: the first checkpoint's, else 11)")
    parser.add_argument("--member", type=int, help="write only this member (from 0) of the one ensemble given")
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args(argv)
    try:
        read = [_read(path) for path in args.checkpoint]
    except CheckpointError as error:
        parser.exit(2, f"python -m training.export: error: {error}\n")
    members = [policy for policies, _ in read for policy in policies]
    if args.member is not None:
        if len(read) != 1 or len(members) < 2 or not 0 <= args.member < len(members):
            parser.error(f"--member takes one ensemble and a member from 0 to {len(members) - 1}")
        members = [members[args.member]]
    size = args.size or trained_size(read[0][1]) or DEFAULT_SIZE
    source = ", ".join(map(str, args.checkpoint)) + (f" member {args.member}" if args.member is not None else "")
    policy = members[0] if len(members) == 1 else Ensemble(members)
    export(policy, args.output, size, source=source, opset=args.opset)
    kib = args.output.stat().st_size / 1024
    what = f"an ensemble of {len(members)} policies" if len(members) > 1 else "a policy"
    print(f"wrote {args.output} ({kib:.0f} KiB, {what}, grid {size}x{size}, from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
