"""Run a task's environment in a worker process.

Why: Mesa's software OpenGL (llvmpipe, behind both EGL and OSMesa) and
TensorFlow each carry their own LLVM, and in one process the two copies'
symbols interpose: whichever loads second crashes the process (a segfault in
``llvm::FixedVectorType::get``).  MuJoCo rendering therefore never happens in
the process that trains or plans with a TensorFlow model: a
:class:`ProcessEnv` builds the real environment in a worker — a fresh
``python -m wm_core.tasks.worker`` that imports only what unpickling the
environment factory needs (not multiprocessing's spawn, which re-imports the
parent's ``__main__`` and with it TensorFlow) — and forwards every call to
it.  A 64×64 frame costs one pipe round trip (~0.1 ms) against ~16 ms of
rendering.

The worker also runs whole rollouts (:meth:`ProcessEnv.rollout`) in one call,
so a ground-truth model plans without a round trip per step.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
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


def serve(connection: Connection) -> None:
    """Worker loop: receive the factory, build the env, answer ``(method, args, kwargs)``."""
    try:
        env = connection.recv()()
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
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "wm_core.tasks.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        self._connection = Connection(ours.detach())
        self._closed = False
        self._connection.send(factory)
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
            raise WorkerError(
                f"environment worker died during {method!r} (exit code {self._exit_code()})"
            ) from error
        if not ok:
            if isinstance(result, Exception):
                raise result from WorkerError(worker_traceback)
            raise WorkerError(worker_traceback)
        return result

    def _exit_code(self) -> int | None:
        try:
            return self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in _FORWARDED:
            raise AttributeError(method)
        if self._closed:
            raise WorkerError(f"{method!r} called on a closed environment")
        try:
            self._connection.send((method, args, kwargs))
        except (BrokenPipeError, ConnectionError) as error:
            raise WorkerError(
                f"environment worker died before {method!r} (exit code {self._exit_code()})"
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
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()
