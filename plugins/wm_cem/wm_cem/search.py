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

Several environments at once: ``planner.batched(num_slots)`` (what
:func:`wm_core.planning.planners.batch_planner` uses) is a :class:`BatchedSearch`,
which keeps one copy of the planner per environment slot — its model state,
distribution, random generator and (iCEM) kept elites — and runs the same
loop for all deciding slots together: each iteration is ONE
``predict_batch_fn`` call on ``[N, P, H, A]`` proposals (the model's batched
form, or :func:`wm_core.api.contracts.batched` of ``predict_fn``, which loops).
Each slot samples from its own generator and is scored and refitted on its
own, so slot ``s`` decides exactly what a separate planner would.
"""

from __future__ import annotations

from typing import Any, Callable, Self, Sequence

import numpy as np

from wm_core.api.checks import check_decide_args, check_predictions, check_scores
from wm_core.api.contracts import (
    ObjectiveFn,
    ObserveFn,
    PredictBatchFn,
    PredictFn,
    Predictions,
    ProposeFn,
    ResetFn,
    State,
    WorldModel,
    batched,
)
from wm_core.planning.planners import ModelPlanner, slot_copies

from wm_cem.distributions import Distribution, initial_distribution

__all__ = ["PopulationSearch", "BatchedSearch", "search", "elite_count", "top_indices"]

Decision = tuple[np.ndarray, Predictions]

#: The world model functions :meth:`PopulationSearch.over` wires, where the model has them.
_MODEL_FUNCTIONS = ("predict_fn", "observe_fn", "reset_fn", "predict_batch_fn", "propose_fn")


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
        this seed and the episode's, see :class:`wm_core.planning.planners.Planner`).
    :param plan_predict_fn: optional; called once per decision with the plan
        it acts on (the refitted mean, or per-step mode, ``[1, H, A]``) to make
        the returned prediction — e.g. a ``predict_fn`` that also decodes
        frames, for open-loop videos, without decoding every proposal.
    :param predict_batch_fn: optional; the model's batched form
        (``[N, P, H, A]`` actions, ``N`` states, see
        :mod:`wm_core.api.contracts`), used when deciding for several
        environments at once; default ``batched(predict_fn)``, a loop.
    :param plan_predict_batch_fn: optional; the batched form of
        ``plan_predict_fn`` (default: ``batched(plan_predict_fn)``).
    :param propose_fn: optional; the world model's ``propose_fn`` (see
        :mod:`wm_core.api.contracts`), e.g. a learned policy prior.
    :param policy_proposals: ``M >= 0``: every iteration of a decision
        evaluates, beside its ``P`` proposals, the same ``M`` sequences drawn
        once per decision from ``propose_fn`` (which must then be given).

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
        predict_batch_fn: PredictBatchFn | None = None,
        plan_predict_batch_fn: PredictBatchFn | None = None,
        propose_fn: ProposeFn | None = None,
        policy_proposals: int = 0,
    ):
        super().__init__(task, predict_fn, observe_fn, reset_fn, objective_fn, seed)
        if isinstance(policy_proposals, bool) or not isinstance(policy_proposals, (int, np.integer)) or (
            policy_proposals < 0
        ):
            raise ValueError(f"policy_proposals must be an integer >= 0, got {policy_proposals!r}")
        if policy_proposals and propose_fn is None:
            raise ValueError(
                f"{type(self).__name__} is configured with policy_proposals={policy_proposals} but was "
                "given no propose_fn: its world model must offer action proposals (propose_fn, e.g. "
                "tdmpc's policy prior); set policy_proposals=0 for a model without them"
            )
        self.propose_fn = propose_fn
        self.policy_proposals = int(policy_proposals)
        self.plan_predict_fn = plan_predict_fn
        self.predict_batch_fn = predict_batch_fn
        self.plan_predict_batch_fn = plan_predict_batch_fn
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

    @classmethod
    def over(cls, world_model: WorldModel, task: Any, objective_fn: ObjectiveFn, **settings: Any) -> Self:
        """This planner searching ``world_model``'s predictions (an object with
        the contract's functions as attributes): wired to its
        ``predict_fn``, ``observe_fn`` and ``reset_fn``, and to its
        ``predict_batch_fn`` and ``propose_fn`` where it has them.
        ``settings`` are the constructor's other keyword arguments; one that
        names a model function overrides the wiring (``predict_batch_fn=None``:
        several environments plan with ``batched(predict_fn)``)."""
        wired = {
            name: getattr(world_model, name)
            for name in _MODEL_FUNCTIONS
            if getattr(world_model, name, None) is not None
        }
        return cls(task=task, objective_fn=objective_fn, **{**wired, **settings})

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

        def predict_one(actions: np.ndarray, states: Sequence[State]) -> Predictions:
            return {key: value[None] for key, value in self.predict(actions[0], states[0]).items()}

        plan_predict = None
        if self.plan_predict_fn is not None:
            def plan_predict(plans: np.ndarray, states: Sequence[State]) -> Predictions:
                one = self.predict(plans[0], states[0], self.plan_predict_fn)
                return {key: value[None] for key, value in one.items()}

        return search([self], [state], predict_one, plan_predict)[0]

    def batched(self, num_slots: int) -> "BatchedSearch | None":
        """This planner for ``num_slots`` environments: a :class:`BatchedSearch`
        (``None`` — per-slot copies, see :func:`wm_core.planning.planners.batch_planner`
        — for a subclass that replaces :meth:`plan`)."""
        if type(self).plan is not PopulationSearch.plan:
            return None
        return BatchedSearch(self, num_slots)

    def start(self) -> Distribution:
        """This decision's first distribution (warm-started or initial)."""
        if self.warm_start and self.solution is not None:
            return self.solution.shifted(self.initial)
        return self.initial

    def prior_proposals(self, state: State) -> np.ndarray | None:
        """This decision's ``policy_proposals`` sequences from ``propose_fn``
        (``float32 [M, H, A]``, seeded from the planner's generator), or
        ``None`` without them."""
        if not self.policy_proposals:
            return None
        seed = int(self.rng.integers(2**31))
        proposals = np.asarray(self.propose_fn(state, self.horizon, self.policy_proposals, seed=seed))
        expected = (self.policy_proposals, self.horizon, self.action_dim)
        if proposals.shape != expected or not np.all(np.isfinite(proposals)):
            raise ValueError(
                f"propose_fn returned {proposals.dtype} {proposals.shape}, expected finite float32 {expected}"
            )
        return proposals.astype(np.float32, copy=False)

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
        return check_predictions(predictions, actions.shape[0], actions.shape[1], "predict_fn")

    def predict_batch(
        self, actions: np.ndarray, states: Sequence[State], plan: bool = False
    ) -> Predictions:
        """The batched form (``predict_batch_fn``, or ``batched(predict_fn)``;
        ``plan``: of ``plan_predict_fn``) on ``actions [N, P, H, A]``, checked
        against ``[N, P, H]``."""
        if plan:
            given, where = self.plan_predict_batch_fn, "plan_predict_batch_fn"
            function = given or batched(self.plan_predict_fn)
        else:
            given, where = self.predict_batch_fn, "predict_batch_fn"
            function = given or batched(self.predict_fn)
        if given is None:
            where = f"batched({where.replace('_batch', '')})"
        count, proposals, horizon = actions.shape[:3]
        return check_predictions(function(actions, states), proposals, horizon, where, batch=count)

    def score(self, predictions: Predictions, proposals: int) -> np.ndarray:
        """``objective_fn(predictions)`` checked to be ``[P]`` and finite."""
        return check_scores(self.objective_fn(predictions), proposals, "objective_fn")


