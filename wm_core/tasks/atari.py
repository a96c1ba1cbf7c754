"""Atari 2600 games through the Arcade Learning Environment, e.g. ``atari:Pong``.

Uses ``ale_py`` (imported on first use; ROMs ship with ale-py >= 0.9) with
``frameskip=1``: the task's ``action_repeat`` (default 4) repeats the action
and sums the rewards, and ``image`` is the last frame, area-resized from
210×160 to ``size``.  Sticky actions follow ``sticky_action_probability``;
their random state is part of the simulator snapshot (``ale``: the
serialised ``ALEState`` as ``uint8`` bytes), so replays are exact.  No
``state`` observation.
"""

from __future__ import annotations

from typing import Any

import gin
import gymnasium
import numpy as np

from wm_core.tasks import rendering
from wm_core.tasks.base import SimState, Task, TaskEnv, image_space

__all__ = ["Atari", "AtariEnv"]


def _make_ale_env(game: str, sticky_action_probability: float):
    try:
        import ale_py
    except ImportError as error:
        raise ImportError(
            "Atari tasks need ale-py: pip install 'wm-core[atari]'"
        ) from error
    gymnasium.register_envs(ale_py)
    try:
        return gymnasium.make(
            f"ALE/{game}-v5",
            frameskip=1,
            repeat_action_probability=sticky_action_probability,
            obs_type="rgb",
        ).unwrapped
    except gymnasium.error.Error as error:
        raise ValueError(f"no Atari game {game!r} in ale-py: {error}") from error


class AtariEnv(TaskEnv):
    """The environment of an :class:`Atari` task (see module docs)."""

    def __init__(
        self,
        game: str,
        action_repeat: int = 4,
        size: tuple[int, int] = (64, 64),
        sticky_action_probability: float = 0.25,
        time_limit: int | None = 108_000,
        render_mode: str | None = None,
    ):
        super().__init__(action_repeat, time_limit, render_mode)
        self._env = _make_ale_env(game, sticky_action_probability)
        self._size = tuple(size)
        self.action_space = self._env.action_space
        self.observation_space = gymnasium.spaces.Dict({"image": image_space(self._size)})

    def _reset_simulator(self, seed: int | None) -> None:
        self._env.reset(seed=seed)

    def _simulate(self, action: Any) -> tuple[float, bool]:
        _, reward, terminated, truncated, _ = self._env.step(action)
        return float(reward), bool(terminated) or bool(truncated)

    def _render(self) -> np.ndarray:
        return rendering.resize_image(self._env.ale.getScreenRGB(), self._size)

    def _get_simulator_state(self) -> SimState:
        ale_state = self._env.ale.cloneState(include_rng=True)
        return {"ale": np.frombuffer(ale_state.__getstate__(), np.uint8).copy()}

    def _set_simulator_state(self, sim_state: SimState) -> None:
        import ale_py

        ale_state = ale_py.ALEState.__new__(ale_py.ALEState)
        ale_state.__setstate__(np.asarray(sim_state["ale"], np.uint8).tobytes())
        self._env.ale.restoreState(ale_state)

    def close(self) -> None:
        self._env.close()


@gin.configurable(module="wm")
class Atari(Task):
    """An Atari game by ALE name, e.g. ``Atari("Pong")``.

    :param action_repeat: emulator frames per agent step (summed rewards).
    :param size: ``(height, width)`` of ``image``.
    :param sticky_action_probability: ALE's ``repeat_action_probability``.
    :param time_limit: emulator frames per episode (108,000 = 30 minutes).
    """

    prefix = "atari"

    def __init__(
        self,
        game: str,
        action_repeat: int = 4,
        size: tuple[int, int] = (64, 64),
        sticky_action_probability: float = 0.25,
        time_limit: int | None = 108_000,
    ):
        super().__init__(game)
        self.game = game
        self.action_repeat = action_repeat
        self.size = tuple(size)
        self.sticky_action_probability = sticky_action_probability
        self.time_limit = time_limit

    def create_env(self) -> AtariEnv:
        return AtariEnv(
            self.game,
            action_repeat=self.action_repeat,
            size=self.size,
            sticky_action_probability=self.sticky_action_probability,
            time_limit=self.time_limit,
        )
