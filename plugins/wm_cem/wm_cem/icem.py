"""iCEM (Pinneri et al. 2020): CEM with colored noise and kept elites."""

from __future__ import annotations

from typing import Any

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.contracts import ObjectiveFn, ObserveFn, PredictBatchFn, PredictFn, ProposeFn, ResetFn

from wm_cem.distributions import Gaussian
from wm_cem.noise import colored_noise
from wm_cem.search import PopulationSearch

__all__ = ["ICEM"]


@gin.configurable(module="icem")
class ICEM(PopulationSearch):
    """Improved CEM for continuous (``Box``) actions.

    Differences from :class:`wm_cem.cem.CEM`, after Pinneri et al. 2020
    ("Sample-efficient Cross-Entropy Method for Real-time Planning"):

    * samples are ``clip(mean + stdev * noise)`` with colored noise of
      exponent ``beta`` along the horizon (:func:`wm_cem.noise.colored_noise`);
    * population decay: iteration ``i`` evaluates
      ``min(P, max(round(P * population_decay**-i), 2K))`` proposals
      (``K`` elites; ``population_decay=1`` keeps ``P``);
    * elite carry-over: the best ``round(keep_elites * K)`` elites of one
      iteration join the next iteration's population; at the first iteration
      of a decision they come from the previous decision, shifted one step on
      (last step sampled from the initial distribution);
    * the mean of the distribution joins the last iteration's population;
    * momentum: the refit is ``momentum * old + (1 - momentum) * elite fit``;
    * ``warm_start`` defaults to ``True`` (shifted mean, stdev reset).

    It acts with the refitted mean's first action, like every planner here.
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
        beta: float = 2.0,
        population_decay: float = 1.25,
        keep_elites: float = 0.3,
        momentum: float = 0.1,
        warm_start: bool = True,
        min_stdev: float = 0.0,
        seed: int | None = None,
        plan_predict_fn: PredictFn | None = None,
        predict_batch_fn: PredictBatchFn | None = None,
        plan_predict_batch_fn: PredictBatchFn | None = None,
        propose_fn: ProposeFn | None = None,
        policy_proposals: int = 0,
    ):
        if spaces.is_discrete(task.action_space):
            raise TypeError(
                f"ICEM needs a Box action space (it samples colored noise); task "
                f"{getattr(task, 'name', task)!r} has {task.action_space!r}. Use CEM."
            )
        super().__init__(
            predict_fn, observe_fn, reset_fn, task, objective_fn,
            horizon=horizon, iterations=iterations, proposals=proposals,
            fraction=fraction, warm_start=warm_start, min_stdev=min_stdev, seed=seed,
            plan_predict_fn=plan_predict_fn, predict_batch_fn=predict_batch_fn,
            plan_predict_batch_fn=plan_predict_batch_fn, propose_fn=propose_fn,
            policy_proposals=policy_proposals,
        )
        if not beta >= 0.0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not population_decay >= 1.0:
            raise ValueError(f"population_decay must be >= 1, got {population_decay}")
        if not 0.0 <= keep_elites <= 1.0:
            raise ValueError(f"keep_elites must be in [0, 1], got {keep_elites}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.beta = float(beta)
        self.population_decay = float(population_decay)
        self.kept_count = int(round(keep_elites * self.elite_count))
        self.momentum = float(momentum)
        self.kept_elites: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.kept_elites = None

    def population_size(self, iteration: int) -> int:
        """Proposals sampled and evaluated at ``iteration``."""
        decayed = int(round(self.proposals * self.population_decay**-iteration))
        return min(self.proposals, max(decayed, 2 * self.elite_count))

    def population(self, distribution: Gaussian, iteration: int) -> np.ndarray:
        carried = self._carried_elites(iteration)
        if iteration == self.iterations - 1:
            carried.append(distribution.mean[None])
        extra = sum(len(part) for part in carried)
        count = max(self.population_size(iteration) - extra, 0)
        noise = colored_noise(self.rng, self.beta, count, self.horizon, self.action_dim)
        return np.concatenate([distribution.with_noise(noise), *carried])

    def _carried_elites(self, iteration: int) -> list[np.ndarray]:
        if self.kept_elites is None or self.kept_count == 0:
            return []
        if iteration > 0:
            return [self.kept_elites]
        if not self.warm_start:
            return []
        last_step = self.initial.sample(self.rng, len(self.kept_elites))[:, -1:]
        return [np.concatenate([self.kept_elites[:, 1:], last_step], axis=1)]

    def refit(
        self, distribution: Gaussian, elites: np.ndarray, scores: np.ndarray
    ) -> Gaussian:
        self.kept_elites = elites[: self.kept_count]
        fitted = distribution.fit(elites, np.ones(len(elites), np.float32))
        return distribution.blend(fitted, self.momentum)