def _stacked(populations: Sequence[np.ndarray]) -> np.ndarray:
    """``[N, P, H, A]`` from per-slot populations, shorter ones padded with
    copies of their last proposal (the padding's predictions are dropped)."""
    size = max(len(population) for population in populations)
    return np.stack([
        population if len(population) == size
        else np.concatenate([population, np.repeat(population[-1:], size - len(population), axis=0)])
        for population in populations
    ])


def search(
    planners: Sequence[PopulationSearch],
    states: Sequence[State],
    predict: Callable[[np.ndarray, Sequence[State]], Predictions],
    plan_predict: Callable[[np.ndarray, Sequence[State]], Predictions] | None = None,
) -> list[Decision]:
    """The search loop for ``N`` planners (one per environment slot, same
    settings) from their model ``states``; one ``predict`` call per iteration.

    ``predict(actions [N, P, H, A], states)`` returns checked ``[N, P, H]``
    predictions; ``plan_predict`` (optional) the same for the ``[N, 1, H, A]``
    plans acted on.  Each planner samples its population (its own
    generator), scores its row, picks its elites and refits on its own, and
    keeps its refitted distribution as ``solution``.  Returns one ``(action,
    prediction)`` per planner.  A planner with ``policy_proposals`` draws
    them once per decision (:meth:`PopulationSearch.prior_proposals`) and
    appends them to its population at every iteration.
    """
    distributions = [planner.start() for planner in planners]
    priors = [planner.prior_proposals(state) for planner, state in zip(planners, states)]
    for iteration in range(planners[0].iterations):
        populations = [
            planner.population(distribution, iteration) if prior is None
            else np.concatenate([planner.population(distribution, iteration), prior])
            for planner, distribution, prior in zip(planners, distributions, priors)
        ]
        predictions = predict(_stacked(populations), states)
        best = []
        for row, (planner, population) in enumerate(zip(planners, populations)):
            own = {key: value[row, : len(population)] for key, value in predictions.items()}
            scores = planner.score(own, len(population))
            elites = top_indices(scores, min(planner.elite_count, len(population)))
            distributions[row] = planner.refit(distributions[row], population[elites], scores[elites])
            best.append(int(elites[0]))
    for planner, distribution in zip(planners, distributions):
        planner.solution = distribution
    if plan_predict is None:
        chosen = [
            {key: value[row, index].copy() for key, value in predictions.items()}
            for row, index in enumerate(best)
        ]
    else:
        plans = plan_predict(np.stack([distribution.plan()[None] for distribution in distributions]), states)
        chosen = [{key: value[row, 0] for key, value in plans.items()} for row in range(len(planners))]
    return [
        (distribution.first_action(), prediction)
        for distribution, prediction in zip(distributions, chosen)
    ]


