"""A tiny pixel task for fast tests and examples: a point on a line.

The point starts at a uniformly random position in ``[-1, 1]``; each step the
action moves it by ``0.1 * a`` (``Box`` task, ``a`` in ``[-1, 1]``) or by
``0.1 * (a - 1)`` (``Discrete(3)`` task: left, stay, right).  The reward is
``1 - |position - goal|``.  The frame is black with a white vertical bar at
the point's column, so the state is fully visible from pixels.  Episodes
truncate after ``length`` steps.  No rendering library is involved.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np

__all__ = ["PointEnv", "PointTask"]


class PointEnv(gym.Env):
    """See module docs. Observations: ``image`` uint8 [size, size, 3] and
    ``position`` float32 [1]."""

    metadata = {"render_modes": []}

    def __init__(self, discrete: bool = False, length: int = 20, size: int = 64, goal: float = 0.5):
        self.discrete, self.length, self.size, self.goal = discrete, length, size, goal
        self.action_space = (
            gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                "position": gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
            }
        )
        self.position, self.steps = 0.0, 0

    def _observation(self) -> dict[str, np.ndarray]:
        image = np.zeros((self.size, self.size, 3), np.uint8)
        column = int(round((self.position + 1.0) / 2.0 * (self.size - 1)))
        image[:, column] = 255
        return {"image": image, "position": np.array([self.position], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = float(self.np_random.uniform(-1.0, 1.0))
        self.steps = 0
        return self._observation(), {}

    def step(self, action: Any):
        move = float(action) - 1.0 if self.discrete else float(np.clip(np.asarray(action).item(), -1, 1))
        self.position = float(np.clip(self.position + 0.1 * move, -1.0, 1.0))
        self.steps += 1
        reward = 1.0 - abs(self.position - self.goal)
        return self._observation(), reward, False, self.steps >= self.length, {}


@gin.configurable(module="wm")
class PointTask:
    """Task wrapper of :class:`PointEnv` (name ``toy:point`` or ``toy:point-discrete``)."""

    def __init__(self, discrete: bool = False, length: int = 20, size: int = 64):
        self.kwargs = dict(discrete=discrete, length=length, size=size)
        self.name = "toy:point-discrete" if discrete else "toy:point"
        spec_env = PointEnv(**self.kwargs)
        self.action_space = spec_env.action_space
        self.observation_space = spec_env.observation_space

    def create_env(self) -> PointEnv:
        return PointEnv(**self.kwargs)
