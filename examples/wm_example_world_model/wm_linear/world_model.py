"""The linear world model on :class:`wm_core.models.base.WorldModelBase`.

State (owned by the caller, never mutated): ``{"features": float32 [K]}``,
the features of the newest observed frame (zeros before the first).  The
base checks every argument and state, picks up a new checkpoint in
``observe_fn`` and hands :meth:`LinearWorldModel.rollout` checked arrays;
this file only says what the state is, how a frame updates it and how
actions roll it forward.  Predictions are deterministic:
``{"reward": float32 [P, H]}``.
"""

from __future__ import annotations

import tempfile
from typing import Any, Sequence

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.contracts import Predictions, State
from wm_core.loops.training import TrainLoop
from wm_core.models.base import ArraySpec, StateSpec, WorldModelBase
from wm_linear.networks import LinearDynamics
from wm_linear.training import CHECKPOINT, LeastSquaresStep, read_checkpoint

__all__ = ["LinearWorldModel"]


@gin.configurable(module="linear")
class LinearWorldModel(WorldModelBase):
    """Linear dynamics on frame features, fitted by least squares.

    :param task: a wm task (its frames and action space size the model).
    :param model_dir: checkpoint directory shared by training (writes) and
        observe (restores the newest); ``None``: a temporary one made by the
        first ``train_fn`` call.
    :param bins: ``K``, feature bins (see :mod:`wm_linear.networks`).
    :param train_steps, batch, chunk_length: per ``train_fn`` call, steps on
        ``batch`` chunks of ``chunk_length`` rows.
    :param ridge: see :class:`~wm_linear.training.LeastSquaresStep`.
    :param seed: seeds the chunk sampling.
    """

    checkpoint_file = CHECKPOINT

    def __init__(
        self,
        task: Any,
        model_dir: str | None = None,
        bins: int = 32,
        train_steps: int = 20,
        batch: int = 8,
        chunk_length: int = 8,
        ridge: float = 1e-3,
        seed: int = 0,
    ):
        self.action_dim = spaces.action_dim(task.action_space)
        self.frame_shape = tuple(task.observation_space["image"].shape)
        self.model_dir = model_dir
        self.dynamics = LinearDynamics(self.frame_shape, self.action_dim, bins)
        self.train_settings = dict(train_steps=train_steps, batch=batch, chunk_length=chunk_length, seed=seed)
        self.ridge = ridge
        self._train_loop: TrainLoop | None = None
        self.poll_checkpoint()

    def state_spec(self) -> StateSpec:
        return {"features": ArraySpec((self.dynamics.bins,), np.float32)}

    def initial_state(self, **kwargs: Any) -> State:
        return {"features": np.zeros(self.dynamics.bins, np.float32)}

    def update_state(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, state: dict[str, np.ndarray]
    ) -> State:
        return {"features": self.dynamics.features(frames[-1]).astype(np.float32)}

    def rollout(self, future_actions: np.ndarray, state: dict[str, np.ndarray]) -> Predictions:
        return {"reward": self.dynamics.rollout(state["features"][None], future_actions)}

    def rollout_batch(self, future_actions: np.ndarray, states: Sequence[dict[str, np.ndarray]]) -> Predictions:
        """All ``N * P`` proposals in one rollout."""
        count, proposals = future_actions.shape[:2]
        starts = np.repeat(np.stack([state["features"] for state in states]), proposals, 0)
        rewards = self.dynamics.rollout(starts, future_actions.reshape(count * proposals, *future_actions.shape[2:]))
        return {"reward": rewards.reshape(count, proposals, -1)}

    def restore_checkpoint(self, directory: str) -> None:
        arrays = read_checkpoint(directory)
        if arrays is not None:
            self.dynamics.transition, self.dynamics.reward = arrays["transition"], arrays["reward"]

    def train(self, data_path: str) -> None:
        """Fit on the episodes under ``data_path`` (see :mod:`wm_linear.training`)."""
        if self._train_loop is None:
            self.model_dir = self.model_dir or tempfile.mkdtemp(prefix="wm-linear-")
            trainer = LeastSquaresStep(self.dynamics, self.model_dir, self.ridge)
            self._train_loop = TrainLoop(trainer, **self.train_settings)
        self._train_loop(data_path)
