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
  second one).  The task must be picklable.  The workers render side by
  side, so each gets its share of the cores for Mesa's render threads
  (:func:`~wm_core.tasks.rendering.render_threads`).
* **A dead worker is not fatal.**  If a worker dies during a call its slot
  reports ``infos["failed"]`` ``True`` (its observation is meaningless) and
  needs a reset; the next reset of that slot starts a fresh worker.  The
  caller decides what a lost episode means (:func:`wm_core.rollout.simulate.
  simulate` collects it again from its seed).  An error *raised* by an
  environment is re-raised, as Gymnasium does.
* **Timeouts kill.**  A worker has ``timeout`` seconds to answer a call;
  one that does not is killed and
  :class:`~wm_core.tasks.process.WorkerTimeoutError` names it (Gymnasium
  raises ``multiprocessing.TimeoutError`` and leaves the worker running).
* **One slot at a time, too.**  Besides the batched calls, :meth:`VectorEnv.
  send` starts a call in one slot and :meth:`VectorEnv.receive` returns the
  answers as they come, so a caller can act for the slots that are ready
  instead of waiting, every step, for the slowest (what
  :func:`wm_core.rollout.simulate.simulate` does).
"""

from __future__ import annotations

import copy
import pickle
import time
from multiprocessing.connection import wait
from typing import Any, Callable, NamedTuple, Sequence

import gin
import numpy as np

from wm_core.api.checks import check_num_envs
from wm_core.tasks.process import ProcessEnv, WorkerDiedError, WorkerError, WorkerTimeoutError
from wm_core.tasks.rendering import render_threads

__all__ = ["Answer", "VectorEnv", "worker_factory"]


class Answer(NamedTuple):
    """A slot's answer to a call sent with :meth:`VectorEnv.send`.

    ``result``: what the environment's method returned (``None`` if
    ``failed``); ``failed``: the worker died (the slot needs a reset, which
    starts a fresh worker).
    """

    slot: int
    method: str
    result: Any
    failed: bool


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
        check_num_envs(num_envs)
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
        # The workers render side by side: Mesa's threads sized for that.
        self._environment = render_threads(self.num_envs)
        self.envs: list[ProcessEnv] = ProcessEnv.start_many(
            [self._factory] * self.num_envs, timeout, self._environment
        )
        first = self.envs[0]
        self.single_action_space = first.action_space
        self.single_observation_space = first.observation_space
        self.metadata = first.metadata
        self.restarts = 0  #: workers started again after one died
        self._dead = [False] * self.num_envs
        self._needs_reset = [True] * self.num_envs
        self._last: list[dict[str, np.ndarray] | None] = [None] * self.num_envs
        self._in_flight: dict[int, tuple[str, float | None]] = {}  # slot: (method, deadline)
        self._answered: list[Answer] = []  # answers known without asking (dead workers)
        self.closed = False

    # -- one slot at a time ----------------------------------------------------
    def send(self, slot: int, method: str, *args: Any, **kwargs: Any) -> None:
        """Start ``env.<method>(*args, **kwargs)`` in ``slot``'s worker; :meth:`receive` answers.

        ``"reset"`` starts a fresh worker first if the slot's died;
        ``"step"`` needs a slot in an episode (no autoreset).  A worker
        found dead now answers as failed.
        """
        self._check_open()
        if slot in self._in_flight:
            raise ValueError(f"slot {slot} has a call in flight; receive its answer first")
        if method == "reset" and self._dead[slot]:
            self._restart(slot)
        elif method == "step" and self._needs_reset[slot]:
            raise ValueError(
                f"slot(s) [{slot}] must be reset before they are stepped (their episode "
                "ended, failed or never started; there is no autoreset)"
            )
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._in_flight[slot] = (method, deadline)
        if self._dead[slot]:
            self._answered.append(Answer(slot, method, None, True))
            return
        try:
            self.envs[slot].call_async(method, *args, **kwargs)
        except WorkerDiedError:
            self._lose(slot)
            self._answered.append(Answer(slot, method, None, True))

    @property
    def in_flight(self) -> frozenset[int]:
        """The slots whose call has not been received yet."""
        return frozenset(self._in_flight)

    def receive(self, min_answers: int = 1, linger: float = 0.0) -> list[Answer]:
        """Answers of calls in flight, as they come: waits until ``min_answers``
        of them (at most all in flight) have answered, then up to ``linger``
        seconds more for the others still in flight, and takes any answer
        already there.

        A worker that died answers ``failed``; an error the environment
        raised is re-raised (the other calls stay in flight).  Calls past
        their ``timeout``: the workers are killed and
        :class:`~wm_core.tasks.process.WorkerTimeoutError` raised.
        """
        self._check_open()
        answers: list[Answer] = []
        wanted = min(min_answers, len(self._in_flight))
        linger_until = None
        while True:
            while self._answered:
                answer = self._answered.pop(0)
                del self._in_flight[answer.slot]
                answers.append(answer)
            waiting = {
                self.envs[slot].connection: slot
                for slot in self._in_flight
                if not self._dead[slot]
            }
            if not waiting:
                return answers
            now = time.monotonic()
            block = len(answers) < wanted
            if not block and linger_until is None:
                linger_until = now + max(linger, 0.0)
            deadlines = [deadline for _, deadline in self._in_flight.values() if deadline is not None]
            until = min(deadlines, default=None) if block else min([linger_until, *deadlines])
            ready = wait(list(waiting), None if until is None else max(until - now, 0.0))
            if not ready:
                if not block:
                    return answers
                self._time_out()
                continue
            for connection in ready:
                slot = waiting[connection]
                method, _ = self._in_flight.pop(slot)
                try:
                    result = self.envs[slot].call_wait(timeout=0)
                except WorkerDiedError:
                    self._lose(slot)
                    answers.append(Answer(slot, method, None, True))
                    continue
                except Exception:  # the environment raised: the caller's problem
                    self._needs_reset[slot] = True
                    raise
                self._record(slot, method, result)
                answers.append(Answer(slot, method, result, False))

    def _record(self, slot: int, method: str, result: Any) -> None:
        if method == "reset":
            self._last[slot] = result[0]
            self._needs_reset[slot] = False
        elif method == "step":
            observation, _, terminated, truncated, _ = result
            self._last[slot] = observation
            self._needs_reset[slot] = bool(terminated or truncated)

    def _lose(self, slot: int) -> None:
        self.envs[slot].kill()
        self._dead[slot] = True
        self._needs_reset[slot] = True

    def _time_out(self) -> None:
        """Kill the workers whose call is past its deadline and raise (if any is)."""
        now = time.monotonic()
        hung = sorted(
            slot for slot, (_, deadline) in self._in_flight.items()
            if deadline is not None and deadline <= now and not self._dead[slot]
        )
        if not hung:
            return
        methods = sorted({self._in_flight[slot][0] for slot in hung})
        for slot in hung:
            self._lose(slot)
            del self._in_flight[slot]
        raise WorkerTimeoutError(
            f"environment worker(s) of slot(s) {hung} (pids "
            f"{[self.envs[slot].pid for slot in hung]}) did not answer "
            f"{' / '.join(repr(m) for m in methods)} within {self.timeout:g} s; they were killed"
        )

    def _restart(self, slot: int) -> None:
        self.envs[slot].kill()
        self.envs[slot] = ProcessEnv(self._factory, self.timeout, self._environment)
        self._dead[slot] = False
        self.restarts += 1

    # -- all slots together (Gymnasium's calls) -------------------------------
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

    def _all(self, calls: dict[int, tuple[str, tuple, dict]]) -> dict[int, Answer]:
        """Send every call, then receive all their answers."""
        if self._in_flight:
            raise ValueError(
                f"slot(s) {sorted(self._in_flight)} have calls in flight; receive them first"
            )
        for slot, (method, args, kwargs) in calls.items():
            self.send(slot, method, *args, **kwargs)
        answers: dict[int, Answer] = {}
        while len(answers) < len(calls):
            for answer in self.receive(len(calls) - len(answers)):
                answers[answer.slot] = answer
        return answers

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
        answers = self._all({
            slot: ("reset", (), {"seed": seeds[slot], "options": options or None})
            for slot in range(self.num_envs) if mask[slot]
        })
        failed = [slot for slot, answer in answers.items() if answer.failed]
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
        answers = self._all({slot: ("step", (actions[slot],), {}) for slot in slots})
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, bool)
        truncations = np.zeros(self.num_envs, bool)
        discounts = np.ones(self.num_envs)
        failed = []
        for slot, answer in answers.items():
            if answer.failed:
                failed.append(slot)
                continue
            _, reward, terminated, truncated, info = answer.result
            rewards[slot], terminations[slot], truncations[slot] = reward, terminated, truncated
            discounts[slot] = info.get("discount", 1.0)
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
        answers = self._all({
            slot: (name, *given) for slot, given in enumerate(arguments) if given is not None
        })
        failed = sorted(slot for slot, answer in answers.items() if answer.failed)
        if failed:
            raise WorkerDiedError(f"environment worker(s) of slot(s) {failed} died during {name!r}")
        return tuple(
            answers[slot].result if slot in answers else None for slot in range(self.num_envs)
        )

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
