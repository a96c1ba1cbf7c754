"""Any Gymnasium environment as a pixel task, e.g. ``gym:Pendulum-v1``.

The environment is made with ``render_mode="rgb_array"`` and its frames are
area-resized to ``size``.  Its own wrappers (time limit, checkers) are
dropped: the task applies the registered ``max_episode_steps`` itself, so the
step count is part of the simulator snapshot.  Observations: ``image`` and,
when the environment's observation space is a ``Box``, ``state`` (its
observation as ``float32 [S]``).

Snapshots (for the oracle) cover classic-control environments: they store
the attributes ``state`` and, where present, ``last_u`` (Pendulum's last
torque, drawn in frames) and ``steps_beyond_terminated`` (CartPole's
post-termination counter, which decides the terminal reward).  ``None`` is
stored as an empty array.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium
import numpy as np

from wm_core.tasks import rendering
from wm_core.tasks.base import SimState, Task, TaskEnv, image_space

__all__ = ["Gym", "GymEnv"]

_SNAPSHOT_ATTRIBUTES = ("state", "last_u", "steps_beyond_terminated")


def _to_array(value: Any) -> np.ndarray:
    return np.zeros(0) if value is None else np.array(value)


def _from_array(array: np.ndarray) -> Any:
    array = np.asarray(array)
    if array.size == 0:
        return None
    return array.item() if array.ndim == 0 else array.copy()


class GymEnv(TaskEnv):
    """The environment of a :class:`Gym` task (see module docs).

    :param time_limit: simulator steps per episode; ``None`` uses the
        environment's registered ``max_episode_steps``.
    """

    def __init__(
        self,
        env_id: str,
        action_repeat: int = 1,
        size: tuple[int, int] = (64, 64),
        time_limit: int | None = None,
        make_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        try:
            wrapped = gymnasium.make(env_id, render_mode="rgb_array", **(make_kwargs or {}))
        except gymnasium.error.Error as error:
            raise ValueError(f"cannot make Gymnasium environment {env_id!r}: {error}") from error
        if time_limit is None and wrapped.spec is not None:
            time_limit = wrapped.spec.max_episode_steps
        super().__init__(action_repeat, time_limit, render_mode)
        self._env = wrapped.unwrapped
        self._env_id = env_id
        self._size = tuple(size)
        self._state: np.ndarray | None = None
        self.action_space = self._env.action_space
        spaces = {"image": image_space(self._size)}
        inner_space = self._env.observation_space
        self._has_state = isinstance(inner_space, gymnasium.spaces.Box)
        if self._has_state:
            spaces["state"] = gymnasium.spaces.Box(
                -np.inf, np.inf, (int(np.prod(inner_space.shape)),), np.float32
            )
        self.observation_space = gymnasium.spaces.Dict(spaces)

    def _reset_simulator(self, seed: int | None) -> None:
        observation, _ = self._env.reset(seed=seed)
        self._remember(observation)

    def _simulate(self, action: Any) -> tuple[float, bool]:
        observation, reward, terminated, truncated, _ = self._env.step(action)
        self._remember(observation)
        return float(reward), bool(terminated) or bool(truncated)

    def _remember(self, observation: Any) -> None:
        if self._has_state:
            self._state = np.asarray(observation, np.float32).reshape(-1)

    def _render(self) -> np.ndarray:
        return rendering.resize_image(self._env.render(), self._size)

    def _state_vector(self) -> np.ndarray | None:
        return None if self._state is None else self._state.copy()

    def _get_simulator_state(self) -> SimState:
        if not hasattr(self._env, "state"):
            raise NotImplementedError(
                f"gym:{self._env_id} has no 'state' attribute to snapshot; simulator "
                "snapshots support the classic-control environments"
            )
        return {
            name: _to_array(getattr(self._env, name))
            for name in _SNAPSHOT_ATTRIBUTES
            if hasattr(self._env, name)
        }

    def _set_simulator_state(self, sim_state: SimState) -> None:
        for name, array in sim_state.items():
            setattr(self._env, name, _from_array(array))

    def close(self) -> None:
        self._env.close()


@gin.configurable(module="wm")
class Gym(Task):
    """A Gymnasium environment by id, e.g. ``Gym("CartPole-v1")``.

    :param action_repeat: simulator steps per agent step.
    :param size: ``(height, width)`` of ``image``.
    :param time_limit: simulator steps per episode, ``None`` for the registered limit.
    :param make_kwargs: extra keyword arguments for ``gymnasium.make``.
    """

    prefix = "gym"

    def __init__(
        self,
        env_id: str,
        action_repeat: int = 1,
        size: tuple[int, int] = (64, 64),
        time_limit: int | None = None,
        make_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(env_id)
        self.env_id = env_id
        self.action_repeat = action_repeat
        self.size = tuple(size)
        self.time_limit = time_limit
        self.make_kwargs = dict(make_kwargs or {})

    def create_env(self) -> GymEnv:
        return GymEnv(
            self.env_id,
            action_repeat=self.action_repeat,
            size=self.size,
            time_limit=self.time_limit,
            make_kwargs=self.make_kwargs,
        )
