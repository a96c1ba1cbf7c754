"""Your own environment in wm: the example of ``docs/custom_environments.md``.

One small simulator, a slider on a rail, offered both ways wm takes a new
environment:

* :class:`SliderEnv`, a plain Gymnasium environment, registered as
  ``Slider-v0`` when this module is imported.  wm's Gym task builds it by id
  (``wm.Gym.env_id = 'my_env:Slider-v0'``: Gymnasium imports ``my_env``
  first, in whichever process builds it) and takes pixels from its
  ``render()``.
* :class:`SliderTask`, a :class:`wm_core.tasks.base.Task` whose environment,
  :class:`SliderTaskEnv`, is a :class:`wm_core.tasks.base.TaskEnv`: it also
  snapshots the simulator, so the ground-truth oracle world model can plan
  with it.  Configs name it ``@my_env.SliderTask``.

The dynamics, the reward and the drawing are plain functions both share: the
slider starts uniformly in ``[-1, 1]``, each step an action ``a`` in
``[-1, 1]`` moves it by ``SPEED * a`` (clipped to the rail), and the reward
is ``1 - |position - GOAL|``.  Episodes last ``length`` steps.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium
import numpy as np

from wm_core.tasks.base import SimState, Task, TaskEnv, image_space

__all__ = ["GOAL", "SPEED", "SliderEnv", "SliderTask", "SliderTaskEnv", "draw", "move", "reward"]

GOAL = 0.5
SPEED = 0.2


def move(position: float, action: float) -> float:
    """The position after one step with ``action``."""
    return float(np.clip(position + SPEED * action, -1.0, 1.0))


def reward(position: float) -> float:
    """The reward for arriving at ``position``."""
    return 1.0 - abs(position - GOAL)


def draw(position: float, size: int) -> np.ndarray:
    """A ``uint8 [size, size, 3]`` frame: black, with a white column at the slider."""
    frame = np.zeros((size, size, 3), np.uint8)
    frame[:, round((position + 1.0) / 2.0 * (size - 1))] = 255
    return frame


# -- (a) a Gymnasium environment, registered by id --------------------------------


class SliderEnv(gymnasium.Env):
    """The slider as a Gymnasium environment: observation ``float32 [1]``, the position.

    Its position lives in ``self.state``, the attribute wm's Gym task
    snapshots for the oracle (the classic-control convention).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, size: int = 64):
        self.render_mode = render_mode
        self.size = size
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.state = np.zeros(1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = np.array([self.np_random.uniform(-1.0, 1.0)])
        return self.state.astype(np.float32), {}

    def step(self, action: np.ndarray):
        self.state = np.array([move(float(self.state[0]), float(action[0]))])
        return self.state.astype(np.float32), reward(float(self.state[0])), False, False, {}

    def render(self) -> np.ndarray:
        return draw(float(self.state[0]), self.size)


gymnasium.register(id="Slider-v0", entry_point=SliderEnv, max_episode_steps=20)


# -- (b) a wm Task ------------------------------------------------------------------


class SliderTaskEnv(TaskEnv):
    """The slider as a :class:`TaskEnv`: observations ``image`` and ``state`` (``float32 [1]``)."""

    def __init__(self, length: int = 20, size: int = 64):
        super().__init__(action_repeat=1, time_limit=length)
        self.size = size
        self.position = 0.0
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gymnasium.spaces.Dict({
            "image": image_space((size, size)),
            "state": gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32),
        })

    def _reset_simulator(self, seed: int | None) -> None:
        self.position = float(self.np_random.uniform(-1.0, 1.0))  # seeded by reset(seed=...)

    def _simulate(self, action: Any) -> tuple[float, bool]:
        self.position = move(self.position, float(action[0]))
        return reward(self.position), False  # never terminates; the time limit truncates

    def _render(self) -> np.ndarray:
        return draw(self.position, self.size)

    def _state_vector(self) -> np.ndarray:
        return np.array([self.position], np.float32)

    def _get_simulator_state(self) -> SimState:
        return {"position": np.asarray(self.position)}

    def _set_simulator_state(self, sim_state: SimState) -> None:
        self.position = float(sim_state["position"])


@gin.configurable(module="my_env")
class SliderTask(Task):
    """Task of :class:`SliderTaskEnv`: ``slider:rail`` (through a ``wm.tasks`` entry point
    named ``slider``) or ``SliderTask()``."""

    prefix = "slider"

    def __init__(self, name: str = "rail", length: int = 20, size: int = 64):
        if name != "rail":
            raise ValueError(f"slider task {name!r} unknown; known: rail")
        super().__init__(name)
        self.length, self.size = length, size

    def create_env(self) -> SliderTaskEnv:
        return SliderTaskEnv(self.length, self.size)
