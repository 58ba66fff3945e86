"""`FactoryEnv`: one factory to build, one placement per step."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from shared_schema.directions import Direction
from shared_schema.grid import render_grid
from shared_schema.placement import apply, check, legal_anchors
from shared_schema.world import World
from training.env.config import EnvConfig
from training.env.core import FACINGS, PLACEABLE, REASONS, action_space, observation_space, scores, to_action
from training.env.masks import dead_placements, done_masks
from training.env.supply import Prepared, prepare, start
from training.sim.engine import sink_rates_batch
from training.sim.paths import on_path_fraction

Observation = dict[str, np.ndarray]


class FactoryEnv(gym.Env[dict[str, Any], np.ndarray]):
    """Build a factory that carries a lesson's sources to its sinks.

    ## Description
    Each episode is one lesson (`training.lessons`): a `size` x `size` world with sources,
    sinks, blocked tiles and protected entities. The agent places one entity per step
    and says "done" when finished; the mimic scores the world after every step.

    ## Observation space
    Dict: "world" int16[6, size, size], the world tensor (`shared_schema.world`; its ITEM
    channel names what each source emits, each sink counts and each assembler makes, so
    the task needs nothing else); "action_mask" int8[len(PLACEABLE), 4, size * size], 1
    where PLACEABLE[kind] facing that way may be anchored on that tile (y * size + x);
    "done_mask" int8, 1 where "done" is legal: always, unless `done_rule` (an experiment,
    `training.env.masks.done_masks`) masks it while a sink is left short and some
    placement is still legal. A tile is worth choosing when any of its kinds and facings
    is. Like the dead placements the action mask leaves out, a masked "done" taken anyway
    still ends the episode: the masks are what a policy may choose.

    ## Action space
    MultiDiscrete([size * size + 1, len(PLACEABLE), 4, n_recipes, 2]): anchor tile (the
    last value is "done"), kind, facing, recipe (assemblers only), underground end
    (undergrounds only: 0 entrance, 1 exit). See `training.env.core`.

    ## Rewards
    The change of the score (`power_mean_score` of the sink rates over the lesson's best,
    in [0, 1]) minus `entity_cost` per entity placed: MECHANICS.md leaves the entity cost
    to training, and 0.01 makes a one-entity detour worth it only for 1% more score. An
    illegal action changes nothing and costs `invalid_penalty` (0 by default). Solving a
    lesson from scratch returns 1 - (initial score) - entity_cost * entities.

    ## Starting state
    A lesson drawn by `LessonSupply` (kinds by `weights`; training seeds outside
    `HELD_OUT_SEEDS`, or from `seeds`), with a random `prefill` fraction of its
    reference solution already built. `reset(options={"kind": k, "seed": s})` picks
    the lesson.

    ## Episode end
    Terminated on "done"; truncated after `max_steps` steps (default size * size // 2).

    ## Info
    kind, lesson_seed, score, entities (placed by the agent), invalid (illegal actions
    this episode), invalid_rate (per step), invalid_reasons ({Illegal name: count}); at
    the episode's end also on_path_fraction (`training.sim.paths`).

    ## Arguments
    The fields of `EnvConfig` (size, kinds, weights, prefill, max_steps, entity_cost,
    invalid_penalty, seeds, pool_size, pool_resets), and render_mode (None or "ansi").

    ## Version history
    v0: first version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self.config = EnvConfig(**options)
        self.size = self.config.size
        self.supply = self.config.supply()
        self.render_mode = render_mode
        self.observation_space = observation_space(self.size)
        self.action_space = action_space(self.size)
        self._resets = 0
        self._world = World.empty(self.size, self.size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._resets = 0  # seeding restarts the lesson stream
        if options and "kind" in options:
            self._lesson: Prepared = prepare(options["kind"], int(options["seed"]), self.size)
        else:
            self._lesson = self.supply.draw(self.np_random, self._resets)
        self._resets += 1
        data, prefilled = start(self._lesson, self.np_random, self.config.prefill)
        self._world = World(data)
        self._steps = self._entities = self._invalid = 0
        self._reasons = dict.fromkeys((r.name for r in REASONS), 0)
        self._score = self._evaluate(None if prefilled else self._lesson.task_rates)
        self._mask = self._masks()
        return self._observation(), self._info(ended=False)

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict]:
        placing = to_action(np.asarray(action), self.size)
        reward = 0.0
        if placing is not None:
            reason = check(self._world, placing)
            if reason is None:
                apply(self._world, placing)
                self._entities += 1
                score = self._evaluate()
                reward = score - self._score - self.config.entity_cost
                self._score = score
                self._mask = self._masks()
            else:
                self._invalid += 1
                self._reasons[reason.name] += 1
                reward = -self.config.invalid_penalty
        self._steps += 1
        terminated = placing is None
        truncated = not terminated and self._steps >= self.config.steps
        return self._observation(), reward, terminated, truncated, self._info(terminated or truncated)

    def render(self) -> str | None:
        return render_grid(self._world) if self.render_mode == "ansi" else None

    @property
    def lesson(self) -> Prepared:
        """The current episode's lesson."""
        return self._lesson

    def _evaluate(self, rates: np.ndarray | None = None) -> float:
        """The score of the world (or of these sink rates, float64[MAX_SINKS]); keeps the
        rates for the "done" mask."""
        if rates is None:
            rates = sink_rates_batch(self._world.data[None])[0][0]
        self._rates = rates
        return float(scores(rates[None], self._lesson.best[None], np.array([self._lesson.n_sinks]))[0])

    def _masks(self) -> np.ndarray:
        mask = np.empty((len(PLACEABLE), FACINGS, self.size * self.size), np.int8)
        for i, kind in enumerate(PLACEABLE):
            for facing in Direction:
                mask[i, facing] = legal_anchors(self._world, kind, facing).ravel()
        mask[dead_placements(self._world.data[None])[0]] = 0
        self._done = np.int8(1)
        if self.config.done_rule:
            counts = np.array([self._lesson.n_sinks])
            self._done = done_masks(self._world.data[None], mask[None], self._rates[None], counts)[0]
        return mask

    def _observation(self) -> Observation:
        return {
            "world": self._world.data.copy(),
            "action_mask": self._mask.copy(),
            "done_mask": np.array(self._done, np.int8),
        }

    def _info(self, ended: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "kind": self._lesson.lesson.kind,
            "lesson_seed": self._lesson.lesson.seed,
            "score": self._score,
            "entities": self._entities,
            "invalid": self._invalid,
            "invalid_rate": self._invalid / max(1, self._steps),
            "invalid_reasons": dict(self._reasons),
        }
        if ended:
            info["on_path_fraction"] = on_path_fraction(self._world)
        return info
