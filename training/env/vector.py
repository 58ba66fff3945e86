"""`FactoryVectorEnv`: many `FactoryEnv`s stepped as arrays.

State lives in arrays allocated once (worlds int16[N, 6, H, W], masks, "done" masks,
scores, counters); a step decodes all actions at once, checks them with the vectorised
validator (`core.reasons`, held equal to `placement.check` by the tests), places the
legal ones, recomputes masks only for worlds that changed, and scores every changed
world in one `sink_rates_batch` call split over `threads`, started in a background
thread so that the rest of the step (masks, episode ends) overlaps it. Python loops
run only over the few envs whose episode ends (lesson draw, final observation); a new
episode's first score comes from its lesson's cached task rates unless prefilled.

Autoreset: `AutoresetMode.SAME_STEP`. A step that ends an episode returns the next
episode's first observation and info; the ended episode's last observation and info
are in info["final_obs"] (object array, None elsewhere) and info["final_info"] (dict of
arrays, with on_path_fraction), valid where info["_final_obs"] / info["_final_info"] are
True. Every step is thus a real transition: no wasted step on a reset, which PPO's
rollouts would otherwise have to mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from shared_schema.world import CHANNELS
from training.env.config import EnvConfig
from training.env.core import (
    FACINGS,
    PLACEABLE,
    REASONS,
    action_space,
    observation_space,
    place,
    reasons,
    scores,
)
from training.env.masks import action_masks, done_masks
from training.env.supply import Prepared, prepare, start
from training.sim.engine import MAX_SINKS, sink_rates_batch
from training.sim.paths import on_path_fractions

_STATE_ARRAYS = (
    "worlds",
    "masks",
    "done_masks",
    "score",
    "best",
    "n_sinks",
    "steps",
    "entities",
    "invalid",
    "reason_counts",
    "kind",
    "lesson_seed",
)


class FactoryVectorEnv(VectorEnv):
    """`num_envs` copies of `FactoryEnv` (same `EnvConfig` options, same spaces, rewards
    and info keys, as arrays); sub-env i seeded with seed + i behaves as a `FactoryEnv`
    seeded so. `threads`: mimic threads per step; `copy`: return copies of the state
    arrays (False hands out the live buffers, which the next step overwrites)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 256, threads: int = 2, copy: bool = True, **options: Any) -> None:
        self.config = EnvConfig(**options)
        self.num_envs, self.size = num_envs, self.config.size
        self.supply = self.config.supply()
        self.threads, self.copy = threads, copy
        self.single_observation_space = observation_space(self.size)
        self.single_action_space = action_space(self.size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        n, size = num_envs, self.size
        self.worlds = np.zeros((n, CHANNELS, size, size), np.int16)
        self.masks = np.zeros((n, len(PLACEABLE), FACINGS, size * size), np.int8)
        self.done_masks = np.ones(n, np.int8)
        self.score = np.zeros(n)
        self.best = np.ones((n, MAX_SINKS))
        self.n_sinks = np.ones(n, np.int64)
        self.steps = np.zeros(n, np.int64)
        self.entities = np.zeros(n, np.int64)
        self.invalid = np.zeros(n, np.int64)
        self.reason_counts = np.zeros((n, len(REASONS)), np.int64)
        self.kind = np.full(n, "", object)
        self.lesson_seed = np.zeros(n, np.int64)
        self.lessons: list[Prepared | None] = [None] * n
        self._rngs: list[np.random.Generator] = []
        self._resets = np.zeros(n, np.int64)
        self._background = ThreadPoolExecutor(1, thread_name_prefix="factory-env")

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """seed: int (env i gets seed + i), one per env, or None (keep the streams, or
        draw fresh ones on the first reset). options={"lessons": [(kind, seed)] * num_envs}
        picks the first lessons; later autoresets draw as usual."""
        if seed is not None or not self._rngs:
            seeds = [None] * self.num_envs if seed is None else seed
            if isinstance(seeds, int):
                seeds = [seeds + i for i in range(self.num_envs)]
            if len(seeds) != self.num_envs:
                raise ValueError(f"give one seed per env ({self.num_envs}), not {len(seeds)}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
            self._resets[:] = 0
        everyone = np.arange(self.num_envs)
        picked = (options or {}).get("lessons")
        lessons = [prepare(kind, int(s), self.size) for kind, s in picked] if picked else None
        self._begin(everyone, *self._draw(everyone, lessons))
        return self._observation(), self._info()

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, np.int64)
        placing = actions[:, 0] != self.size * self.size
        envs = np.flatnonzero(placing)
        code = reasons(self.worlds, envs, actions[envs])
        legal, illegal = envs[code < 0], envs[code >= 0]
        place(self.worlds, legal, actions[legal])
        changed = self.worlds[legal]
        # the mimic scores the changed worlds in the background while this thread goes on
        pending = self._background.submit(sink_rates_batch, changed, self.threads)
        self.masks[legal] = action_masks(changed)
        self.reason_counts[illegal, code[code >= 0]] += 1
        self.invalid[illegal] += 1
        self.entities[legal] += 1
        self.steps += 1
        terminated = ~placing
        truncated = placing & (self.steps >= self.config.steps)
        ending = np.flatnonzero(terminated | truncated)
        if len(ending):  # what does not wait for the scores
            final_obs = np.full(self.num_envs, None, object)
            for i in ending:
                final_obs[i] = {"world": self.worlds[i].copy(), "action_mask": self.masks[i].copy()}
            on_path = on_path_fractions(self.worlds[ending])
            starts, start_rates = self._draw(ending)

        rates, counts = pending.result()
        if self.config.done_rule:
            self.done_masks[legal] = done_masks(changed, self.masks[legal], rates, counts)
        score = scores(rates, self.best[legal], self.n_sinks[legal])
        reward = np.zeros(self.num_envs)
        reward[legal] = score - self.score[legal] - self.config.entity_cost
        reward[illegal] = -self.config.invalid_penalty
        self.score[legal] = score
        info: dict[str, Any] = {}
        if len(ending):
            for i in ending:
                final_obs[i]["done_mask"] = self.done_masks[i].copy()
            info = self._final(ending, final_obs, on_path)
            self._begin(ending, starts, start_rates)
        info.update(self._info())
        return self._observation(), reward, terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """Everything later steps depend on: the state arrays, each env's lesson and random
        stream. `set_state` on an env built with the same options continues exactly."""
        state: dict[str, Any] = {key: getattr(self, key).copy() for key in _STATE_ARRAYS}
        state["resets"] = self._resets.copy()
        state["rngs"] = [rng.bit_generator.state for rng in self._rngs]
        state["prefill"] = self.config.prefill
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for key in _STATE_ARRAYS:
            if getattr(self, key).shape != state[key].shape:
                raise ValueError(f"env state {key} has shape {state[key].shape}, this env {getattr(self, key).shape}")
            getattr(self, key)[...] = state[key]
        self._resets[:] = state["resets"]
        self._rngs = []
        for saved in state["rngs"]:
            rng = np.random.Generator(getattr(np.random, saved["bit_generator"])())
            rng.bit_generator.state = saved
            self._rngs.append(rng)
        self.config.prefill = state["prefill"]
        # lessons are pure functions of (kind, seed, size), so they are rebuilt, not stored
        pairs = zip(self.kind, self.lesson_seed, strict=True)
        self.lessons = [prepare(k, int(s), self.size) if k else None for k, s in pairs]

    def close_extras(self, **kwargs: Any) -> None:
        self._background.shutdown()

    def _draw(self, envs: np.ndarray, lessons: list[Prepared] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """First worlds int16[len(envs), 6, H, W] of the next episodes of `envs` and their
        sink rates float64[len(envs), MAX_SINKS]; records their lessons."""
        starts = np.empty((len(envs), *self.worlds.shape[1:]), np.int16)
        rates = np.empty((len(envs), MAX_SINKS))
        prefilled = np.zeros(len(envs), bool)
        for j, i in enumerate(envs):
            rng = self._rngs[i]
            lesson = lessons[j] if lessons else self.supply.draw(rng, int(self._resets[i]))
            self._resets[i] += 1
            self.lessons[i] = lesson
            starts[j], prefilled[j] = start(lesson, rng, self.config.prefill)
            rates[j] = lesson.task_rates
        if prefilled.any():
            rates[prefilled] = sink_rates_batch(starts[prefilled])[0]
        return starts, rates

    def _begin(self, envs: np.ndarray, starts: np.ndarray, rates: np.ndarray) -> None:
        """Install the episodes `_draw` prepared."""
        self.worlds[envs] = starts
        self.masks[envs] = action_masks(starts)
        for i in envs:
            prepared = self.lessons[i]
            assert prepared is not None
            self.best[i] = prepared.best
            self.n_sinks[i] = prepared.n_sinks
            self.kind[i] = prepared.lesson.kind
            self.lesson_seed[i] = prepared.lesson.seed
        if self.config.done_rule:
            self.done_masks[envs] = done_masks(starts, self.masks[envs], rates, self.n_sinks[envs])
        self.score[envs] = scores(rates, self.best[envs], self.n_sinks[envs])
        self.steps[envs] = self.entities[envs] = self.invalid[envs] = 0
        self.reason_counts[envs] = 0

    def _final(self, ending: np.ndarray, final_obs: np.ndarray, on_path: np.ndarray) -> dict[str, Any]:
        """final_obs and final_info of the episodes that end now, before autoreset."""
        ended = np.zeros(self.num_envs, bool)
        ended[ending] = True
        final_info = self._info()
        final_info["on_path_fraction"] = np.full(self.num_envs, np.nan)
        final_info["on_path_fraction"][ending] = on_path
        final_info.update({f"_{key}": ended for key in list(final_info)})
        return {"final_obs": final_obs, "_final_obs": ended, "final_info": final_info, "_final_info": ended}

    def _observation(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {"world": self.worlds.copy(), "action_mask": self.masks.copy(), "done_mask": self.done_masks.copy()}
        return {"world": self.worlds, "action_mask": self.masks, "done_mask": self.done_masks}

    def _info(self) -> dict[str, Any]:
        """The info keys of `FactoryEnv`, one array entry per env."""
        return {
            "kind": self.kind.copy(),
            "lesson_seed": self.lesson_seed.copy(),
            "score": self.score.copy(),
            "entities": self.entities.copy(),
            "invalid": self.invalid.copy(),
            "invalid_rate": self.invalid / np.maximum(1, self.steps),
            "invalid_reasons": {r.name: self.reason_counts[:, j].copy() for j, r in enumerate(REASONS)},
        }


def random_legal_actions(
    masks: np.ndarray, rng: np.random.Generator, n_recipes: int, done_masks: np.ndarray | None = None
) -> np.ndarray:
    """int64[N, 5] actions drawn as a factored policy would, uniformly at each head:
    a tile among the legal ones and "done" (where `done_masks` int8[N] allows it; None:
    always), then a legal kind and facing there, a recipe (never 0) and an underground
    end. masks: int8[N, kinds, 4, H * W]."""
    n, kinds, facings, tiles = masks.shape
    flat = masks.reshape(n, kinds * facings, tiles)
    # uniform among the allowed: the largest random key, with keys of the rest pushed below 0
    keys = rng.random((n, tiles + 1))
    keys[:, :tiles] -= flat.max(1) == 0
    if done_masks is not None:
        keys[:, tiles] -= done_masks == 0
    tile = keys.argmax(1)
    keys = rng.random((n, kinds * facings)) - (flat[np.arange(n), :, np.minimum(tile, tiles - 1)] == 0)
    kind_facing = keys.argmax(1)
    recipe = rng.integers(1, n_recipes, n)
    end = rng.integers(0, 2, n)
    return np.stack([tile, kind_facing // facings, kind_facing % facings, recipe, end], 1)
