"""Tasks: named factories of pixel environments (see :mod:`wm_core.tasks.base`).

``tasks.DeepMindControl("cartpole", "swingup", action_repeat=8)``,
``tasks.Gym("Pendulum-v1")``, ``tasks.Atari("Pong")``, the toy
``tasks.PointTask()`` (a point on a line, for tests), or by name:
``tasks.make("dmc:cartpole-swingup", action_repeat=8)``.  Importing this
package imports neither TensorFlow, dm_control nor ale-py; each is loaded
when its first environment is built.
"""

from __future__ import annotations

from wm_core.tasks.atari import Atari, AtariEnv
from wm_core.tasks.base import SimState, Task, TaskEnv
from wm_core.tasks.dmc import DeepMindControl, DeepMindControlEnv
from wm_core.tasks.factory import make
from wm_core.tasks.gym import Gym, GymEnv
from wm_core.tasks.rendering import NoGLBackendError
from wm_core.tasks.toy import PointEnv, PointTask

__all__ = [
    "Atari",
    "AtariEnv",
    "DeepMindControl",
    "DeepMindControlEnv",
    "Gym",
    "GymEnv",
    "NoGLBackendError",
    "PointEnv",
    "PointTask",
    "SimState",
    "Task",
    "TaskEnv",
    "make",
]
