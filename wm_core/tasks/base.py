"""The task contract: a named factory of pixel environments with snapshots.

A :class:`Task` names an environment (``"dmc:cartpole-swingup"``) and builds
fresh copies of it with :meth:`Task.create_env`.  Every environment it builds
is a :class:`TaskEnv`:

* observations are dicts: ``image`` ``uint8 [H, W, 3]`` (64×64 by default)
  and, where the simulator has one, ``state`` ``float32 [S]`` (the
  low-dimensional observation the underlying environment would give);
* ``info["discount"]`` is ``0.0`` on the step that terminates the episode and
  ``1.0`` otherwise (truncation by the time limit keeps ``1.0``);
* one ``step`` repeats the action ``action_repeat`` times and sums the
  rewards, stopping early at termination or at the time limit;
* ``reset(seed=s)`` is deterministic: the same seed and actions give the same
  episode;
* :meth:`TaskEnv.get_sim_state` / :meth:`TaskEnv.set_sim_state` snapshot and
  restore the simulator as a dict of NumPy arrays, and :meth:`TaskEnv.advance`
  steps it without rendering — what :class:`wm_core.models.oracle.OracleWorldModel`
  plans with.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import gymnasium
import numpy as np

from wm_core.api.checks import check_int_at_least

__all__ = ["SimState", "Task", "TaskEnv", "image_space"]

SimState = dict[str, np.ndarray]


def image_space(size: tuple[int, int]) -> gymnasium.spaces.Box:
    """The ``uint8 [h, w, 3]`` observation space of frames of ``size = (h, w)``."""
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {size!r}")
    return gymnasium.spaces.Box(0, 255, (height, width, 3), np.uint8)


class TaskEnv(gymnasium.Env):
    """A task's environment (see module docs); subclasses wrap one simulator.

    Subclasses set ``action_space`` and ``observation_space`` and implement
    :meth:`_reset_simulator`, :meth:`_simulate`, :meth:`_render`,
    :meth:`_state_vector`, :meth:`_get_simulator_state` and
    :meth:`_set_simulator_state`.  ``time_limit`` counts simulator steps (each
    agent step is ``action_repeat`` of them); ``None`` means no limit.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self, action_repeat: int, time_limit: int | None, render_mode: str | None = None
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if time_limit is not None and time_limit < 1:
            raise ValueError(f"time_limit must be a positive step count or None, got {time_limit!r}")
        self.render_mode = render_mode
        self.action_repeat = check_int_at_least("action_repeat", action_repeat)
        self.time_limit = time_limit
        self._steps = 0
        self._image: np.ndarray | None = None

    # -- what subclasses provide -------------------------------------------
    def _reset_simulator(self, seed: int | None) -> None:
        """Start a new episode; reseed the simulator's randomness if ``seed`` is given."""
        raise NotImplementedError

    def _simulate(self, action: Any) -> tuple[float, bool]:
        """One simulator step with an environment action: ``(reward, terminated)``."""
        raise NotImplementedError

    def _render(self) -> np.ndarray:
        """The current frame, ``uint8 [H, W, 3]``."""
        raise NotImplementedError

    def _state_vector(self) -> np.ndarray | None:
        """The ``float32 [S]`` ``state`` observation, or ``None`` if there is none."""
        return None

    def _get_simulator_state(self) -> SimState:
        raise NotImplementedError

    def _set_simulator_state(self, sim_state: SimState) -> None:
        raise NotImplementedError

    # -- gymnasium API -----------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._reset_simulator(seed)
        self._steps = 0
        return self._observation(), {"discount": 1.0}

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        reward, terminated, truncated = self.advance(self._checked_action(action))
        info = {"discount": 0.0 if terminated else 1.0}
        return self._observation(), reward, terminated, truncated, info

    def _checked_action(self, action: Any) -> Any:
        """``action`` as the action space's dtype (``Box``: clipped to its bounds)."""
        space = self.action_space
        if isinstance(space, gymnasium.spaces.Box):
            array = np.asarray(action, space.dtype)
            if array.shape != space.shape:
                raise ValueError(
                    f"action {action!r} has shape {array.shape}, expected {space.shape}"
                )
            return np.clip(array, space.low, space.high)
        if not space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space {space}")
        return action

    def render(self) -> np.ndarray | None:
        """The last observed frame when ``render_mode == "rgb_array"``."""
        if self.render_mode is None:
            return None
        return None if self._image is None else self._image.copy()

    # -- simulator access for planning -------------------------------------
    def advance(self, action: Any) -> tuple[float, bool, bool]:
        """One agent step without rendering: ``(reward, terminated, truncated)``.

        Repeats ``action`` ``action_repeat`` times summing the rewards, and
        stops early at termination or when the time limit is reached.
        """
        total = 0.0
        terminated = False
        for _ in range(self.action_repeat):
            reward, terminated = self._simulate(action)
            total += reward
            self._steps += 1
            if terminated or self.time_is_up():
                break
        return total, terminated, not terminated and self.time_is_up()

    def time_is_up(self) -> bool:
        """Whether the episode has used up its time limit."""
        return self.time_limit is not None and self._steps >= self.time_limit

    def render_image(self) -> np.ndarray:
        """The current frame, ``uint8 [H, W, 3]`` (renders; does not observe)."""
        return self._render()

    def get_sim_state(self) -> SimState:
        """A snapshot of the simulator: a fresh dict of NumPy arrays, no live objects."""
        return {**self._get_simulator_state(), "steps": np.asarray(self._steps, np.int64)}

    def set_sim_state(self, sim_state: SimState) -> None:
        """Restore a snapshot from :meth:`get_sim_state`; ``sim_state`` is only read."""
        if "steps" not in sim_state:
            raise KeyError(f"not a simulator snapshot (no 'steps'): keys {sorted(sim_state)}")
        self._steps = int(sim_state["steps"])
        self._set_simulator_state({k: v for k, v in sim_state.items() if k != "steps"})

    def replay(self, sim_state: SimState, actions: np.ndarray) -> tuple[np.ndarray, SimState]:
        """Restore ``sim_state``, apply environment ``actions`` ``[T, ...]`` in order.

        Returns the ``float32 [T]`` rewards and the snapshot after the last one.
        """
        self.set_sim_state(sim_state)
        rewards = np.array([self.advance(action)[0] for action in actions], np.float32)
        return rewards, self.get_sim_state()

    def rollout(
        self, sim_state: SimState, actions: np.ndarray, render: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Roll each proposal of environment ``actions`` ``[P, H, ...]`` out from ``sim_state``.

        Returns ``rewards`` ``float32 [P, H]`` and, with ``render``, ``images``
        ``uint8 [P, H, h, w, 3]``.  Once a proposal's episode is over
        (terminated, or out of time) its rewards are 0 and its frames repeat
        the last one.  Leaves the simulator in an unspecified state.
        """
        proposals, horizon = actions.shape[:2]
        rewards = np.zeros((proposals, horizon), np.float32)
        images = None
        if render:
            images = np.zeros((proposals, horizon, *self.observation_space["image"].shape), np.uint8)
        for proposal in range(proposals):
            self.set_sim_state(sim_state)
            for step in range(horizon):
                reward, terminated, truncated = self.advance(actions[proposal, step])
                rewards[proposal, step] = reward
                if images is not None:
                    images[proposal, step] = self.render_image()
                if terminated or truncated:
                    if images is not None:
                        images[proposal, step + 1 :] = images[proposal, step]
                    break
        return rewards, images

    def _observation(self) -> dict[str, np.ndarray]:
        self._image = self._render()
        observation = {"image": self._image}
        state = self._state_vector()
        if state is not None:
            observation["state"] = state
        return observation


class Task:
    """A named environment factory (see module docs).

    Subclasses set :attr:`prefix` (the ``wm.tasks`` entry-point name), pass
    the name after the prefix to ``__init__`` and implement
    :meth:`create_env`.  :attr:`action_space` and :attr:`observation_space`
    are read from one environment built on first use, then cached.
    """

    prefix: ClassVar[str]

    def __init__(self, name: str):
        self.name = f"{self.prefix}:{name}"

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> Task:
        """Build the task that ``make(f"{prefix}:{name}", **kwargs)`` asks for."""
        return cls(name, **kwargs)

    def create_env(self) -> TaskEnv:
        """A fresh, independent environment; the caller owns (and closes) it."""
        raise NotImplementedError

    @functools.cached_property
    def _spaces(self) -> tuple[gymnasium.Space, gymnasium.Space]:
        env = self.create_env()
        try:
            return env.action_space, env.observation_space
        finally:
            env.close()

    @property
    def action_space(self) -> gymnasium.Space:
        return self._spaces[0]

    @property
    def observation_space(self) -> gymnasium.spaces.Dict:
        return self._spaces[1]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
