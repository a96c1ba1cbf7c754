"""The iteration loop every population-based search planner shares.

Each decision runs ``iterations`` rounds of: sample a population of
proposals ``float32 [P, H, A]`` from the current distribution, predict
their outcomes in ONE ``predict_fn`` call, score them with ``objective_fn``
(``float32 [P]``), pick the ``elite_count`` best (the elites) and refit the
distribution.  Subclasses supply only their update rule (:meth:`refit`) and,
if they need to, their own population (:meth:`population`).

The planner acts with the refitted distribution's first action (the mean of
a Gaussian, the mode of a categorical), not with the best sample.  The
prediction it returns is the world model's prediction for the best-scoring
proposal of the last iteration (``dict`` of ``[H, ...]`` arrays), taken from
that iteration's ``predict_fn`` call — no extra prediction is made.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from wm_core.contracts import (
    ContractError,
    ObjectiveFn,
    ObserveFn,
    PredictFn,
    Predictions,
    ResetFn,
    State,
)
from wm_core.planners import ModelPlanner

from wm_cem.distributions import Distribution, initial_distribution

__all__ = ["PopulationSearch", "elite_count", "top_indices"]

Decision = tuple[np.ndarray, Predictions]


def elite_count(proposals: int, fraction: float) -> int:
    """``fraction * proposals`` rounded half up; raises if that leaves no elite."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    count = int(np.floor(fraction * proposals + 0.5))
    if count < 1:
        raise ValueError(
            f"fraction={fraction} of proposals={proposals} leaves {count} elites "
            f"({fraction * proposals:g} rounded); raise fraction or proposals so "
            "that fraction * proposals >= 0.5"
        )
    return count


