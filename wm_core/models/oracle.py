"""A ground-truth world model: plans with copies of the real simulator.

:class:`OracleWorldModel` owns a private environment built by
``task.create_env()`` (any :mod:`wm_core.tasks` task, whose environments
snapshot and restore their simulator).  It ignores frames: it predicts by
replaying actions in the simulator, so it is exact and a reference for how
well a planner can do with a perfect model.

State
-----
``{"simulator": <TaskEnv.get_sim_state()>, "rows_seen": int64 []}`` — a
pytree of NumPy arrays, never a live object.  ``rows_seen`` counts the
episode rows observed so far.  Episode row 0 is the frame ``reset`` returned
(its action is the zero row): ``observe`` skips it and steps the simulator
with the actions of rows 1, 2, ... .

Several states at once (``rollout_workers``)
--------------------------------------------
By default :meth:`OracleWorldModel.predict_batch` (what a search planner
calls once per iteration for all environment slots deciding together) rolls
the ``N`` states out one after another in the private copy.  With
``rollout_workers = k > 0`` it sends them to a pool of ``k`` more simulator
copies, each in its own worker process (a
:class:`~wm_core.tasks.vector.VectorEnv` of the task, started on the first
batched call of two or more states and ended by :meth:`OracleWorldModel.
close`): row ``i`` goes to the next free worker, ``k`` rows roll out at
once, and the rows come back in order, equal to what :meth:`OracleWorldModel.
predict` gives (a state is a complete snapshot, which any copy restores).
:meth:`OracleWorldModel.predict` itself (one state) stays in the private
copy: there is nothing to run side by side.

Only one episode is live per oracle: its simulator copy is reset by
``reset``, and a few tasks (e.g. DeepMind Control's reacher) also place
per-episode targets in the model, which snapshots do not hold.  The pool's
copies are reset with the seed of the oracle's latest ``reset`` before their
next batched prediction, so they hold what the private copy holds; with
several environments the slots' episodes share that one seed's targets, in
the pool as in the private copy (exact for tasks whose snapshots are
complete: cartpole, cheetah, walker, classic control, the toy task).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.checks import check_future_actions, check_observe_args
from wm_core.api.contracts import ContractError, Predictions, State, WorldModel
from wm_core.tasks.base import TaskEnv
from wm_core.tasks.process import WorkerDiedError
from wm_core.tasks.vector import VectorEnv

__all__ = ["OracleWorldModel", "rewards_differ"]

# Replayed rewards must match the observed ones to this (float32-rounded) tolerance.
_REWARD_TOLERANCE = 1e-4

_NEVER_RESET = object()  # the pool's seed before its first reset


def rewards_differ(replayed: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``bool`` mask: where a replayed reward is not the observed one (beyond
    a relative float32-rounding tolerance)."""
    replayed, observed = np.asarray(replayed), np.asarray(observed)
    return np.abs(replayed - observed) > _REWARD_TOLERANCE * np.maximum(1.0, np.abs(observed))


def _check_rollout_workers(rollout_workers: Any) -> int:
    """``rollout_workers`` as an ``int >= 0``, or a ``ValueError`` naming it."""
    try:
        valid = (
            not isinstance(rollout_workers, bool)
            and int(rollout_workers) == rollout_workers >= 0
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "rollout_workers must be an int >= 0 (0: batched predictions roll out in the "
            f"oracle's own simulator copy, one state after another), got {rollout_workers!r}"
        )
    return int(rollout_workers)


