"""Several environments of one task, each in its own worker process, stepped together.

:class:`VectorEnv` follows Gymnasium's vector-environment conventions where
they fit (``gymnasium.vector.AsyncVectorEnv``): ``num_envs``,
``single_action_space`` / ``single_observation_space``, observations batched
along a leading ``[num_envs]`` axis (a dict of arrays), ``reset(seed=[...],
options={"reset_mask": ...})``, rewards / terminations / truncations as
``[num_envs]`` arrays, every worker computing at once.  Where wm departs:

* **No autoreset.**  Gymnasium resets a finished sub-environment by itself
  (into an unseeded next episode); here episode ``i`` must start from seed
  ``i``, so a finished slot waits until the caller resets it with the seed
  it chooses (Gymnasium's ``AutoresetMode.DISABLED``).  Stepping a slot that
  needs a reset is an error.
* **Stepping a subset.**  ``step(actions, mask=...)`` steps only the masked
  slots: at the end of a phase some slots have no episode left to run.
  Slots not stepped keep their last observation and report reward 0.
* **Workers are ``python -m wm_core.tasks.worker`` processes**
  (:class:`~wm_core.tasks.process.ProcessEnv`), not multiprocessing's spawn,
  which re-imports the parent's ``__main__`` (and TensorFlow with it), and
  each builds the task's environment *locally* (a task that already renders
  in a worker, ``DeepMindControl(in_worker=True)``, is not nested in a
  second one).  The task must be picklable.
* **A dead worker is not fatal.**  If a worker dies during a call its slot
  reports ``infos["failed"]`` ``True`` (its observation is meaningless) and
  needs a reset; the next reset of that slot starts a fresh worker.  The
  caller decides what a lost episode means (:func:`wm_core.simulate.
  simulate` collects it again from its seed).  An error *raised* by an
  environment is re-raised, as Gymnasium does.
* **Timeouts kill.**  Every call waits at most ``timeout`` seconds for all
  its workers; workers that did not answer are killed and
  :class:`~wm_core.tasks.process.WorkerTimeoutError` names them (Gymnasium
  raises ``multiprocessing.TimeoutError`` and leaves the worker running).
"""

from __future__ import annotations

import copy
import pickle
import time
from multiprocessing.connection import wait
from typing import Any, Callable, Sequence

import gin
import numpy as np

from wm_core.tasks.process import ProcessEnv, WorkerDiedError, WorkerError, WorkerTimeoutError

__all__ = ["VectorEnv", "worker_factory"]


def worker_factory(task: Any) -> Callable[[], Any]:
    """A picklable factory of one of ``task``'s environments, built where it is called.

    ``task.create_env`` itself, except for tasks that would start their own
    worker (an ``in_worker`` attribute that is true, as
    :class:`~wm_core.tasks.DeepMindControl` has): those are copied with
    ``in_worker = False``, so the environment is built in *this* worker.
    """
    if getattr(task, "in_worker", False):
        local = copy.copy(task)
        local.in_worker = False
        return local.create_env
    return task.create_env


def _stack(observations: list[dict[str, np.ndarray] | None], space: Any) -> dict[str, np.ndarray]:
    """Per-slot observation dicts as a dict of ``[N, ...]`` arrays (zeros where ``None``)."""
    stacked = {}
    for key, subspace in space.spaces.items():
        stacked[key] = np.stack([
            np.asarray(observation[key]) if observation is not None
            else np.zeros(subspace.shape, subspace.dtype)
            for observation in observations
        ])
    return stacked


