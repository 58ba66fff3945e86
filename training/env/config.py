"""`EnvConfig`: the arguments the single and the vector environment share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from training.env.supply import LessonSupply


@dataclass
class EnvConfig:
    """Keyword arguments of `FactoryEnv` and `FactoryVectorEnv` (and of `gymnasium.make`)."""

    size: int = 11
    """Grid side of the lessons (8 to 32)."""
    kinds: Sequence[str] | None = None
    """Lesson kinds to draw; None: every registered kind, trials included."""
    weights: Mapping[str, float] | Sequence[float] | None = None
    """Relative weight of each kind (a mapping by name, or one per kind); None: equal."""
    prefill: float = 0.0
    """Curriculum knob: the share of the reference solution's entities (chosen at random)
    already built at reset; trials have none. May be changed between episodes."""
    max_steps: int | None = None
    """Steps before the episode is truncated; None: size * size // 2."""
    entity_cost: float = 0.01
    """Reward cost of each entity placed: MECHANICS.md leaves the entity cost to training;
    0.01 makes an extra entity worth it only for at least 1% more score."""
    invalid_penalty: float = 0.0
    """Reward cost of an illegal action (it changes nothing either way)."""
    done_rule: bool = False
    """Mask "done" while a sink is left short (`training.env.masks.done_masks`), an
    experiment; False: "done" is always legal."""
    seeds: Sequence[int] | None = None
    """Evaluation: draw lesson seeds from this list; None: training seeds, never held out."""
    pool_size: int = 32
    """Lessons per kind the envs share at a time (see `training.env.supply`)."""
    pool_resets: int = 64
    """Resets of each env for the shared pool to slide past `pool_size` seeds."""

    def __post_init__(self) -> None:
        if self.max_steps is None:
            self.max_steps = self.size * self.size // 2
        if not 0.0 <= self.prefill <= 1.0:
            raise ValueError(f"prefill is a share in [0, 1], not {self.prefill}")

    @property
    def steps(self) -> int:
        """max_steps, resolved."""
        assert self.max_steps is not None
        return self.max_steps

    def supply(self) -> LessonSupply:
        return LessonSupply(self.size, self.kinds, self.weights, self.seeds, self.pool_size, self.pool_resets)
