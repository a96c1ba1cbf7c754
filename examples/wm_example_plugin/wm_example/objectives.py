"""``RewardAbove``: how many predicted steps earn more than a threshold."""

from __future__ import annotations

import gin
import numpy as np


@gin.configurable(module="example")
class RewardAbove:
    """``score[p] = #{j : reward[p, j] > threshold}`` — float32 [P].

    A sparse objective: it prefers plans that spend the most steps in the
    rewarding region, whatever the reward's scale.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = float(threshold)

    def __call__(self, predictions: dict[str, np.ndarray]) -> np.ndarray:
        return (np.asarray(predictions["reward"]) > self.threshold).sum(axis=1).astype(np.float32)
