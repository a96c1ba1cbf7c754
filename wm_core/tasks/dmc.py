"""DeepMind Control Suite tasks, rendered from MuJoCo physics.

``DeepMindControl("cartpole", "swingup")`` is the task ``dmc:cartpole-swingup``.
Its environment drives ``dm_control.suite`` directly (no dm_env wrapper):
each simulator step is one control step of the suite (``before_step``, the
physics sub-steps, ``after_step``, ``get_reward``, ``get_termination``), so
an episode ends, truncated, at the suite's time limit (1000 control steps
for most tasks).  Observations: ``image`` rendered by ``physics.render``
from ``camera_id``, and ``state``, the suite's observation dict flattened in
its key order to ``float32 [S]``.
"""

from __future__ import annotations

import math
from typing import Any

import gin
import gymnasium
import numpy as np

from wm_core.tasks import rendering
from wm_core.tasks.base import SimState, Task, TaskEnv, image_space
from wm_core.tasks.process import ProcessEnv

__all__ = ["DeepMindControl", "DeepMindControlEnv"]


def _load_suite_environment(domain_name: str, task_name: str, time_limit: float | None):
    rendering.configure_mujoco_gl()
    try:
        import dm_control  # noqa: F401  (the package alone renders nothing)
        import mujoco  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"DeepMind Control tasks need dm-control and mujoco ({error}): "
            "pip install 'wm-core[dmc]'"
        ) from error
    try:
        import dm_control._render  # noqa: F401  (picks the MUJOCO_GL backend on import)
    except (ImportError, RuntimeError) as error:
        raise rendering.NoGLBackendError(rendering.no_backend_message(error)) from error
    from dm_control import suite

    if (domain_name, task_name) not in suite.ALL_TASKS:
        known = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
        raise ValueError(
            f"no DeepMind Control task {domain_name!r}-{task_name!r}; known: {known}"
        )
    task_kwargs = {} if time_limit is None else {"time_limit": time_limit}
    return suite.load(domain_name, task_name, task_kwargs=task_kwargs)


class DeepMindControlEnv(TaskEnv):
    """The environment of a :class:`DeepMindControl` task (see module docs).

    :param time_limit: seconds of simulated time per episode; ``None`` keeps
        the suite's default.
    """

    def __init__(
        self,
        domain_name: str,
        task_name: str,
        action_repeat: int = 1,
        camera_id: int = 0,
        size: tuple[int, int] = (64, 64),
        time_limit: float | None = None,
        render_mode: str | None = None,
    ):
        environment = _load_suite_environment(domain_name, task_name, time_limit)
        import mujoco  # after MUJOCO_GL is set

        self._physics = environment.physics
        self._suite_task = environment.task
        self._environment = environment
        self._sub_steps = int(round(environment.control_timestep() / self._physics.timestep()))
        # dm_control keeps its step limit private; it is time_limit / control_timestep.
        step_limit = environment._step_limit  # pylint: disable=protected-access
        super().__init__(
            action_repeat,
            None if math.isinf(step_limit) else int(round(step_limit)),
            render_mode,
        )
        self._camera_id = camera_id
        self._size = tuple(size)
        spec = environment.action_spec()
        self.action_space = gymnasium.spaces.Box(
            spec.minimum.astype(np.float32), spec.maximum.astype(np.float32), spec.shape, np.float32
        )
        state_size = sum(
            int(np.prod(item.shape)) for item in environment.observation_spec().values()
        )
        self.observation_space = gymnasium.spaces.Dict(
            {
                "image": image_space(self._size),
                "state": gymnasium.spaces.Box(-np.inf, np.inf, (state_size,), np.float32),
            }
        )
        self._state_signature = int(mujoco.mjtState.mjSTATE_INTEGRATION)

    def _reset_simulator(self, seed: int | None) -> None:
        if seed is not None:
            self._suite_task.random.seed(seed)
        self._environment.reset()

    def _simulate(self, action: Any) -> tuple[float, bool]:
        physics, suite_task = self._physics, self._suite_task
        suite_task.before_step(action, physics)
        physics.step(self._sub_steps)
        suite_task.after_step(physics)
        reward = suite_task.get_reward(physics)
        return float(reward), suite_task.get_termination(physics) is not None

    def _render(self) -> np.ndarray:
        height, width = self._size
        try:
            return self._physics.render(height, width, camera_id=self._camera_id)
        except (ImportError, RuntimeError) as error:  # no usable GL context
            raise rendering.NoGLBackendError(rendering.no_backend_message(error)) from error

    def _state_vector(self) -> np.ndarray:
        observation = self._suite_task.get_observation(self._physics)
        return np.concatenate(
            [np.asarray(value, np.float32).reshape(-1) for value in observation.values()]
        )

    def _get_simulator_state(self) -> SimState:
        """``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm start, controls, mocap..."""
        return {"physics": self._physics.get_state(self._state_signature)}

    def _set_simulator_state(self, sim_state: SimState) -> None:
        import mujoco

        physics = self._physics
        mujoco.mj_setState(
            physics.model.ptr, physics.data.ptr, np.asarray(sim_state["physics"], np.float64),
            self._state_signature,
        )
        # dm_control steps as mj_step2 then mj_step1, expecting mj_step1 done.
        mujoco.mj_step1(physics.model.ptr, physics.data.ptr)

    def close(self) -> None:
        self._physics.free()


@gin.configurable(module="wm")
class DeepMindControl(Task):
    """A DeepMind Control Suite task, e.g. ``DeepMindControl("cheetah", "run", 4)``.

    :param action_repeat: simulator (control) steps per agent step.
    :param camera_id: camera rendered into ``image``.
    :param size: ``(height, width)`` of ``image``.
    :param time_limit: seconds per episode, ``None`` for the suite's default.
    :param in_worker: build environments in a worker process
        (:class:`~wm_core.tasks.process.ProcessEnv`), so that MuJoCo's OpenGL
        never shares a process with TensorFlow (they crash together).  Turn
        off only in processes that will never import TensorFlow.
    """

    prefix = "dmc"

    def __init__(
        self,
        domain_name: str,
        task_name: str,
        action_repeat: int = 1,
        camera_id: int = 0,
        size: tuple[int, int] = (64, 64),
        time_limit: float | None = None,
        in_worker: bool = True,
    ):
        super().__init__(f"{domain_name}-{task_name}")
        self.in_worker = in_worker
        self.domain_name = domain_name
        self.task_name = task_name
        self.action_repeat = action_repeat
        self.camera_id = camera_id
        self.size = tuple(size)
        self.time_limit = time_limit

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> DeepMindControl:
        """``"cartpole-swingup"`` → ``DeepMindControl("cartpole", "swingup", **kwargs)``."""
        domain_name, separator, task_name = name.partition("-")
        if not separator or not domain_name or not task_name:
            raise ValueError(
                f"DeepMind Control task name {name!r} is not '<domain>-<task>', "
                "e.g. 'cartpole-swingup'"
            )
        return cls(domain_name, task_name, **kwargs)

    def create_env(self) -> DeepMindControlEnv | ProcessEnv:
        if self.in_worker:
            return ProcessEnv(self._create_local_env)
        return self._create_local_env()

    def _create_local_env(self) -> DeepMindControlEnv:
        return DeepMindControlEnv(
            self.domain_name,
            self.task_name,
            action_repeat=self.action_repeat,
            camera_id=self.camera_id,
            size=self.size,
            time_limit=self.time_limit,
        )
