"""The model's functions: frame features and two linear maps (NumPy only).

``features(frames uint8 [..., H, W, C]) -> float64 [..., K]``: the column
brightness of a frame (mean over rows and channels, in ``[0, 1]``),
averaged over ``K = bins`` equal groups of columns.

For features ``f [K]`` and the action ``a [A]`` that follows them, the
inputs are ``x = [f, a, f ⊗ a, 1]`` (``F = K + A + K·A + 1`` numbers) and

* the next features are ``f' = x @ transition`` (``transition [F, K]``);
* the reward for that action is ``r' = [f', 1] @ reward`` (``reward [K + 1]``).

Both maps start at zero; :mod:`wm_linear.training` fits them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LinearDynamics"]


class LinearDynamics:
    """The two linear maps over frame features (see module docs).

    :param frame_shape: ``(H, W, C)`` of the frames; ``W`` a multiple of ``bins``.
    :param action_dim: ``A``, the size of an action vector.
    :param bins: ``K``, the number of feature bins.
    """

    def __init__(self, frame_shape: tuple[int, int, int], action_dim: int, bins: int = 16):
        if len(frame_shape) != 3 or bins < 1 or frame_shape[1] % bins:
            raise ValueError(f"frames {frame_shape}: (H, W, C) with W a multiple of bins = {bins} needed")
        self.frame_shape = tuple(int(size) for size in frame_shape)
        self.action_dim = int(action_dim)
        self.bins = int(bins)
        self.transition = np.zeros((self.input_size, self.bins))
        self.reward = np.zeros(self.bins + 1)

    @property
    def input_size(self) -> int:
        """``F = K + A + K·A + 1``."""
        return self.bins + self.action_dim + self.bins * self.action_dim + 1

    def features(self, frames: np.ndarray) -> np.ndarray:
        """``uint8 [..., H, W, C]`` -> ``float64 [..., K]`` in ``[0, 1]``."""
        columns = np.asarray(frames, np.float64).mean(axis=(-3, -1)) / 255.0
        return columns.reshape(*columns.shape[:-1], self.bins, -1).mean(-1)

    def inputs(self, features: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``x = [f, a, f ⊗ a, 1]``: ``[..., K]`` and ``[..., A]`` -> ``[..., F]``."""
        outer = (features[..., :, None] * actions[..., None, :]).reshape(*features.shape[:-1], -1)
        return np.concatenate([features, actions, outer, np.ones_like(features[..., :1])], -1)

    def step(self, features: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(next features [..., K], rewards [...])`` after ``actions [..., A]``."""
        following = self.inputs(features, actions) @ self.transition
        return following, self.reward_of(following)

    def reward_of(self, features: np.ndarray) -> np.ndarray:
        """``[f, 1] @ reward``: ``[..., K]`` -> ``[...]``."""
        return features @ self.reward[:-1] + self.reward[-1]

    def rollout(self, starts: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Rewards ``float32 [M, H]`` of ``actions [M, H, A]`` from ``starts [M, K]``."""
        features = np.broadcast_to(starts, (len(actions), self.bins))
        rewards = np.zeros(actions.shape[:2], np.float32)
        for index in range(actions.shape[1]):
            features, rewards[:, index] = self.step(features, actions[:, index])
        return rewards
