"""The gymnasium environment: build a lesson's factory one placement at a time.

Importing this package registers `factorion/Factory-v0`:

    import gymnasium as gym
    import training.env  # noqa: F401
    env = gym.make("factorion/Factory-v0", size=11)
    envs = gym.make_vec("factorion/Factory-v0", num_envs=256, vectorization_mode="vector_entry_point")

`FactoryEnv` (`factory.py`) is the single env, built on the shared placement
validator; `FactoryVectorEnv` (`vector.py`) steps many as arrays. Spaces, the
factored action and the score: `core.py`; the action mask (legal placements that can
connect): `masks.py`; lesson supply: `supply.py`.
"""

from __future__ import annotations

import gymnasium

from training.env.core import ENDS, PLACEABLE, REASONS
from training.env.factory import FactoryEnv
from training.env.vector import FactoryVectorEnv

ENV_ID = "factorion/Factory-v0"

gymnasium.register(
    id=ENV_ID,
    entry_point="training.env.factory:FactoryEnv",
    vector_entry_point="training.env.vector:FactoryVectorEnv",
)

__all__ = ["ENDS", "ENV_ID", "PLACEABLE", "REASONS", "FactoryEnv", "FactoryVectorEnv"]