@gin.configurable(module="wm")
class VectorEnv:
    """``num_envs`` environments of ``task``, one per worker process (see module docs).

    :param task: a :class:`~wm_core.tasks.Task` (picklable: it travels to the workers).
    :param num_envs: environments (slots), ``>= 1``.
    :param timeout: seconds any call (a worker's start included) may take
        before the workers that did not answer are killed and
        :class:`~wm_core.tasks.process.WorkerTimeoutError` is raised.
    """

    def __init__(self, task: Any, num_envs: int, timeout: float = 300.0):
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self.num_envs = int(num_envs)
        self.timeout = timeout
        self._factory = worker_factory(task)
        try:
            pickle.dumps(self._factory)
        except Exception as error:
            raise TypeError(
                f"task {task!r} cannot be sent to an environment worker process (each of "
                f"num_envs > 1 environments runs in one): {error!r}"
            ) from error
        self.envs: list[ProcessEnv] = ProcessEnv.start_many(
            [self._factory] * self.num_envs, timeout
        )
        first = self.envs[0]
        self.single_action_space = first.action_space
        self.single_observation_space = first.observation_space
        self.metadata = first.metadata
        self.restarts = 0  #: workers started again after one died
        self._dead = [False] * self.num_envs
        self._needs_reset = [True] * self.num_envs
        self._last: list[dict[str, np.ndarray] | None] = [None] * self.num_envs
        self.closed = False

    # -- calls ---------------------------------------------------------------
    def _mask(self, mask: Any, what: str) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, bool)
        mask = np.asarray(mask)
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(
                f"{what} must be a bool array of shape ({self.num_envs},), got "
                f"{mask.dtype} {mask.shape}"
            )
        return mask

    def _restart(self, slot: int) -> None:
        self.envs[slot].kill()
        self.envs[slot] = ProcessEnv(self._factory, self.timeout)
        self._dead[slot] = False
        self.restarts += 1

    def _send(self, slot: int, method: str, *args: Any, **kwargs: Any) -> bool:
        """``call_async`` on slot's worker; ``False`` if that worker is dead."""
        try:
            self.envs[slot].call_async(method, *args, **kwargs)
            return True
        except WorkerDiedError:
            self.envs[slot].kill()
            self._dead[slot] = True
            return False

    def _gather(self, slots: list[int], method: str) -> tuple[dict[int, Any], list[int]]:
        """Answers of the pending ``method`` calls of ``slots``: ``({slot: result}, failed)``.

        Waits for all of them (at most ``timeout`` in all); re-raises the
        first error an environment raised, after collecting the others.
        """
        results, failed, errors = {}, [], []
        waiting = {self.envs[slot].connection: slot for slot in slots}
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while waiting:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready = wait(list(waiting), remaining)
            if not ready:
                break
            for connection in ready:
                slot = waiting.pop(connection)
                try:
                    results[slot] = self.envs[slot].call_wait(timeout=0)
                except WorkerDiedError:
                    failed.append(slot)
                    self._dead[slot] = True
                except Exception as error:  # the environment raised: the caller's problem
                    errors.append(error)
        if waiting:
            hung = sorted(waiting.values())
            for slot in hung:
                self.envs[slot].kill()
                self._dead[slot] = True
            raise WorkerTimeoutError(
                f"environment worker(s) of slot(s) {hung} (pids "
                f"{[self.envs[slot].pid for slot in hung]}) did not answer {method!r} within "
                f"{self.timeout:g} s; they were killed"
            )
        if errors:
            raise errors[0]
        return results, failed

    def reset(
        self, *, seed: Sequence[int | None] | int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Reset the slots of ``options["reset_mask"]`` (default: all) together.

        :param seed: one seed per slot (``int``: ``seed + slot``, as Gymnasium).
        :returns: ``(observations, infos)``: ``observations`` a dict of
            ``[num_envs, ...]`` arrays (slots not reset keep their last
            observation); ``infos["failed"]`` ``bool [num_envs]``, ``True``
            where the worker died during the reset (reset that slot again;
            it gets a fresh worker).
        """
        self._check_open()
        options = dict(options or {})
        mask = self._mask(options.pop("reset_mask", None), 'options["reset_mask"]')
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + slot for slot in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed has {len(seeds)} entries, expected num_envs = {self.num_envs}")
        slots = [slot for slot in range(self.num_envs) if mask[slot]]
        sent, lost = [], []
        for slot in slots:
            if self._dead[slot]:
                self._restart(slot)
            ok = self._send(slot, "reset", seed=seeds[slot], options=options or None)
            (sent if ok else lost).append(slot)
        results, failed = self._gather(sent, "reset")
        failed += lost
        for slot, (observation, _) in results.items():
            self._last[slot] = observation
            self._needs_reset[slot] = False
        for slot in failed:
            self._needs_reset[slot] = True
        return _stack(self._last, self.single_observation_space), {
            "failed": np.isin(np.arange(self.num_envs), failed)
        }

    def step(
        self, actions: Sequence[Any], mask: Any = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step the slots of ``mask`` (default: all) together, slot ``i`` with ``actions[i]``.

        ``actions`` are environment actions (what ``env.step`` takes), one
        per slot; those of slots not stepped are ignored.
        :returns: ``(observations, rewards, terminations, truncations,
            infos)``, each ``[num_envs]`` along its first axis;
            ``infos["discount"]``, and ``infos["failed"]`` as for
            :meth:`reset` (a failed slot's other entries are meaningless).
            A slot whose episode ended (or failed) must be reset before it
            is stepped again.
        """
        self._check_open()
        mask = self._mask(mask, "mask")
        if len(actions) != self.num_envs:
            raise ValueError(f"actions has {len(actions)} entries, expected num_envs = {self.num_envs}")
        slots = [slot for slot in range(self.num_envs) if mask[slot]]
        unready = [slot for slot in slots if self._needs_reset[slot]]
        if unready:
            raise ValueError(
                f"slot(s) {unready} must be reset before they are stepped (their episode "
                "ended, failed or never started; there is no autoreset)"
            )
        sent, lost = [], []
        for slot in slots:
            (sent if self._send(slot, "step", actions[slot]) else lost).append(slot)
        results, failed = self._gather(sent, "step")
        failed += lost
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, bool)
        truncations = np.zeros(self.num_envs, bool)
        discounts = np.ones(self.num_envs)
        for slot, (observation, reward, terminated, truncated, info) in results.items():
            self._last[slot] = observation
            rewards[slot], terminations[slot], truncations[slot] = reward, terminated, truncated
            discounts[slot] = info.get("discount", 1.0)
            self._needs_reset[slot] = bool(terminated or truncated)
        for slot in failed:
            self._needs_reset[slot] = True
        infos = {"discount": discounts, "failed": np.isin(np.arange(self.num_envs), failed)}
        return (
            _stack(self._last, self.single_observation_space), rewards, terminations,
            truncations, infos,
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """``env.<name>(*args, **kwargs)`` in every slot at once (Gymnasium's ``call``).

        ``name`` is one of the methods a :class:`~wm_core.tasks.process.
        ProcessEnv` forwards (``get_sim_state``, ``rollout``, ...).  A dead
        worker raises :class:`~wm_core.tasks.process.WorkerDiedError`.
        """
        return self.call_each(name, [(args, kwargs)] * self.num_envs)

    def call_each(
        self, name: str, arguments: Sequence[tuple[tuple, dict] | None]
    ) -> tuple[Any, ...]:
        """``env.<name>(*args, **kwargs)`` in slot ``i`` with ``arguments[i] =
        (args, kwargs)``, all at once; ``None`` skips a slot (its result is
        ``None``).  E.g. rollouts from several simulator states in parallel."""
        self._check_open()
        if len(arguments) != self.num_envs:
            raise ValueError(f"arguments has {len(arguments)} entries, expected {self.num_envs}")
        slots = [slot for slot, given in enumerate(arguments) if given is not None]
        for slot in slots:
            args, kwargs = arguments[slot]
            if not self._send(slot, name, *args, **kwargs):
                raise WorkerDiedError(f"environment worker of slot {slot} is dead")
        results, failed = self._gather(slots, name)
        if failed:
            raise WorkerDiedError(f"environment worker(s) of slot(s) {failed} died during {name!r}")
        return tuple(results.get(slot) for slot in range(self.num_envs))

    # -- lifetime ------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise WorkerError("VectorEnv used after close()")

    def close(self, terminate: bool = False) -> None:
        """Close every worker (``terminate``: kill them without asking)."""
        if self.closed:
            return
        self.closed = True
        for env in self.envs:
            if terminate:
                env.kill()
            else:
                env.close()

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "closed", True):
            self.close(terminate=True)

    def __repr__(self) -> str:
        return f"VectorEnv(num_envs={self.num_envs})"
