"""Run an exported policy (`python -m training.export`) with onnxruntime and numpy only.

The server imports this module; it must never import torch. `OnnxPolicy(path)` opens
the model and its metadata; `policy.heads(worlds)` runs the network on int16[B, 6, H, W]
worlds and returns the six heads as numpy arrays (`HeadArrays`, the same layout as
`training.model.Heads`); `choose(heads, action_mask, greedy, rng, done_mask)` applies the
env's action mask (int8[B, 6, 4, H*W]) and "done" mask (int8[B]; None: "done" is legal)
and picks actions int64[B, 5] (tile, kind, facing, recipe, end) with the semantics of
`training.model.FactoredDistribution`: tile (or "done", the last tile value, where
legal) among tiles where any kind and facing is legal, then kind
legal on that tile, then facing legal for that kind (assemblers: north only), then a
recipe other than 0 (assemblers) and an underground end (undergrounds); parts the
choice does not read are 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shared_schema.entities import Entity
from training.env.core import PLACEABLE
from training.hints import distance_hints

HEAD_NAMES = ("tile", "kind", "facing", "recipe", "end", "value")
ASSEMBLER = PLACEABLE.index(Entity.ASSEMBLER)
UNDERGROUND = PLACEABLE.index(Entity.UNDERGROUND)
MASKED = -1e9  # the logit of an illegal choice, as in training.model


class HeadArrays(NamedTuple):
    """tile [B, T+1], kind [B, T, 6], facing [B, T, 6, 4], recipe [B, T, R], end [B, T, 2], value [B]."""

    tile: np.ndarray
    kind: np.ndarray
    facing: np.ndarray
    recipe: np.ndarray
    end: np.ndarray
    value: np.ndarray


def _take(logits: np.ndarray, greedy: bool, rng: np.random.Generator | None) -> np.ndarray:
    """argmax, or a draw from softmax(logits), along the last axis: [B, N] -> int64[B]."""
    if greedy:
        return logits.argmax(axis=-1).astype(np.int64)
    if rng is None:
        raise ValueError("sampling needs a random generator (rng=)")
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((len(z), 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), z.shape[-1] - 1).astype(np.int64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _tile_logits(heads: HeadArrays, mask: np.ndarray, done_mask: np.ndarray | None) -> np.ndarray:
    """[B, T+1]: tile logits with every tile where nothing is legal masked, and "done"
    where `done_mask` says so (None: never)."""
    done = np.ones((len(mask), 1), bool) if done_mask is None else np.asarray(done_mask, bool).reshape(-1, 1)
    legal_tile = np.concatenate((mask.any(axis=(1, 2)), done), axis=1)
    return np.where(legal_tile, heads.tile.astype(np.float32), MASKED)


def _at_tile(
    heads: HeadArrays,
    mask: np.ndarray,
    tile: np.ndarray,
    rows: np.ndarray,
    greedy: bool,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The rest of each action at `tile` [N] (kind, facing, recipe, end, in turn) of the
    worlds `rows` [N]: actions int64[N, 5], and the masked kind, facing, recipe and end
    logits they were taken from."""
    t = mask.shape[-1]
    done = tile == t
    at = np.minimum(tile, t - 1)
    here = mask[rows, :, :, at]  # [N, K, 4]
    kind_logits = np.where(here.any(axis=2), heads.kind[rows, at].astype(np.float32), MASKED)
    kind = _take(kind_logits, greedy, rng)
    legal_facing = here[np.arange(len(rows)), kind]  # [N, 4]
    legal_facing[kind == ASSEMBLER] = (True, False, False, False)  # an assembler's facing carries no choice
    facing_logits = np.where(legal_facing, heads.facing[rows, at, kind].astype(np.float32), MASKED)
    facing = _take(facing_logits, greedy, rng)
    recipe_logits = heads.recipe[rows, at].astype(np.float32)
    recipe_logits[:, 0] = MASKED  # recipe 0 is "none": an assembler needs a real one
    recipe = _take(recipe_logits, greedy, rng)
    end_logits = heads.end[rows, at].astype(np.float32)
    end = _take(end_logits, greedy, rng)
    recipe = np.where((kind == ASSEMBLER) & ~done, recipe, 0)
    end = np.where((kind == UNDERGROUND) & ~done, end, 0)
    kind, facing = np.where(done, 0, kind), np.where(done, 0, facing)
    actions = np.stack((tile, kind, facing, recipe, end), axis=1)
    return actions, (kind_logits, facing_logits, recipe_logits, end_logits)