def top_indices(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest ``scores``, best first."""
    if count < scores.size:
        candidates = np.argpartition(scores, -count)[-count:]
    else:
        candidates = np.arange(scores.size)
    return candidates[np.argsort(scores[candidates])[::-1]]


def _require_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class PopulationSearch(ModelPlanner):
    """Base of CEM, MPPI and iCEM: validation and the iteration loop.

    :param horizon: ``H``, steps per proposal (>= 1).
    :param iterations: refits per decision (>= 1).
    :param proposals: ``P``, proposals per iteration (>= 1), all predicted in
        one ``predict_fn`` call.
    :param fraction: share of proposals kept as elites;
        ``fraction * proposals`` rounded half up must be >= 1.
    :param warm_start: start each decision from the previous decision's
        distribution shifted one step on (see ``Distribution.shifted``),
        instead of from the initial one.
    :param min_stdev: floor on a Gaussian's refitted stdev (action units).
    :param seed: seeds the planner's own sampling (restarted every episode from
        this seed and the episode's, see :class:`wm_core.planners.Planner`).
    :param plan_predict_fn: optional; called once per decision with the plan
        it acts on (the refitted mean, or per-step mode, ``[1, H, A]``) to make
        the returned prediction — e.g. a ``predict_fn`` that also decodes
        frames, for open-loop videos, without decoding every proposal.

    The distribution family follows ``task.action_space``: per-step Gaussians
    clipped to the bounds for ``Box``, per-step categoricals over one-hot
    vectors for ``Discrete``.

    Attributes: ``initial`` (the distribution a cold decision starts from),
    ``solution`` (the last decision's refitted distribution, ``None`` after
    :meth:`reset`), ``elite_count``.
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
        warm_start: bool = False,
        min_stdev: float = 0.0,
        seed: int | None = None,
        plan_predict_fn: PredictFn | None = None,
    ):
        super().__init__(task, predict_fn, observe_fn, reset_fn, objective_fn, seed)
        self.plan_predict_fn = plan_predict_fn
        self.horizon = _require_positive_int("horizon", horizon)
        self.iterations = _require_positive_int("iterations", iterations)
        self.proposals = _require_positive_int("proposals", proposals)
        self.elite_count = elite_count(self.proposals, fraction)
        self.fraction = float(fraction)
        if not min_stdev >= 0.0:
            raise ValueError(f"min_stdev must be >= 0, got {min_stdev}")
        self.warm_start = bool(warm_start)
        self.initial = initial_distribution(self.action_space, self.horizon, float(min_stdev))
        self.solution: Distribution | None = None

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.solution = None

    # -- the loop ---------------------------------------------------------

    def plan(self, state: State) -> Decision:
        """Search from ``state``; return ``(action float32 [A], prediction)``.

        ``prediction`` is a ``dict`` of ``[H, ...]`` arrays: the last
        iteration's prediction for its best-scoring proposal, or with
        ``plan_predict_fn`` that function's prediction for the plan acted on.
        """
        distribution = self.start()
        for iteration in range(self.iterations):
            actions = self.population(distribution, iteration)
            predictions = self.predict(actions, state)
            scores = self.score(predictions, len(actions))
            elites = top_indices(scores, min(self.elite_count, len(actions)))
            distribution = self.refit(distribution, actions[elites], scores[elites])
        self.solution = distribution
        if self.plan_predict_fn is None:
            best = elites[0]
            prediction = {key: value[best].copy() for key, value in predictions.items()}
        else:
            plan = self.predict(distribution.plan()[None], state, self.plan_predict_fn)
            prediction = {key: value[0] for key, value in plan.items()}
        return distribution.first_action(), prediction

    def start(self) -> Distribution:
        """This decision's first distribution (warm-started or initial)."""
        if self.warm_start and self.solution is not None:
            return self.solution.shifted(self.initial)
        return self.initial

    # -- what subclasses change --------------------------------------------

    def population(self, distribution: Distribution, iteration: int) -> np.ndarray:
        """Proposals to evaluate, ``float32 [P_i, H, A]``; default ``P`` samples."""
        return distribution.sample(self.rng, self.proposals)

    def refit(
        self, distribution: Distribution, elites: np.ndarray, scores: np.ndarray
    ) -> Distribution:
        """The next distribution from ``elites [K, H, A]`` and their ``scores [K]`` (best first)."""
        raise NotImplementedError

    # -- checked calls into the world model and objective --------------------

    def predict(
        self, actions: np.ndarray, state: State, predict_fn: PredictFn | None = None
    ) -> Predictions:
        """``predict_fn(actions, state)`` (default: the planner's), checked against ``[P, H]``."""
        predictions = (predict_fn or self.predict_fn)(actions, state)
        expected = actions.shape[:2]
        if not isinstance(predictions, Mapping) or "reward" not in predictions:
            keys = sorted(predictions) if isinstance(predictions, Mapping) else type(predictions).__name__
            raise ContractError(
                f"predict_fn must return a dict with 'reward' [P, H]; got {keys}"
            )
        predictions = {key: np.asarray(value) for key, value in predictions.items()}
        reward_shape = predictions["reward"].shape
        if reward_shape != expected:
            raise ContractError(
                f"predict_fn returned reward of shape {reward_shape}, expected "
                f"[proposals, horizon] = {expected}"
            )
        for key, value in predictions.items():
            if value.shape[:2] != expected:
                raise ContractError(
                    f"predict_fn returned {key!r} of shape {value.shape}, expected "
                    f"leading dims [proposals, horizon] = {expected}"
                )
        return predictions

    def score(self, predictions: Predictions, proposals: int) -> np.ndarray:
        """``objective_fn(predictions)`` checked to be ``[P]`` and finite."""
        scores = np.asarray(self.objective_fn(predictions))
        if scores.shape != (proposals,):
            raise ContractError(
                f"objective_fn returned scores of shape {scores.shape}, expected "
                f"[proposals] = ({proposals},)"
            )
        invalid = ~np.isfinite(scores)
        if invalid.any():
            raise ContractError(
                f"objective_fn returned NaN or infinite scores for {int(invalid.sum())} of {proposals} "
                f"proposals (first at index {int(np.argmax(invalid))})"
            )
        return scores.astype(np.float32, copy=False)
