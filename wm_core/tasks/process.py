"""Run a task's environment in a worker process.

Why: Mesa's software OpenGL (llvmpipe, behind both EGL and OSMesa) and
TensorFlow each carry their own LLVM, and in one process the two copies'
symbols interpose: whichever loads second crashes the process (a segfault in
``llvm::FixedVectorType::get``).  MuJoCo rendering therefore never happens in
the process that trains or plans with a TensorFlow model: a
:class:`ProcessEnv` builds the real environment in a *spawned* worker (a
fresh interpreter that never imports TensorFlow) and forwards every call to
it.  A 64×64 frame costs one pipe round trip (~0.1 ms) against ~16 ms of
rendering.

The worker also runs whole rollouts (:meth:`ProcessEnv.rollout`) in one call,
so a ground-truth model plans without a round trip per step.
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any, Callable

import gymnasium
import numpy as np

from wm_core.tasks.base import SimState

__all__ = ["ProcessEnv", "WorkerError"]

_FORWARDED = frozenset(
    {"reset", "step", "render", "get_sim_state", "set_sim_state", "advance", "render_image",
     "replay", "rollout", "close"}
)


class WorkerError(RuntimeError):
    """The environment worker raised, or died; carries the worker's traceback."""


def _describe(env: Any) -> dict[str, Any]:
    return {
        "action_space": env.action_space,
        "observation_space": env.observation_space,
        "metadata": env.metadata,
        "render_mode": env.render_mode,
        "action_repeat": env.action_repeat,
        "time_limit": env.time_limit,
    }


def _serve(connection: Any, factory: Callable[[], Any]) -> None:
    """Worker loop: build the env, answer ``(method, args, kwargs)`` requests."""
    try:
        env = factory()
    except BaseException as error:  # report construction errors to the parent
        connection.send((False, error, traceback.format_exc()))
        return
    connection.send((True, _describe(env), ""))
    while True:
        try:
            method, args, kwargs = connection.recv()
        except EOFError:  # parent went away
            break
        try:
            result = getattr(env, method)(*args, **kwargs)
            connection.send((True, result, ""))
        except BaseException as error:
            connection.send((False, error, traceback.format_exc()))
        if method == "close":
            break
    connection.close()


class ProcessEnv(gymnasium.Env):
    """A :class:`~wm_core.tasks.base.TaskEnv` living in a spawned worker.

    Same API as the env it wraps (gymnasium's plus ``get_sim_state``,
    ``set_sim_state``, ``advance``, ``render_image``, ``replay``,
    ``rollout``); arguments and results travel by pickling.  ``factory``
    must be picklable (a task's bound method is).  Exceptions in the worker
    are re-raised here with their type; a dead worker raises
    :class:`WorkerError`.
    """

    def __init__(self, factory: Callable[[], Any]):
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, factory), daemon=True)
        self._process.start()
        child.close()
        self._closed = False
        description = self._receive("start")
        self.action_space = description["action_space"]
        self.observation_space = description["observation_space"]
        self.metadata = description["metadata"]
        self.render_mode = description["render_mode"]
        self.action_repeat = description["action_repeat"]
        self.time_limit = description["time_limit"]

    def _receive(self, method: str) -> Any:
        try:
            ok, result, worker_traceback = self._connection.recv()
        except (EOFError, ConnectionError) as error:
            self._process.join(timeout=1)
            raise WorkerError(
                f"environment worker died during {method!r} (exit code {self._process.exitcode})"
            ) from error
        if not ok:
            if isinstance(result, Exception):
                raise result from WorkerError(worker_traceback)
            raise WorkerError(worker_traceback)
        return result

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in _FORWARDED:
            raise AttributeError(method)
        if self._closed:
            raise WorkerError(f"{method!r} called on a closed environment")
        try:
            self._connection.send((method, args, kwargs))
        except (BrokenPipeError, ConnectionError) as error:
            self._process.join(timeout=1)
            raise WorkerError(
                f"environment worker died before {method!r} (exit code {self._process.exitcode})"
            ) from error
        return self._receive(method)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._call("reset", seed=seed, options=options)

    def step(self, action: Any):
        return self._call("step", action)

    def render(self):
        return self._call("render")

    def get_sim_state(self) -> SimState:
        return self._call("get_sim_state")

    def set_sim_state(self, sim_state: SimState) -> None:
        self._call("set_sim_state", sim_state)

    def advance(self, action: Any) -> tuple[float, bool, bool]:
        return self._call("advance", action)

    def render_image(self) -> np.ndarray:
        return self._call("render_image")

    def replay(self, sim_state: SimState, actions: np.ndarray):
        return self._call("replay", sim_state, actions)

    def rollout(self, sim_state: SimState, actions: np.ndarray, render: bool = False):
        return self._call("rollout", sim_state, actions, render)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call("close")
        except (WorkerError, OSError, BrokenPipeError):
            pass
        finally:
            self._closed = True
            self._connection.close()
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()
