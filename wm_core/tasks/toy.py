"""A tiny pixel task for fast tests and examples: a point on a line.

The point starts at a uniformly random position in ``[-1, 1]``; each step the
action moves it by ``speed * a`` (``Box`` task, ``a`` in ``[-1, 1]``) or by
``speed * (a - 1)`` (``Discrete(3)`` task: left, stay, right), clipped to
``[-1, 1]``.  The reward is
``1 - |position - goal|``.  The frame is black with a white vertical bar
``bar_width`` pixels wide centred on the point's column — or, with
``gauge``, every column up to the point's lit, so the lit area grows with
the position and a frame predicted at a wrong position overlaps the true one
in proportion to their distance (easier to learn from pixels) — so the state
is visible from pixels; the ``state``
observation is ``float32 [1]``, the position.  Episodes truncate after
``length`` steps.  No rendering library is involved, so it costs microseconds.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium as gym
import numpy as np

from wm_core.tasks.base import SimState, Task, TaskEnv, image_space

__all__ = ["PointEnv", "PointTask"]


class PointEnv(TaskEnv):
    """The environment of :class:`PointTask` (see module docs)."""

    def __init__(
        self,
        discrete: bool = False,
        length: int = 20,
        size: int = 64,
        goal: float = 0.5,
        bar_width: int = 1,
        speed: float = 0.1,
        gauge: bool = False,
    ):
        super().__init__(action_repeat=1, time_limit=length)
        if not 1 <= bar_width <= size:
            raise ValueError(f"bar_width must be in [1, {size}], got {bar_width}")
        self.discrete, self.size, self.goal, self.bar_width = discrete, size, goal, bar_width
        self.speed, self.gauge = speed, gauge
        self.action_space = (
            gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self.observation_space = gym.spaces.Dict(
            {
                "image": image_space((size, size)),
                "state": gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
            }
        )
        self.position = 0.0

    def _reset_simulator(self, seed: int | None) -> None:
        self.position = float(self.np_random.uniform(-1.0, 1.0))

    def _simulate(self, action: Any) -> tuple[float, bool]:
        move = float(action) - 1.0 if self.discrete else float(np.asarray(action).item())
        self.position = float(self._moved(self.position, move))
        return float(self._reward(self.position)), False

    def _moved(self, position: Any, move: Any) -> Any:
        """The position after a move: a float, or float64 arrays element-wise (the same bits)."""
        return np.clip(position + self.speed * move, -1.0, 1.0)

    def _reward(self, position: Any) -> Any:
        return 1.0 - abs(position - self.goal)

    def _render(self) -> np.ndarray:
        image = np.zeros((self.size, self.size, 3), np.uint8)
        centre = int(round((self.position + 1.0) / 2.0 * (self.size - 1)))
        if self.gauge:
            image[:, : centre + 1] = 255
        else:
            left = max(centre - self.bar_width // 2, 0)
            image[:, left : left + self.bar_width] = 255
        return image

    def _state_vector(self) -> np.ndarray:
        return np.array([self.position], np.float32)

    def rollout(
        self, sim_state: SimState, actions: np.ndarray, render: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`TaskEnv.rollout`, all proposals at once in NumPy (no rendering).

        The same float64 operations as :meth:`_simulate` (``_moved``,
        ``_reward``), element-wise, so the rewards are bitwise those of the
        step-by-step rollout; an oracle planning on this task spent most of
        its time in that Python loop.
        """
        actions = np.asarray(actions)
        proposals, horizon = actions.shape[:2]
        if render or actions.size != proposals * horizon:
            return super().rollout(sim_state, actions, render)
        self.set_sim_state(sim_state)
        moves = actions.reshape(proposals, horizon).astype(np.float64)
        if self.discrete:
            moves = moves - 1.0
        position = np.full(proposals, self.position, np.float64)
        rewards = np.zeros((proposals, horizon), np.float32)
        for step in range(horizon):  # no termination; every proposal ends at the time limit
            position = self._moved(position, moves[:, step])
            rewards[:, step] = self._reward(position)
            self._steps += 1
            if self.time_is_up():
                break
        self.position = float(position[-1]) if proposals else self.position
        return rewards, None

    def _get_simulator_state(self) -> SimState:
        return {"position": np.asarray(self.position, np.float64)}

    def _set_simulator_state(self, sim_state: SimState) -> None:
        self.position = float(sim_state["position"])


@gin.configurable(module="wm")
class PointTask(Task):
    """Task of :class:`PointEnv`: ``toy:point`` or ``toy:point-discrete``."""

    prefix = "toy"

    def __init__(
        self,
        discrete: bool = False,
        length: int = 20,
        size: int = 64,
        bar_width: int = 1,
        speed: float = 0.1,
        gauge: bool = False,
    ):
        super().__init__("point-discrete" if discrete else "point")
        self.kwargs = dict(
            discrete=discrete, length=length, size=size, bar_width=bar_width, speed=speed,
            gauge=gauge,
        )

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> PointTask:
        """``"point"`` or ``"point-discrete"``."""
        if name not in ("point", "point-discrete"):
            raise ValueError(f"toy task {name!r} unknown; known: point, point-discrete")
        return cls(discrete=name == "point-discrete", **kwargs)

    def create_env(self) -> PointEnv:
        return PointEnv(**self.kwargs)