class BatchedSearch:
    """A search planner deciding for ``num_slots`` environment slots at once
    (a :class:`wm_core.api.contracts.BatchPlanner`).

    ``planners[slot]`` is slot ``slot``'s copy of the planner (made by
    :func:`wm_core.planning.planners.slot_copies`: they share the model functions),
    with its own model state, warm start, generator and kept elites.
    :meth:`decide` observes each deciding slot's newest row with
    ``observe_fn``, then runs :func:`search` over them: one
    ``predict_batch_fn`` call per iteration (and, with ``plan_predict_fn``,
    one more per decision).
    """

    def __init__(self, planner: PopulationSearch, num_slots: int):
        self.planners: list[PopulationSearch] = slot_copies(planner, num_slots)
        self.action_dim = planner.action_dim

    @property
    def num_slots(self) -> int:
        return len(self.planners)

    def reset_slot(self, slot: int, **kwargs: Any) -> None:
        self.planners[slot].reset(**kwargs)

    def decide(
        self,
        slots: Sequence[int],
        prev_images: np.ndarray,
        prev_actions: np.ndarray,
        prev_rewards: np.ndarray,
    ) -> tuple[np.ndarray, list[Predictions]]:
        slots, prev_images, prev_actions, prev_rewards = check_decide_args(
            slots, prev_images, prev_actions, prev_rewards, self.num_slots, self.action_dim,
            "BatchedSearch.decide",
        )
        if not slots:
            return np.zeros((0, self.action_dim), np.float32), []
        deciding = [self.planners[slot] for slot in slots]
        for row, planner in enumerate(deciding):
            planner.state = planner.observe_fn(
                prev_images[row : row + 1], prev_actions[row : row + 1], prev_rewards[row : row + 1],
                planner.state,
            )
        lead = deciding[0]
        plan_predict = None
        if lead.plan_predict_fn is not None or lead.plan_predict_batch_fn is not None:
            def plan_predict(plans, states):
                return lead.predict_batch(plans, states, plan=True)
        decisions = search(deciding, [planner.state for planner in deciding], lead.predict_batch, plan_predict)
        actions = np.stack([np.asarray(action, np.float32) for action, _ in decisions])
        return actions, [prediction for _, prediction in decisions]
