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

Only one episode is live per oracle: its simulator copy is reset by
``reset``, and a few tasks (e.g. DeepMind Control's reacher) also place
per-episode targets in the model, which snapshots do not hold.
"""

from __future__ import annotations

from typing import Any

import gin
import numpy as np

from wm_core import spaces
from wm_core.checks import check_future_actions, check_observe_args
from wm_core.contracts import ContractError, Predictions, State, WorldModel
from wm_core.tasks.base import TaskEnv

__all__ = ["OracleWorldModel", "rewards_differ"]

# Replayed rewards must match the observed ones to this (float32-rounded) tolerance.
_REWARD_TOLERANCE = 1e-4


def rewards_differ(replayed: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``bool`` mask: where a replayed reward is not the observed one (beyond
    a relative float32-rounding tolerance)."""
    replayed, observed = np.asarray(replayed), np.asarray(observed)
    return np.abs(replayed - observed) > _REWARD_TOLERANCE * np.maximum(1.0, np.abs(observed))


@gin.configurable(module="wm")
class OracleWorldModel(WorldModel):
    """Predicts rewards (and frames, with ``render=True``) by simulation.

    :param task: a :class:`wm_core.tasks.Task`.
    :param render: also predict ``image`` ``uint8 [P, H, h, w, 3]`` (slow).
    """

    def __init__(self, task: Any, render: bool = False):
        self.task = task
        self.render = render
        self.action_dim = spaces.action_dim(task.action_space)
        self._env: TaskEnv | None = None

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

    def reset(self, seed: int | None = None, **kwargs: Any) -> State:
        """Reset the simulator copy with the real environment's ``seed``."""
        if seed is None:
            raise ContractError(
                "OracleWorldModel.reset needs seed=, the seed the real environment "
                "was reset with"
            )
        self.env.reset(seed=int(seed))
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
        are 0 and its frames repeat the last one.  (:meth:`predict_batch`,
        for several states, is the base class's loop over this method: each
        state is one rollout call into the simulator copy either way.)
        """
        future_actions = check_future_actions(
            future_actions, self.action_dim, f"OracleWorldModel.predict (task {self.task.name!r})"
        )
        env_actions = spaces.to_env_actions(self.task.action_space, future_actions)
        rewards, images = self.env.rollout(state["simulator"], env_actions, self.render)
        return {"reward": rewards} if images is None else {"reward": rewards, "image": images}

    def close(self) -> None:
        """Close the private simulator copy (a later call builds a new one)."""
        if self._env is not None:
            self._env.close()
            self._env = None