@gin.configurable(module="wm")
class OracleWorldModel(WorldModel):
    """Predicts rewards (and frames, with ``render=True``) by simulation.

    :param task: a :class:`wm_core.tasks.Task` (picklable when
        ``rollout_workers > 0``: it travels to the workers).
    :param render: also predict ``image`` ``uint8 [P, H, h, w, 3]`` (slow).
    :param rollout_workers: simulator worker processes that
        :meth:`predict_batch` shares the states of a batch among (see module
        docs); ``0`` (default): none, the states roll out one after another
        in the oracle's own copy.  Worth it with several environments
        (``num_envs > 1``) and a CPU core per worker: ``num_envs`` is a good
        value.
    """

    def __init__(self, task: Any, render: bool = False, rollout_workers: int = 0):
        self.task = task
        self.render = render
        self.rollout_workers = _check_rollout_workers(rollout_workers)
        self.action_dim = spaces.action_dim(task.action_space)
        self._env: TaskEnv | None = None
        self._pool: VectorEnv | None = None
        self._seed: int | None = None  # of the latest reset
        self._pool_seed: Any = _NEVER_RESET  # what the pool's copies were last reset with

    @property
    def env(self) -> TaskEnv:
        """The oracle's private simulator copy (built on first use)."""
        if self._env is None:
            env = self.task.create_env()
            if not callable(getattr(env, "rollout", None)):
                env.close()
                raise TypeError(
                    f"task {self.task.name!r} builds {type(env).__name__}, not a "
                    "wm_core.tasks.TaskEnv: the oracle needs simulator snapshots"
                )
            self._env = env
        return self._env

    @property
    def pool(self) -> VectorEnv | None:
        """The rollout workers (``rollout_workers`` of them), ``None`` until a
        batched prediction of two or more states starts them or after
        :meth:`close`.  Owned by the oracle: do not call or close it."""
        return self._pool

    def reset(self, seed: int | None = None, **kwargs: Any) -> State:
        """Reset the simulator copy with the real environment's ``seed``.

        The pool's copies, if any, are reset with the same seed before their
        next batched prediction.
        """
        if seed is None:
            raise ContractError(
                "OracleWorldModel.reset needs seed=, the seed the real environment "
                "was reset with"
            )
        self.env.reset(seed=int(seed))
        self._seed = int(seed)
        return {"simulator": self.env.get_sim_state(), "rows_seen": np.zeros((), np.int64)}

    def observe(
        self,
        last_frames: np.ndarray,
        last_actions: np.ndarray,
        last_rewards: np.ndarray,
        state: State,
    ) -> State:
        """Replay the new rows' actions (row 0 of an episode is skipped).

        Raises :class:`ContractError` if a replayed reward differs from the
        observed one: the copy is out of step with the real environment.
        """
        _, last_actions, last_rewards = check_observe_args(
            last_frames, last_actions, last_rewards, action_dim=self.action_dim,
            where=f"OracleWorldModel.observe (task {self.task.name!r})",
        )
        rows_seen = int(state["rows_seen"])
        skip = 1 if rows_seen == 0 else 0  # episode row 0 is the reset frame
        env_actions = spaces.to_env_actions(self.task.action_space, last_actions[skip:])
        replayed, simulator = self.env.replay(state["simulator"], env_actions)
        observed = last_rewards[skip:]
        mismatch = rewards_differ(replayed, observed)
        if mismatch.any():
            offset = int(np.argmax(mismatch))
            raise ContractError(
                f"oracle out of step at episode row {rows_seen + skip + offset}: replaying the "
                f"action gave reward {replayed[offset]}, the episode has {observed[offset]}. "
                "Was reset_fn given the seed the real environment was reset with?"
            )
        return {
            "simulator": simulator,
            "rows_seen": np.asarray(rows_seen + len(last_actions), np.int64),
        }

    def predict(self, future_actions: np.ndarray, state: State) -> Predictions:
        """Roll every proposal out from ``state``; ``state`` is left untouched.

        ``future_actions`` ``float32 [P, H, A]`` → ``reward`` ``float32 [P,
        H]`` (and ``image`` ``uint8 [P, H, h, w, 3]`` with ``render``).  Once a
        proposal's episode is over (terminated, or out of time) its rewards
        are 0 and its frames repeat the last one.  Always rolls out in the
        oracle's own simulator copy, one call into it for all proposals.
        """
        future_actions = check_future_actions(
            future_actions, self.action_dim, f"OracleWorldModel.predict (task {self.task.name!r})"
        )
        env_actions = spaces.to_env_actions(self.task.action_space, future_actions)
        rewards, images = self.env.rollout(state["simulator"], env_actions, self.render)
        return {"reward": rewards} if images is None else {"reward": rewards, "image": images}

    def predict_batch(self, future_actions: np.ndarray, states: Sequence[State]) -> Predictions:
        """:meth:`predict` for ``N`` states at once; no state is touched.

        ``future_actions`` ``float32 [N, P, H, A]``, ``states`` ``N`` oracle
        states (owned by the caller, only read) → ``reward`` ``float32 [N,
        P, H]`` (and ``image`` ``uint8 [N, P, H, h, w, 3]`` with ``render``);
        row ``i`` equals ``predict(future_actions[i], states[i])`` exactly.

        With ``rollout_workers == 0``, or a single state, that is what it
        computes, state by state in the oracle's own copy.  Otherwise the
        rows roll out in the :attr:`pool` (started now if not yet), up to
        ``rollout_workers`` at once.  If a worker dies or a call fails, the
        pool is ended and the error raised (a dead worker:
        :class:`~wm_core.tasks.process.WorkerDiedError` naming the row); the
        next batched prediction starts a fresh pool.
        """
        where = f"OracleWorldModel.predict_batch (task {self.task.name!r})"
        future_actions = check_future_actions(future_actions, self.action_dim, where, batch=True)
        if len(future_actions) != len(states) or not len(states):
            raise ContractError(
                f"{where} takes future_actions float32 [N, P, H, A] and N >= 1 states; got "
                f"actions of shape {future_actions.shape} and {len(states)} states"
            )
        if self.rollout_workers == 0 or len(states) == 1:
            return super().predict_batch(future_actions, states)
        env_actions = spaces.to_env_actions(self.task.action_space, future_actions)
        rollouts = self._roll_out_in_pool(env_actions, [state["simulator"] for state in states])
        rewards = np.stack([rewards for rewards, _ in rollouts])
        if not self.render:
            return {"reward": rewards}
        return {"reward": rewards, "image": np.stack([images for _, images in rollouts])}

    def _ready_pool(self) -> VectorEnv:
        """The pool, started if need be and reset with the latest reset's seed."""
        if self._pool is None:
            self._pool = VectorEnv(self.task, self.rollout_workers)
            self._pool_seed = _NEVER_RESET
        if self._pool_seed != self._seed:  # _NEVER_RESET differs from every seed
            try:
                _, infos = self._pool.reset(seed=[self._seed] * self._pool.num_envs)
                if infos["failed"].any():
                    raise WorkerDiedError(
                        f"OracleWorldModel (task {self.task.name!r}): rollout worker(s) of slot(s) "
                        f"{np.flatnonzero(infos['failed']).tolist()} died during their reset; the "
                        "pool was ended, the next batched prediction starts a fresh one"
                    )
            except BaseException:
                self._end_pool()
                raise
            self._pool_seed = self._seed
        return self._pool

    def _roll_out_in_pool(
        self, env_actions: np.ndarray, snapshots: list[Any]
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """``rollout(snapshots[i], env_actions[i], render)`` for every ``i``,
        each in the next free worker of the pool; the results in row order."""
        pool = self._ready_pool()
        results: list[Any] = [None] * len(snapshots)
        waiting = deque(range(len(snapshots)))
        row_in: dict[int, int] = {}  # slot: the row it is rolling out

        def send(slot: int) -> None:
            row = waiting.popleft()
            row_in[slot] = row
            pool.send(slot, "rollout", snapshots[row], env_actions[row], self.render)

        try:
            for slot in range(min(pool.num_envs, len(snapshots))):
                send(slot)
            while row_in:
                for answer in pool.receive():
                    row = row_in.pop(answer.slot)
                    if answer.failed:
                        raise WorkerDiedError(
                            f"OracleWorldModel (task {self.task.name!r}): rollout worker of slot "
                            f"{answer.slot} (pid {pool.envs[answer.slot].pid}) died while "
                            f"rolling out row {row} of the batch; the pool was ended, the next "
                            "batched prediction starts a fresh one"
                        )
                    results[row] = answer.result
                    if waiting:
                        send(answer.slot)
        except BaseException:
            self._end_pool()
            raise
        return results

    def _end_pool(self) -> None:
        """Kill the pool's workers at once (after an error: calls may be in flight)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close(terminate=True)

    def close(self) -> None:
        """Close the private simulator copy and end the pool's worker processes
        (a later call builds new ones)."""
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