def choose(
    heads: HeadArrays,
    action_mask: np.ndarray,
    greedy: bool = True,
    rng: np.random.Generator | None = None,
    done_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Masked actions int64[B, 5] from the heads (see the module docstring)."""
    mask = action_mask.astype(bool)  # [B, K, 4, T]
    tile = _take(_tile_logits(heads, mask, done_mask), greedy, rng)
    return _at_tile(heads, mask, tile, np.arange(len(mask)), greedy, rng)[0]


def expansions(
    heads: HeadArrays, action_mask: np.ndarray, width: int, done_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A beam search's candidates: for each world, its `width` most likely tiles (or
    "done", where legal), each with the greedy rest of the action. Actions int64[B, width, 5]
    and their log-probabilities float64[B, width]: -inf where a world has fewer legal choices."""
    mask = action_mask.astype(bool)
    b, t = len(mask), mask.shape[-1]
    tile_log_prob = _log_softmax(_tile_logits(heads, mask, done_mask))  # [B, T+1]
    width = min(width, tile_log_prob.shape[1])
    tiles = np.argsort(-tile_log_prob, axis=1, kind="stable")[:, :width]  # [B, width]
    actions, (kind, facing, recipe, end) = _at_tile(
        heads, mask, tiles.reshape(-1), np.repeat(np.arange(b), width), greedy=True, rng=None
    )
    n = np.arange(len(actions))
    placed = actions[:, 0] < t
    # the parts the action reads: kind and facing when placed, recipe for machines, end for undergrounds
    rest = np.where(placed, _log_softmax(kind)[n, actions[:, 1]] + _log_softmax(facing)[n, actions[:, 2]], 0.0)
    rest += np.where(placed & (actions[:, 1] == ASSEMBLER), _log_softmax(recipe)[n, actions[:, 3]], 0.0)
    rest += np.where(placed & (actions[:, 1] == UNDERGROUND), _log_softmax(end)[n, actions[:, 4]], 0.0)
    tile_part = np.take_along_axis(tile_log_prob, tiles, axis=1)
    legal = tile_part > MASKED / 2  # a masked tile's log-prob is about -1e9
    return actions.reshape(b, width, 5), np.where(legal, tile_part + rest.reshape(b, width), -np.inf)


class OnnxPolicy:
    """An exported policy on onnxruntime (CPU, or CUDA when `providers` asks for it).
    `threads` sets onnxruntime's intra-op threads (None: its default, one per core);
    graph nodes then run one at a time. `metadata` holds the model's metadata_props,
    JSON values decoded."""

    def __init__(self, path: Path | str, providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            # the graph is a chain of convolutions: nothing to gain from running nodes side by side
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=providers or ["CPUExecutionProvider"])
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, Any] = {k: _decode(v) for k, v in raw.items()}
        self._inputs = {i.name: i for i in self.session.get_inputs()}

    @property
    def size(self) -> int:
        """The grid side the policy was trained at."""
        return int(self.metadata["grid_size"])

    def heads(self, worlds: np.ndarray) -> HeadArrays:
        """The network on int16[B, 6, H, W] worlds."""
        dtype = np.int64 if self._inputs["world"].type == "tensor(int64)" else np.int16
        feed = {"world": np.ascontiguousarray(worlds, dtype)}
        if "hints" in self._inputs:  # the distance hints are computed here, not in the graph
            feed["hints"] = distance_hints(feed["world"])
        outputs = self.session.run(list(HEAD_NAMES), feed)
        return HeadArrays(*(np.asarray(o) for o in outputs))


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
