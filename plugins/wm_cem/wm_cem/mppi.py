"""Model-predictive path integral (MPPI) style update: score-weighted refit."""

from __future__ import annotations

from typing import Any

import gin
import numpy as np

from wm_core.api.contracts import ObjectiveFn, ObserveFn, PredictBatchFn, PredictFn, ProposeFn, ResetFn

from wm_cem.distributions import Distribution
from wm_cem.search import PopulationSearch

__all__ = ["MPPI", "exponential_weights"]


def exponential_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(scores / (temperature * std(scores)))``, ``float64 [K]`` summing to one.

    The temperature is relative to the spread of the scores, so the weights
    do not change when the objective is rescaled; equal scores weigh equally.
    """
    scores = np.asarray(scores, np.float64)
    spread = scores.std()
    if not spread > 0.0:
        return np.full(len(scores), 1.0 / len(scores))
    weights = np.exp((scores - scores.max()) / (temperature * spread))
    return weights / weights.sum()


@gin.configurable(module="mppi")
class MPPI(PopulationSearch):
    """MPPI: the new mean is the softmax-weighted average of the proposals.

    Weights are ``exp(score / (temperature * spread))``, ``spread`` the
    standard deviation of the elites' scores, normalised to sum to one over
    the top ``fraction`` of the proposals (``fraction=1``: all of them), so
    the mean is a proper weighted average — never shrunk towards zero.
    Measuring the temperature in units of the spread makes it work for
    objectives of any scale (returns in the tens or in the thousands).  The
    stdev (Gaussian) is the weighted stdev around the new mean; for
    ``Discrete`` actions the categorical becomes the weighted action
    frequencies.  Small temperatures approach "take the best proposal" (and
    collapse the stdev early), large ones the plain average of the elites,
    i.e. CEM.

    :param temperature: > 0, in units of the standard deviation of the
        elites' scores (1: an elite one deviation better weighs e times more).
    Other arguments: see :class:`wm_cem.search.PopulationSearch`.
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        observe_fn: ObserveFn,
        reset_fn: ResetFn,
        task: Any,
        objective_fn: ObjectiveFn,
        horizon: int = 12,
        iterations: int = 10,
        proposals: int = 1000,
        fraction: float = 0.1,
        temperature: float = 1.0,
        warm_start: bool = False,
        min_stdev: float = 0.0,
        seed: int | None = None,
        plan_predict_fn: PredictFn | None = None,
        predict_batch_fn: PredictBatchFn | None = None,
        plan_predict_batch_fn: PredictBatchFn | None = None,
        propose_fn: ProposeFn | None = None,
        policy_proposals: int = 0,
    ):
        super().__init__(
            predict_fn, observe_fn, reset_fn, task, objective_fn,
            horizon=horizon, iterations=iterations, proposals=proposals,
            fraction=fraction, warm_start=warm_start, min_stdev=min_stdev, seed=seed,
            plan_predict_fn=plan_predict_fn, predict_batch_fn=predict_batch_fn,
            plan_predict_batch_fn=plan_predict_batch_fn, propose_fn=propose_fn,
            policy_proposals=policy_proposals,
        )
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def refit(
        self, distribution: Distribution, elites: np.ndarray, scores: np.ndarray
    ) -> Distribution:
        return distribution.fit(elites, exponential_weights(scores, self.temperature))
