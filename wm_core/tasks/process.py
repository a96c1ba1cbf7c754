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
it, one pipe round trip each (its cost: ``docs/design.md``).

The worker gets the parent's ``sys.path`` before the factory, so a factory
importable in the parent (a test's module on a temporary path included) is
importable in the worker.  Calls can be split into :meth:`ProcessEnv.
call_async` and :meth:`ProcessEnv.call_wait`, so several workers compute at
once (:class:`wm_core.tasks.vector.VectorEnv`), and a ``timeout`` bounds how
long the parent waits for an answer: a worker that does not answer in time
is killed and :class:`WorkerTimeoutError` raised.

The worker also runs whole rollouts (:meth:`ProcessEnv.rollout`) in one call,
so a ground-truth model plans without a round trip per step.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Mapping, Sequence

import gymnasium
import numpy as np

from wm_core.ownership import child_environment
from wm_core.tasks.base import SimState

__all__ = ["ProcessEnv", "WorkerDiedError", "WorkerError", "WorkerTimeoutError"]

_FORWARDED = frozenset(
    {"reset", "step", "render", "get_sim_state", "set_sim_state", "advance", "render_image",
     "replay", "rollout", "close"}
)


class WorkerError(RuntimeError):
    """The environment worker raised, or died; carries the worker's traceback."""


class WorkerDiedError(WorkerError):
    """The environment worker's process ended (was killed, crashed) while in use."""


class WorkerTimeoutError(WorkerError, TimeoutError):
    """The environment worker did not answer within the timeout; it was killed."""


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
    """Worker loop: receive the parent's ``sys.path`` and the factory, build the
    env, answer ``(method, args, kwargs)``."""
    try:
        for entry in reversed(connection.recv()):  # the parent's sys.path, before unpickling
            if entry not in sys.path:
                sys.path.insert(0, entry)
        env = connection.recv()()
    except BaseException as error:  # report construction errors to the parent
        connection.send((False, error, traceback.format_exc()))
        return
    connection.send((True, _describe(env), ""))
    while True:
        try:
            method, args, kwargs = connection.recv()
        except (EOFError, ConnectionError):  # parent went away
            break
        try:
            answer = (True, getattr(env, method)(*args, **kwargs), "")
        except BaseException as error:
            answer = (False, error, traceback.format_exc())
        try:
            connection.send(answer)
        except (BrokenPipeError, ConnectionError):  # parent went away
            break
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
    :class:`WorkerDiedError` (a :class:`WorkerError`).

    :param timeout: seconds to wait for any answer of the worker (its start
        included); ``None`` waits for ever.  A worker that does not answer in
        time is killed and :class:`WorkerTimeoutError` raised.
    :param environment: variables added to the worker's environment (e.g.
        :func:`wm_core.tasks.rendering.render_threads`).
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        timeout: float | None = None,
        environment: Mapping[str, str] | None = None,
    ):
        self._launch(factory, timeout, environment)
        self._finish_start()

    @classmethod
    def start_many(
        cls,
        factories: Sequence[Callable[[], Any]],
        timeout: float | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> list[ProcessEnv]:
        """One worker per factory, started together (their imports overlap)."""
        envs = []
        try:
            for factory in factories:
                env = cls.__new__(cls)
                env._launch(factory, timeout, environment)
                envs.append(env)
            for env in envs:
                env._finish_start()
        except BaseException:
            for env in envs:
                env.kill()
            raise
        return envs

    def _launch(
        self, factory: Callable[[], Any], timeout: float | None, environment: Mapping[str, str] | None
    ) -> None:
        self.timeout = timeout
        self._pending: str | None = None
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "wm_core.tasks.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=child_environment(environment),  # the worker dies with this process
            )
        self._connection = Connection(ours.detach())
        self._closed = False
        try:
            self._connection.send(list(sys.path))
            self._connection.send(factory)
        except (BrokenPipeError, ConnectionError) as error:
            raise WorkerDiedError(
                f"environment worker died before it got its factory (exit code "
                f"{self._exit_code()})"
            ) from error
        self._pending = "start"

    def _finish_start(self) -> None:
        description = self.call_wait()
        self.action_space = description["action_space"]
        self.observation_space = description["observation_space"]
        self.metadata = description["metadata"]
        self.render_mode = description["render_mode"]
        self.action_repeat = description["action_repeat"]
        self.time_limit = description["time_limit"]

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._process.pid

    @property
    def connection(self) -> Connection:
        """The parent's end of the pipe (for :func:`multiprocessing.connection.wait`)."""
        return self._connection

    def _exit_code(self) -> int | None:
        try:
            return self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def call_async(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send ``env.<method>(*args, **kwargs)`` to the worker; :meth:`call_wait` answers."""
        if method not in _FORWARDED:
            raise AttributeError(method)
        if self._closed:
            raise WorkerError(f"{method!r} called on a closed environment")
        if self._pending is not None:
            raise WorkerError(f"{method!r} called while {self._pending!r} awaits its answer")
        try:
            self._connection.send((method, args, kwargs))
        except (BrokenPipeError, ConnectionError) as error:
            raise WorkerDiedError(
                f"environment worker died before {method!r} (exit code {self._exit_code()})"
            ) from error
        self._pending = method

    def call_wait(self, timeout: float | None = None) -> Any:
        """The answer to the pending :meth:`call_async`; re-raises the worker's error.

        ``timeout`` (default: the env's ``timeout``) in seconds; past it the
        worker is killed and :class:`WorkerTimeoutError` raised.
        """
        method, self._pending = self._pending, None
        if method is None:
            raise WorkerError("call_wait without a pending call_async")
        timeout = self.timeout if timeout is None else timeout
        try:
            answered = timeout is None or self._connection.poll(timeout)
            if answered:
                ok, result, worker_traceback = self._connection.recv()
        except (EOFError, ConnectionError) as error:
            raise WorkerDiedError(
                f"environment worker died during {method!r} (exit code {self._exit_code()})"
            ) from error
        if not answered:
            self.kill()
            raise WorkerTimeoutError(
                f"environment worker (pid {self.pid}) did not answer {method!r} within "
                f"{timeout:g} s; it was killed"
            )
        if not ok:
            if isinstance(result, Exception):
                raise result from WorkerError(worker_traceback)
            raise WorkerError(worker_traceback)
        return result

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.call_async(method, *args, **kwargs)
        return self.call_wait()

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

    def kill(self) -> None:
        """End the worker at once (SIGKILL) and close this env; no call is made."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._pending = None
        self._connection.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._pending is not None:  # an answer nobody collected
                with contextlib.suppress(Exception):
                    self.call_wait()
            if not self._closed:
                self._call("close")
        except (WorkerError, OSError):
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
