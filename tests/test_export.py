"""ONNX export: onnxruntime agrees with torch, the metadata is there, and the numpy
action picker (`training.onnx_policy.choose`) agrees with `FactoredDistribution`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from shared_schema import SCHEMA_VERSION
from training.checkpoint import CheckpointError, load, save
from training.ensemble import Ensemble
from training.env.core import PLACEABLE, anchor_masks, n_recipes, place
from training.export import catalog_fingerprint, export, main, module_from_onnx
from training.lessons import generate
from training.model import FactoredDistribution, ModelConfig, Policy
from training.onnx_policy import HEAD_NAMES, HeadArrays, OnnxPolicy, choose, expansions

TINY = ModelConfig(width=16, conv_blocks=1)
KINDS = ("one-belt", "belt-wall", "split", "machine", "machine-row", "trial-2")


def random_layouts(count: int, size: int, seed: int) -> np.ndarray:
    """int16[count, 6, size, size]: lesson tasks with a random number of random legal placements."""
    rng = np.random.default_rng(seed)
    worlds = np.stack([generate(KINDS[i % len(KINDS)], i, size).task.data for i in range(count)])
    for _ in range(int(rng.integers(5, 30))):
        masks = anchor_masks(worlds)
        for i in range(count):
            legal = np.argwhere(masks[i])
            if len(legal) == 0:
                continue
            kind, facing, tile = legal[rng.integers(len(legal))]
            action = np.array([[tile, kind, facing, rng.integers(1, n_recipes()), rng.integers(2)]])
            place(worlds, np.array([i]), action)
    return worlds


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Policy, Path]:
    torch.manual_seed(0)
    policy = Policy(TINY).eval()
    path = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    export(policy, path, 11, source="tiny.pt")
    return policy, path


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("size", [11, 9])
def test_onnxruntime_agrees_with_torch(exported: tuple[Policy, Path], batch: int, size: int) -> None:
    policy, path = exported
    worlds = random_layouts(batch, size, seed=batch * size)
    with torch.no_grad():
        expected = policy(torch.as_tensor(worlds))
    got = OnnxPolicy(path).heads(worlds)
    for name, want, have in zip(HEAD_NAMES, expected, got, strict=True):
        assert have.shape == tuple(want.shape), name
        np.testing.assert_allclose(have, want.numpy(), atol=1e-4, rtol=0, err_msg=name)


def test_metadata_names_what_the_server_needs(exported: tuple[Policy, Path]) -> None:
    _, path = exported
    meta = OnnxPolicy(path).metadata
    assert meta["grid_size"] == 11 and meta["schema_version"] == SCHEMA_VERSION
    assert meta["placeable"] == [k.name.lower() for k in PLACEABLE] and meta["ends"] == ["entrance", "exit"]
    assert meta["recipes"] == n_recipes() and meta["catalog_sha256"] == catalog_fingerprint()
    assert meta["model_config"]["width"] == 16 and meta["source_checkpoint"] == "tiny.pt"
    inputs = onnx.load(str(path)).graph.input[0].type.tensor_type
    assert inputs.elem_type == onnx.TensorProto.INT16
    assert [d.dim_param for d in inputs.shape.dim] == ["batch", "", "height", "width"]


def test_numpy_choice_agrees_with_the_torch_distribution(exported: tuple[Policy, Path]) -> None:
    policy, _ = exported
    worlds = random_layouts(24, 11, seed=5)
    masks = anchor_masks(worlds)
    with torch.no_grad():
        heads = policy(torch.as_tensor(worlds))
    dist = FactoredDistribution(heads, torch.as_tensor(masks))
    numpy_heads = HeadArrays(*(h.numpy() for h in heads))
    greedy = choose(numpy_heads, masks, greedy=True)
    np.testing.assert_array_equal(greedy, dist.mode().numpy())
    # sampled actions are legal and have finite log-probability under the torch distribution
    rng = np.random.default_rng(0)
    for _ in range(5):
        sampled = choose(numpy_heads, masks, greedy=False, rng=rng)
        assert torch.isfinite(dist.log_prob(torch.as_tensor(sampled))).all()
        placed = sampled[:, 0] < 121
        rows = np.nonzero(placed)[0]
        assert (masks[rows, sampled[rows, 1], sampled[rows, 2], sampled[rows, 0]] == 1).all()


def test_numpy_choice_honours_the_done_mask_as_torch_does(exported: tuple[Policy, Path]) -> None:
    policy, _ = exported
    worlds = random_layouts(8, 11, seed=6)
    masks = anchor_masks(worlds)
    done_mask = (np.arange(8) % 2).astype(np.int8)
    with torch.no_grad():
        heads = policy(torch.as_tensor(worlds))
    heads = heads._replace(tile=heads.tile.clone().index_fill_(1, torch.tensor([121]), 50.0))  # "done", by far
    dist = FactoredDistribution(heads, torch.as_tensor(masks), done_mask=torch.as_tensor(done_mask))
    numpy_heads = HeadArrays(*(h.numpy() for h in heads))
    greedy = choose(numpy_heads, masks, greedy=True, done_mask=done_mask)
    np.testing.assert_array_equal(greedy, dist.mode().numpy())
    assert ((greedy[:, 0] == 121) == done_mask.astype(bool)).all()
    actions, log_prob = expansions(numpy_heads, masks, 3, done_mask)
    stops = actions[:, :, 0] == 121
    assert stops[done_mask == 1, 0].all() and not (stops[done_mask == 0] & np.isfinite(log_prob[done_mask == 0])).any()


def test_cli_exports_a_checkpoint_that_loads_on_the_cpu(tmp_path: Path) -> None:
    checkpoint, output = tmp_path / "tiny.pt", tmp_path / "tiny.onnx"
    save(checkpoint, Policy(TINY), size=8)
    assert main([str(checkpoint), "-o", str(output)]) == 0
    # a fresh interpreter, onnxruntime only: the server's situation
    code = (
        "import sys, numpy as np; from training.onnx_policy import OnnxPolicy; "
        f"p = OnnxPolicy({str(output)!r}); h = p.heads(np.zeros((1, 6, 8, 8), np.int16)); "
        "assert 'torch' not in sys.modules; print(p.size, h.tile.shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["8", "(1,", "65)"]


@pytest.mark.parametrize("config", [TINY, ModelConfig()], ids=["tiny", "default"])
def test_an_export_loads_back_as_the_policy_it_came_from(tmp_path: Path, config: ModelConfig) -> None:
    torch.manual_seed(1)
    policy = Policy(config).eval()
    export(policy, tmp_path / "p.onnx", 9, source="p.pt")
    loaded, state = load(tmp_path / "p.onnx")  # what every --init does with a .onnx file
    assert state == {"size": 9}
    want = policy.state_dict()
    assert loaded.state_dict().keys() == want.keys()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, want[key], rtol=0, atol=0, msg=key)


def test_a_damaged_or_foreign_onnx_file_is_refused_by_name(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="damaged.onnx cannot be read"):
        load(damaged)
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(foreign), dynamo=False)
    with pytest.raises(CheckpointError, match="foreign.onnx has no model_config"):
        load(foreign)


def test_the_shipped_policy_loads_back_for_training() -> None:
    shipped = Path(__file__).parents[1] / "server" / "policies" / "default.onnx"
    policy, state = load(shipped)  # checked against onnxruntime inside
    assert state == {"size": OnnxPolicy(shipped).size}
    assert policy.config == ModelConfig(**OnnxPolicy(shipped).metadata["model_config"])


def test_an_ensemble_of_one_policy_twice_chooses_as_that_policy() -> None:
    torch.manual_seed(3)
    policy = Policy(TINY).eval()
    worlds = torch.as_tensor(random_layouts(4, 9, seed=3))
    with torch.no_grad():
        alone, twice = policy(worlds), Ensemble([policy, policy])(worlds)
    for name in ("tile", "kind", "facing", "recipe", "end"):  # the same distribution over every head
        torch.testing.assert_close(
            torch.softmax(getattr(twice, name), -1), torch.softmax(getattr(alone, name), -1), msg=name
        )
    torch.testing.assert_close(twice.value, alone.value)


def test_an_ensemble_exports_runs_and_reads_back(tmp_path: Path) -> None:
    torch.manual_seed(4)
    members = [Policy(TINY).eval(), Policy(TINY).eval()]
    for i, member in enumerate(members):
        save(tmp_path / f"m{i}.pt", member, size=9)
    assert main([str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt"), "-o", str(tmp_path / "ens.onnx")]) == 0

    # onnxruntime runs it as one policy, and agrees with the torch ensemble
    worlds = random_layouts(5, 9, seed=4)
    with torch.no_grad():
        expected = Ensemble(members)(torch.as_tensor(worlds))
    exported = OnnxPolicy(tmp_path / "ens.onnx")
    assert exported.size == 9 and len(exported.metadata["model_config"]) == 2
    got = exported.heads(worlds)
    for name, want, have in zip(HEAD_NAMES, expected, got, strict=True):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-4, rtol=0, err_msg=name)

    # it reads back member by member, exactly
    module, state = module_from_onnx(tmp_path / "ens.onnx")
    assert isinstance(module, Ensemble) and state == {"size": 9}
    for member, want in zip(module.members, members, strict=True):
        for key, value in member.state_dict().items():
            torch.testing.assert_close(value, want.state_dict()[key], rtol=0, atol=0, msg=key)

    # training starts from one policy: --init refuses the ensemble and says how to take a member
    with pytest.raises(CheckpointError, match=r"ens.onnx is an ensemble of 2 policies.*--member I"):
        load(tmp_path / "ens.onnx")
    assert main([str(tmp_path / "ens.onnx"), "--member", "1", "-o", str(tmp_path / "m1.onnx")]) == 0
    member, _ = load(tmp_path / "m1.onnx")
    for key, value in member.state_dict().items():
        torch.testing.assert_close(value, members[1].state_dict()[key], rtol=0, atol=0, msg=key)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "m1.onnx"), "--member", "0", "-o", str(tmp_path / "bad.onnx")])  # not an ensemble
    assert not (tmp_path / "bad.onnx").exists()


def test_the_shipped_ensemble_reads_back_as_its_two_members() -> None:
    shipped = Path(__file__).parents[1] / "server" / "policies" / "ensemble.onnx"
    module, state = module_from_onnx(shipped)  # checked against onnxruntime inside
    assert isinstance(module, Ensemble) and len(module.policies) == 2 and state == {"size": 11}
