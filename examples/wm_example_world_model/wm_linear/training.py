"""The training step: least squares on every transition seen so far.

:class:`LeastSquaresStep` is the :class:`wm_core.loops.training.Trainer` that
:class:`wm_core.loops.training.TrainLoop` runs (the loop samples chunks, checks
batches, reports metrics and saves).  One step adds the batch's transitions
to the normal equations of both maps and solves them again with a small
ridge ``λ``: ``W = (XᵀX + λI)⁻¹ XᵀY`` over all transitions so far.  A
transition is one chunk row ``t`` to ``t + 1``: features of ``image[t]``,
``action[t + 1]``, then features of ``image[t + 1]`` and ``reward[t + 1]``.

Checkpoints: one ``.npz`` file, :data:`CHECKPOINT` in ``model_dir`` (both
maps, the normal equations and the step), replaced atomically by every save.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from wm_core.loops.training import Batch, divergence_error
from wm_linear.networks import LinearDynamics

__all__ = ["CHECKPOINT", "LeastSquaresStep", "read_checkpoint"]

CHECKPOINT = "linear.npz"


def read_checkpoint(directory: str) -> dict[str, np.ndarray] | None:
    """The arrays of the checkpoint in ``directory``, or ``None`` if there is none."""
    path = os.path.join(directory, CHECKPOINT)
    if not os.path.exists(path):
        return None
    with np.load(path) as arrays:
        return dict(arrays)


class LeastSquaresStep:
    """Fits :class:`~wm_linear.networks.LinearDynamics` (see module docs).

    :param dynamics: the maps to fit (shared with the world model, which
        predicts with them).
    :param model_dir: where the checkpoint lives; the one there is restored now.
    :param ridge: ``λ``, keeps the solve defined before every input varied.
    """

    name = "LinearWorldModel"
    tolerated_nonfinite: frozenset[str] = frozenset()

    def __init__(self, dynamics: LinearDynamics, model_dir: str, ridge: float = 1e-3):
        self.dynamics = dynamics
        self.model_dir = model_dir
        self.ridge = float(ridge)
        self.frame_size = dynamics.frame_shape
        self.action_dim = dynamics.action_dim
        inputs, bins = dynamics.input_size, dynamics.bins
        self.statistics = {
            "transition_gram": np.zeros((inputs, inputs)),
            "transition_cross": np.zeros((inputs, bins)),
            "reward_gram": np.zeros((bins + 1, bins + 1)),
            "reward_cross": np.zeros(bins + 1),
        }
        self._step = 0
        self.restore_last()

    @property
    def step(self) -> int:
        """Steps taken (restored with the checkpoint)."""
        return self._step

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Add the transitions of ``batch`` (``image uint8 [B, L, H, W, C]``,
        ``action float32 [B, L, A]``, ``reward float32 [B, L]``) and solve.

        Returns the batch's mean squared errors under the maps before the
        update: ``feature_error``, ``reward_error`` and their sum ``loss``.
        """
        dynamics = self.dynamics
        features = dynamics.features(batch["image"])
        inputs = dynamics.inputs(features[:, :-1], batch["action"][:, 1:]).reshape(-1, dynamics.input_size)
        following = features[:, 1:].reshape(-1, dynamics.bins)
        rewards = batch["reward"][:, 1:].reshape(-1).astype(np.float64)
        with_bias = np.concatenate([following, np.ones_like(following[:, :1])], -1)
        feature_error = float(np.mean((inputs @ dynamics.transition - following) ** 2))
        reward_error = float(np.mean((with_bias @ dynamics.reward - rewards) ** 2))
        stats = self.statistics
        stats["transition_gram"] += inputs.T @ inputs
        stats["transition_cross"] += inputs.T @ following
        stats["reward_gram"] += with_bias.T @ with_bias
        stats["reward_cross"] += with_bias.T @ rewards
        dynamics.transition = self._solve(stats["transition_gram"], stats["transition_cross"])
        dynamics.reward = self._solve(stats["reward_gram"], stats["reward_cross"])
        self._step += 1
        return {"loss": feature_error + reward_error, "feature_error": feature_error,
                "reward_error": reward_error}

    def before_first_step(self, batches: Iterator[Batch]) -> None:
        """Nothing to prepare."""

    def save(self) -> str:
        """Write the checkpoint (atomically); refuses non-finite maps."""
        weights = {"transition": self.dynamics.transition, "reward": self.dynamics.reward}
        if not all(np.isfinite(value).all() for value in weights.values()):
            step, restored = self._step, self.restore_last()
            raise divergence_error(self.name, step, restored, {"weights": "non-finite"}, self.model_dir)
        os.makedirs(self.model_dir, exist_ok=True)
        path = os.path.join(self.model_dir, CHECKPOINT)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "wb") as file:
            np.savez(file, step=np.int64(self._step), **weights, **self.statistics)
        os.replace(temporary, path)
        return path

    def restore_last(self) -> str | None:
        """Put the saved maps, normal equations and step back; the path, or ``None``."""
        arrays = read_checkpoint(self.model_dir)
        if arrays is None:
            return None
        self.dynamics.transition, self.dynamics.reward = arrays["transition"], arrays["reward"]
        self.statistics = {key: arrays[key] for key in self.statistics}
        self._step = int(arrays["step"])
        return os.path.join(self.model_dir, CHECKPOINT)

    def _solve(self, gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
        return np.linalg.solve(gram + self.ridge * np.eye(len(gram)), cross)
