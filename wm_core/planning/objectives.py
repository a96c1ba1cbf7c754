"""Objectives: map a world model's predictions to one score per proposal.

An objective is any callable ``objective_fn(predictions) -> float32 [P]``
(see :mod:`wm_core.api.contracts`).  Higher scores are better.
"""

from __future__ import annotations

import gin
import numpy as np

from wm_core.api.contracts import ContractError, Predictions

__all__ = ["DiscountedReward", "DiscountedReturnWithValue", "TotalReward"]


def _rewards(predictions: Predictions) -> np.ndarray:
    if "reward" not in predictions:
        raise ContractError(
            f"predictions have no 'reward' (keys: {sorted(predictions)}); "
            "reward objectives need a world model that predicts rewards"
        )
    rewards = np.asarray(predictions["reward"], np.float32)
    if rewards.ndim != 2:
        raise ContractError(
            f"predictions['reward'] must be [proposals, horizon], got shape {rewards.shape}"
        )
    return rewards


@gin.configurable(module="wm")
class DiscountedReward:
    """``score[p] = sum_j discount**j * reward[p, j]``.

    The first predicted reward is undiscounted.  ``discount=1`` is the plain
    sum of rewards over the horizon.
    """

    def __init__(self, discount: float = 0.99):
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {discount}")
        self.discount = float(discount)

    def __call__(self, predictions: Predictions) -> np.ndarray:
        rewards = _rewards(predictions)
        weights = self.discount ** np.arange(rewards.shape[1], dtype=np.float64)
        return (rewards.astype(np.float64) @ weights).astype(np.float32)

    def __repr__(self) -> str:
        return f"DiscountedReward(discount={self.discount})"


@gin.configurable(module="wm")
class TotalReward(DiscountedReward):
    """Undiscounted sum of the predicted rewards over the horizon."""

    def __init__(self):
        super().__init__(discount=1.0)

    def __repr__(self) -> str:
        return "TotalReward()"


@gin.configurable(module="wm")
class DiscountedReturnWithValue(DiscountedReward):
    """``score[p] = sum_j discount**j * reward[p, j] + discount**H * value[p]``.

    The return of the plan plus the discounted value the model predicts for
    the state it ends in (``predictions['value'] float32 [P]``, see
    :mod:`wm_core.api.contracts`): the horizon no longer cuts the future off.
    Use the discount the model's values were learned with.  Raises
    :class:`~wm_core.api.contracts.ContractError` for predictions without a
    ``value`` of shape ``[P]``.
    """

    def __call__(self, predictions: Predictions) -> np.ndarray:
        rewards = _rewards(predictions)
        if "value" not in predictions:
            raise ContractError(
                f"predictions have no 'value' (keys: {sorted(predictions)}); DiscountedReturnWithValue "
                "needs a world model that predicts the value of the state a plan ends in (e.g. tdmpc); "
                "use DiscountedReward for the others"
            )
        values = np.asarray(predictions["value"], np.float64)
        if values.shape != rewards.shape[:1]:
            raise ContractError(
                f"predictions['value'] must be [proposals] = {rewards.shape[:1]}, got shape {values.shape}"
            )
        tail = self.discount ** rewards.shape[1] * values
        return (super().__call__(predictions).astype(np.float64) + tail).astype(np.float32)

    def __repr__(self) -> str:
        return f"DiscountedReturnWithValue(discount={self.discount})"
