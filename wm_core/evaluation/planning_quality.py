"""Planning quality: does a world model rank action sequences as the real environment does?

A planner never looks at a world model's predictions directly: it asks the
model to *score* candidate action sequences and acts on the best.  So the
measure of a model that matters to a planner is how well its scores order
sequences compared with their true outcomes, and how much true return is
lost by acting on its favourite.  :func:`evaluate_planning` measures both on
states of held-out episodes, against the ground truth of the task's own
simulator (:class:`~wm_core.models.oracle.OracleWorldModel`).  See
``docs/evaluation.md`` for how to read the figures.

States
------
A *state* is a pair (episode file, row ``t``) from a directory of episode
files (:mod:`wm_core.data.npz`; episode format in :mod:`wm_core.api.contracts`).
``num_states`` of them are drawn uniformly without replacement (seeded by
``seed``) among every row ``t`` with ``0 <= t <= T - H`` of every episode of
``T`` steps, ``H`` being the horizon, so that the recorded continuation,
rows ``t + 1 .. t + H``, exists.  At a state:

* the learned model's state is ``observe_fn(rows 0..t, reset_fn(seed=s,
  episode_index=i))``: the episode up to and including row ``t``, from the
  reset frame on (rows are handed over in one call per state, continuing from
  the previous state of the same episode, which the world-model contract
  makes equivalent to one row at a time);
* the ground truth is an oracle reset with the episode's seed ``s`` that
  replays the actions of rows ``1..t``; every replayed reward is checked
  against the recorded one, so the simulator is provably in the state of row
  ``t`` (a mismatch is an :class:`EvaluationError` naming the file).

The seed ``s`` is the episode's ``seed`` column (``int64 [T+1]``, written by
:func:`wm_core.rollout.simulate.simulate`), or, for files written before that column
existed, ``first_seed + i`` for the ``i``-th file of the directory in save
(name) order — how ``train_eval_loop`` seeds a phase's episodes.

Sequences
---------
Each state scores ``K = num_sequences`` action sequences ``float32 [K, H, A]``
(:func:`draw_sequences`, seeded by ``(seed, file index, t)``):

* sequence 0: the recorded continuation, ``action[t+1 : t+1+H]`` — for an
  evaluation episode, what the planner did;
* sequences ``1 .. n`` with ``n = ceil((K - 1) / 2)``: the recorded
  continuation perturbed at evenly spaced noise levels ``l = 1/n, 2/n, ...,
  1``: ``Box`` actions get Gaussian noise of standard deviation ``l`` times
  half the action range, clipped to the bounds; ``Discrete`` actions are each
  replaced by a uniformly random action with probability ``l``;
* the other ``floor((K - 1) / 2)``: uniformly random in the action space.

The near-recorded sequences are what a search planner weighs in its late
iterations (fine distinctions around a good plan), the uniform ones what it
weighs first (coarse distinctions); both matter.

Scores
------
Returns are ``objective(predictions)`` (default
:class:`~wm_core.planning.objectives.DiscountedReward`, discount 0.99): predicted
returns from ``predict_fn(sequences, model state)``, true returns from the
oracle's predictions (a sequence that ends the episode early, by termination,
earns 0 after it).  Alignment as in :mod:`wm_core.api.contracts`: prediction row
``j`` made after observing row ``t`` refers to episode row ``t + 1 + j``, so
the figure ``..._h{k}`` (``k = j + 1`` steps ahead, ``1 <= k <= H``)
compares prediction row ``k - 1`` with episode row ``t + k``.  Per state
(:class:`StateQuality`):

* ``rank_correlation``: Spearman's rho between predicted and true returns
  (:func:`spearman`, average ranks for ties); ``NaN`` when the true returns
  are all equal (nothing to rank), ``0`` when the model predicts one return
  for every sequence while the truth differs (no ranking information);
* ``regret``: best true return among the ``K`` minus the true return of the
  model's choice, its highest-predicted sequence (:func:`regret`; on tied
  highest predictions, the mean true return of the tied ones — a planner
  breaking ties at random); ``>= 0``, ``0`` is perfect;
* ``normalized_regret``: ``regret / (max - min of the true returns)``, in
  ``[0, 1]`` (``1``: the model chose the worst sequence); ``NaN`` when the
  true returns are all equal;
* ``best_true_return``, ``chosen_true_return``, ``recorded_true_return``
  (sequence 0's);
* ``reward_abs_error_h{k}``, ``reward_squared_error_h{k}``: predicted reward
  of the recorded continuation ``k`` steps ahead against the episode's
  recorded ``reward[t + k]``;
* ``frame_squared_error_h{k}`` (only when the model predicts ``image``, from
  ``predict_fn`` or else from :attr:`WorldModelFns.frame_predict_fn`): mean
  over pixels and channels of the squared difference, in ``[0, 1]`` pixel
  units, between the predicted frame of the recorded continuation ``k`` steps
  ahead and ``image[t + k]`` (resized with nearest neighbours if the model
  predicts another size, as the TensorBoard open-loop videos are).

:class:`PlanningQuality` holds the per-state figures and their ``mean`` and
``median`` over states (``NaN`` entries left out; the mean of
``reward_squared_error_h{k}`` is the mean squared error ``k`` steps ahead).

Output
------
:func:`write_csv` writes one row per state and then a ``mean`` and a
``median`` row (column ``row_type``), atomically; ``wm-run evaluate`` writes
it to ``<run_dir>/evaluation/planning_quality.csv``.  :func:`write_summaries`
writes every aggregate as a TensorBoard scalar
``planning_quality/<figure>/<mean|median>``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from typing import Any, Sequence

import gymnasium
import numpy as np

from wm_core.api import spaces
from wm_core.api.checks import check_int_at_least
from wm_core.data import npz
from wm_core.reporting import summaries
from wm_core.api.contracts import (
    ContractError,
    Episode,
    ObjectiveFn,
    ObserveFn,
    PredictFn,
    Predictions,
    ResetFn,
    State,
)
from wm_core.planning.objectives import DiscountedReward
from wm_core.models.oracle import OracleWorldModel, rewards_differ
from wm_core.data.atomic import write_text_atomically
from wm_core.reporting.visualize import open_loop_frames

__all__ = [
    "EvaluationError",
    "WorldModelFns",
    "StateQuality",
    "PlanningQuality",
    "evaluate_planning",
    "evaluate_planner",
    "find_world_model",
    "choose_states",
    "draw_sequences",
    "average_ranks",
    "spearman",
    "regret",
    "write_csv",
    "write_summaries",
    "STATISTICS",
]

STATISTICS = ("mean", "median")
_FUNCTIONS = ("reset_fn", "observe_fn", "predict_fn")


class EvaluationError(ValueError):
    """The evaluation cannot run as asked: no usable episodes, a simulator that
    cannot be restored, an episode that does not replay, ..."""


# --------------------------------------------------------------------------- the model under test


@dataclasses.dataclass(frozen=True)
class WorldModelFns:
    """The world model under evaluation, in the functional form of the contract.

    ``frame_predict_fn``: optional ``predict_fn`` that also returns ``image``,
    called once per state on the recorded continuation (``[1, H, A]``) when
    ``predict_fn`` predicts no frames — e.g. a search planner's
    ``plan_predict_fn``.
    """

    reset_fn: ResetFn
    observe_fn: ObserveFn
    predict_fn: PredictFn
    frame_predict_fn: PredictFn | None = None

    @classmethod
    def of(cls, source: Any) -> WorldModelFns:
        """The functions of a :class:`~wm_core.api.contracts.WorldModel` or of a
        model-based planner (see :func:`find_world_model`)."""
        holder = find_world_model(source)
        return cls(
            holder.reset_fn, holder.observe_fn, holder.predict_fn,
            getattr(holder, "plan_predict_fn", None),
        )


def find_world_model(source: Any) -> Any:
    """``source``, or the first planner down its ``base_planner`` chain (the
    exploration wrappers), that has ``reset_fn``, ``observe_fn`` and
    ``predict_fn``; :class:`EvaluationError` if there is none."""
    holder = source
    while holder is not None:
        if all(callable(getattr(holder, name, None)) for name in _FUNCTIONS):
            return holder
        holder = getattr(holder, "base_planner", None)
    raise EvaluationError(
        f"{type(source).__name__} has no world model to evaluate: planning quality needs "
        f"{', '.join(_FUNCTIONS)} (a WorldModel, or a model-based planner such as CEM, "
        "possibly inside exploration wrappers)"
    )


# --------------------------------------------------------------------------- ranking figures


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``float64 [N]`` ranks ``1..N`` of ``values`` (``[N]``); tied values
    share the mean of the ranks they span (``[1, 3, 3] -> [1, 2.5, 2.5]``)."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(values))
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]  # mean of ranks starts+1 .. ends
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (``[N]``, finite, ``N >= 2``):
    the Pearson correlation of their :func:`average_ranks`.  ``NaN`` when
    either is constant (the correlation is undefined)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman needs two [N] arrays with N >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman needs finite values")
    rank_x, rank_y = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    norm = math.sqrt(float(rank_x @ rank_x) * float(rank_y @ rank_y))
    return float(rank_x @ rank_y / norm) if norm > 0 else math.nan


def regret(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float:
    """``max(true)`` minus the true value of the highest ``predicted`` entry
    (``[N]`` each); on tied highest predictions, minus the mean true value of
    the tied entries (the expected regret of breaking the tie at random)."""
    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if predicted.shape != true.shape or predicted.ndim != 1 or not len(true):
        raise ValueError(f"regret needs two [N] arrays with N >= 1, got {predicted.shape} and {true.shape}")
    chosen = true[predicted == predicted.max()].mean()
    return float(true.max() - chosen)


# --------------------------------------------------------------------------- states and sequences


def choose_states(
    steps: Sequence[int], num_states: int, horizon: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """``(episode index, row t)`` pairs, sorted: ``min(num_states, available)``
    drawn uniformly without replacement among the rows ``0 <= t <= T - horizon``
    of episodes of ``steps[i] = T`` steps."""
    counts = np.maximum(np.asarray(steps, np.int64) - horizon + 1, 0)
    ends = np.cumsum(counts)
    available = int(ends[-1]) if len(ends) else 0
    picks = np.sort(rng.choice(available, size=min(num_states, available), replace=False))
    episodes = np.searchsorted(ends, picks, side="right")
    rows = picks - (ends[episodes] - counts[episodes])
    return [(int(e), int(t)) for e, t in zip(episodes, rows)]


def draw_sequences(
    space: gymnasium.Space, recorded: np.ndarray, num_sequences: int, rng: np.random.Generator
) -> np.ndarray:
    """``float32 [K, H, A]`` action vectors: ``recorded`` (``[H, A]``) first,
    then perturbed copies of it, then uniformly random ones (module docs)."""
    recorded = np.asarray(recorded, np.float32)
    if num_sequences < 2:
        raise ValueError(f"num_sequences must be >= 2, got {num_sequences}")
    perturbed = num_sequences // 2  # ceil((K - 1) / 2)
    levels = np.arange(1, perturbed + 1) / perturbed
    uniform = spaces.sample_action_vectors(
        space, rng, (num_sequences - 1 - perturbed, len(recorded))
    )
    noisy = _perturb(space, recorded, levels, rng)
    return np.concatenate([recorded[None], noisy, uniform]).astype(np.float32)


def _perturb(
    space: gymnasium.Space, recorded: np.ndarray, levels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One copy of ``recorded`` ``[H, A]`` per noise level in ``(0, 1]``."""
    copies = np.broadcast_to(recorded, (len(levels), *recorded.shape))
    if spaces.is_discrete(space):
        replace = rng.random(copies.shape[:2]) < levels[:, None]
        random = spaces.sample_action_vectors(space, rng, copies.shape[:2])
        return np.where(replace[..., None], random, copies)
    low, high = spaces.action_bounds(space)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise EvaluationError(f"drawing action sequences needs finite action bounds, got {space}")
    stdev = levels[:, None, None] * (high - low) / 2.0
    return np.clip(copies + stdev * rng.standard_normal(copies.shape), low, high)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class StateQuality:
    """The figures of one state (module docs); arrays are ``float64 [H]``,
    entry ``k - 1`` for ``k`` steps ahead."""

    episode: str
    seed: int
    row: int
    rank_correlation: float
    regret: float
    normalized_regret: float
    best_true_return: float
    chosen_true_return: float
    recorded_true_return: float
    reward_abs_error: np.ndarray
    reward_squared_error: np.ndarray
    frame_squared_error: np.ndarray | None = None

    def figures(self, with_frames: bool) -> dict[str, float]:
        """Every figure by its CSV column name; frame columns (``NaN`` if this
        state has none) only ``with_frames``."""
        per_step = {"reward_abs_error": self.reward_abs_error,
                    "reward_squared_error": self.reward_squared_error}
        if with_frames:
            frames = self.frame_squared_error
            per_step["frame_squared_error"] = (
                np.full(len(self.reward_abs_error), np.nan) if frames is None else frames
            )
        figures = {name: float(getattr(self, name)) for name in _SCALAR_FIGURES}
        for name, values in per_step.items():
            figures.update({f"{name}_h{k}": float(v) for k, v in enumerate(values, start=1)})
        return figures


_SCALAR_FIGURES = (
    "rank_correlation", "regret", "normalized_regret",
    "best_true_return", "chosen_true_return", "recorded_true_return",
)


@dataclasses.dataclass(frozen=True)
class PlanningQuality:
    """The result of :func:`evaluate_planning`: per-state figures and their aggregates."""

    states: tuple[StateQuality, ...]
    episodes_dir: str
    horizon: int
    num_sequences: int
    seed: int
    objective: str

    @property
    def has_frames(self) -> bool:
        """Whether the model predicted frames (frame figures are reported)."""
        return any(state.frame_squared_error is not None for state in self.states)

    def figures(self) -> dict[str, np.ndarray]:
        """``float64 [num states]`` per figure name."""
        rows = [state.figures(self.has_frames) for state in self.states]
        return {name: np.array([row[name] for row in rows]) for name in rows[0]}

    def aggregate(self, statistic: str) -> dict[str, float]:
        """``mean`` or ``median`` over states of every figure, ``NaN`` entries
        left out (``NaN`` if all are)."""
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        reduce = np.mean if statistic == "mean" else np.median
        aggregates = {}
        for name, values in self.figures().items():
            defined = values[~np.isnan(values)]
            aggregates[name] = float(reduce(defined)) if defined.size else math.nan
        return aggregates

    @property
    def mean(self) -> dict[str, float]:
        return self.aggregate("mean")

    @property
    def median(self) -> dict[str, float]:
        return self.aggregate("median")

    def rows(self) -> list[dict[str, Any]]:
        """The CSV rows: one per state (``row_type`` ``state``), then ``mean``
        and ``median`` (empty ``episode``, ``seed``, ``row``)."""
        rows = [
            {"row_type": "state", "episode": s.episode, "seed": s.seed, "row": s.row,
             **s.figures(self.has_frames)}
            for s in self.states
        ]
        for statistic in STATISTICS:
            rows.append({"row_type": statistic, "episode": "", "seed": "", "row": "",
                         **self.aggregate(statistic)})
        return rows


# --------------------------------------------------------------------------- evaluation


def evaluate_planning(
    task: Any,
    world_model: WorldModelFns | Any,
    episodes_dir: str,
    num_states: int = 50,
    num_sequences: int = 32,
    horizon: int = 12,
    seed: int = 0,
    objective: ObjectiveFn | None = None,
    first_seed: int | None = None,
) -> PlanningQuality:
    """Score ``world_model``'s planning quality on states of ``episodes_dir``
    against ``task``'s simulator (see the module docs).

    :param world_model: a :class:`WorldModelFns`, or anything
        :meth:`WorldModelFns.of` takes (a world model, a model-based planner).
    :param num_states: states to draw (fewer if the episodes have fewer rows
        with ``horizon`` recorded steps after them).
    :param num_sequences: ``K >= 2`` action sequences per state.
    :param horizon: ``H >= 1`` steps per sequence.
    :param seed: seeds the choice of states and the sequences drawn.
    :param objective: maps predictions to returns; default
        ``DiscountedReward()``.
    :param first_seed: environment seed of the directory's first file, for
        files that do not record theirs (file ``i`` in save order: ``first_seed
        + i``).
    :raises EvaluationError: no episode files or none long enough, a task whose
        simulator cannot be restored, an episode that does not replay.
    """
    num_states = check_int_at_least("num_states", num_states)
    num_sequences = check_int_at_least("num_sequences", num_sequences, minimum=2)
    horizon = check_int_at_least("horizon", horizon)
    seed = check_int_at_least("seed", seed, minimum=0)
    fns = world_model if isinstance(world_model, WorldModelFns) else WorldModelFns.of(world_model)
    objective = DiscountedReward() if objective is None else objective
    paths = _episode_files(episodes_dir)
    steps = [_steps(path) for path in paths]
    chosen = choose_states(steps, num_states, horizon, np.random.default_rng(seed))
    if not chosen:
        raise EvaluationError(
            f"no episode in {episodes_dir} has more than {horizon - 1} steps: a horizon of "
            f"{horizon} needs that many recorded steps after a state (longest: {max(steps)})"
        )
    truth = OracleWorldModel(task)
    states = []
    try:
        for index in sorted({index for index, _ in chosen}):
            rows = [row for episode, row in chosen if episode == index]
            states += _evaluate_episode(
                task, fns, truth, objective, paths[index], index, rows, horizon,
                num_sequences, seed, first_seed,
            )
    finally:
        truth.close()
    return PlanningQuality(
        tuple(states), os.path.abspath(episodes_dir), horizon, num_sequences, seed, repr(objective)
    )


def evaluate_planner(
    task: Any,
    planner: Any,
    episodes_dir: str,
    num_states: int = 50,
    num_sequences: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    first_seed: int | None = None,
) -> PlanningQuality:
    """:func:`evaluate_planning` of the world model a planner plans with,
    scored with the planner's own objective and horizon (``horizon`` given:
    that one; a planner without one: 12)."""
    holder = find_world_model(planner)
    return evaluate_planning(
        task, WorldModelFns.of(holder), episodes_dir, num_states, num_sequences,
        horizon or getattr(holder, "horizon", None) or 12, seed,
        getattr(holder, "objective_fn", None), first_seed,
    )


def _episode_files(episodes_dir: str) -> list[str]:
    if not os.path.isdir(episodes_dir):
        raise EvaluationError(f"episode directory {episodes_dir} does not exist")
    paths = npz.episode_paths(episodes_dir)
    if not paths:
        raise EvaluationError(f"no episode files (*.npz) in {episodes_dir}")
    return paths


def _steps(path: str) -> int:
    """``T`` of an episode file: from its name, else by reading it."""
    steps = npz.episode_steps(path)
    return steps if steps is not None else len(_load(path)["reward"]) - 1


def _load(path: str) -> Episode:
    try:
        return npz.load_episode(path)
    except npz.EpisodeFileError as error:
        raise EvaluationError(str(error)) from error


def _episode_seed(episode: Episode, path: str, index: int, first_seed: int | None) -> int:
    if "seed" in episode:
        seeds = np.unique(episode["seed"])
        if len(seeds) != 1:
            raise EvaluationError(f"episode file {path} has several seeds in its 'seed' column: {seeds[:5]}")
        return int(seeds[0])
    if first_seed is None:
        raise EvaluationError(
            f"episode file {path} does not record its environment seed (written before episodes "
            "had a 'seed' column): pass first_seed, the seed of the directory's first file"
        )
    return first_seed + index


def _evaluate_episode(
    task: Any, fns: WorldModelFns, truth: OracleWorldModel, objective: ObjectiveFn, path: str,
    index: int, rows: list[int], horizon: int, num_sequences: int, seed: int,
    first_seed: int | None,
) -> list[StateQuality]:
    """The states at ``rows`` (ascending) of one episode file."""
    episode = _load(path)
    episode_seed = _episode_seed(episode, path, index, first_seed)
    truth_state = _reset_truth(truth, task, episode_seed)
    model_state = fns.reset_fn(seed=episode_seed, episode_index=index)
    seen, results = 0, []
    for row in rows:
        new = slice(seen, row + 1)
        truth_state = _replay(truth, episode, new, truth_state, path, episode_seed)
        model_state = fns.observe_fn(
            episode["image"][new], episode["action"][new], episode["reward"][new], model_state
        )
        seen = row + 1
        rng = np.random.default_rng([seed, index, row])
        sequences = draw_sequences(
            task.action_space, episode["action"][row + 1 : row + 1 + horizon], num_sequences, rng
        )
        results.append(_evaluate_state(
            fns, truth, objective, episode, path, episode_seed, row, sequences, model_state,
            truth_state,
        ))
    return results


def _reset_truth(truth: OracleWorldModel, task: Any, seed: int) -> State:
    try:
        return truth.reset(seed=seed)
    except (TypeError, NotImplementedError) as error:
        raise EvaluationError(
            f"task {getattr(task, 'name', task)!r} cannot be evaluated against ground truth: its "
            f"simulator cannot be restored ({error})"
        ) from error


def _replay(
    truth: OracleWorldModel, episode: Episode, rows: slice, state: State, path: str, seed: int
) -> State:
    try:
        return truth.observe(episode["image"][rows], episode["action"][rows], episode["reward"][rows], state)
    except ContractError as error:
        raise EvaluationError(
            f"episode file {path} does not replay in the simulator from seed {seed}: {error}"
        ) from error


def _evaluate_state(
    fns: WorldModelFns, truth: OracleWorldModel, objective: ObjectiveFn, episode: Episode,
    path: str, seed: int, row: int, sequences: np.ndarray, model_state: State, truth_state: State,
) -> StateQuality:
    horizon = sequences.shape[1]
    predicted = _checked_predictions(fns.predict_fn(sequences, model_state), sequences, "predict_fn")
    actual = truth.predict(sequences, truth_state)
    recorded = episode["reward"][row + 1 : row + 1 + horizon].astype(np.float64)
    if rewards_differ(actual["reward"][0], recorded).any():
        raise EvaluationError(
            f"episode file {path} does not replay in the simulator from seed {seed}: after row "
            f"{row} the recorded actions gave rewards {actual['reward'][0]}, the episode has "
            f"{recorded} (a wrong seed, or a simulator that is not deterministic)"
        )
    if "value" in predicted:
        # The simulator knows the rewards over the horizon only: both sides are scored without
        # a value (zero), so the ranking judges the predicted rewards, as for any other model.
        no_value = np.zeros(len(sequences), np.float32)
        predicted, actual = {**predicted, "value": no_value}, {**actual, "value": no_value}
    predicted_returns = _returns(objective, predicted, "the model's predictions")
    true_returns = _returns(objective, actual, "the simulator's rewards")
    spread = true_returns.max() - true_returns.min()
    error = np.asarray(predicted["reward"][0], np.float64) - recorded
    lost = regret(predicted_returns, true_returns)
    return StateQuality(
        episode=os.path.basename(path),
        seed=seed,
        row=row,
        rank_correlation=_rank_correlation(predicted_returns, true_returns),
        regret=lost,
        normalized_regret=lost / spread if spread > 0 else math.nan,
        best_true_return=float(true_returns.max()),
        chosen_true_return=float(true_returns.max() - lost),
        recorded_true_return=float(true_returns[0]),
        reward_abs_error=np.abs(error),
        reward_squared_error=error**2,
        frame_squared_error=_frame_errors(fns, predicted, sequences, model_state, episode, row),
    )


def _rank_correlation(predicted: np.ndarray, true: np.ndarray) -> float:
    """:func:`spearman`, with ``0`` for a constant prediction of varying truth."""
    if true.max() == true.min():
        return math.nan
    if predicted.max() == predicted.min():
        return 0.0
    return spearman(predicted, true)


def _checked_predictions(predictions: Predictions, sequences: np.ndarray, what: str) -> Predictions:
    expected = sequences.shape[:2]
    reward = np.asarray(predictions.get("reward")) if isinstance(predictions, dict) else None
    if reward is None or reward.shape != expected:
        shape = None if reward is None else reward.shape
        raise ContractError(f"{what} returned reward of shape {shape}, expected {list(expected)}")
    return predictions


def _returns(objective: ObjectiveFn, predictions: Predictions, what: str) -> np.ndarray:
    proposals = len(predictions["reward"])
    returns = np.asarray(objective(predictions), np.float64)
    if returns.shape != (proposals,) or not np.isfinite(returns).all():
        raise ContractError(
            f"the objective {objective!r} gave {returns.shape} returns for {what} "
            f"(expected {proposals} finite ones): {returns[:5]}"
        )
    return returns


def _frame_errors(
    fns: WorldModelFns, predicted: Predictions, sequences: np.ndarray, model_state: State,
    episode: Episode, row: int,
) -> np.ndarray | None:
    """``float64 [H]`` mean squared frame error of the recorded continuation, or ``None``."""
    frames = predicted.get("image")
    if frames is None and fns.frame_predict_fn is not None:
        frames = fns.frame_predict_fn(sequences[:1], model_state).get("image")
    if frames is None:
        return None
    video = open_loop_frames(episode, {"image": np.asarray(frames)[0]}, row)  # truth | prediction | error
    width = episode["image"].shape[2]
    truth, prediction = (video[:, :, part * width : (part + 1) * width] / 255.0 for part in (0, 1))
    return ((prediction - truth) ** 2).mean(axis=(1, 2, 3))


# --------------------------------------------------------------------------- output


def write_csv(quality: PlanningQuality, path: str) -> str:
    """Write :meth:`PlanningQuality.rows` to ``path`` atomically (directories
    are created); returns ``path``.  Numbers are written in full precision,
    undefined ones as ``nan``."""
    rows = quality.rows()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomically(path, buffer.getvalue())
    return path


def write_summaries(quality: PlanningQuality, summary_dir: str, global_step: int) -> None:
    """Every defined aggregate as the TensorBoard scalar
    ``planning_quality/<figure>/<mean|median>`` at ``global_step``, through
    this process's writer of ``summary_dir`` (flushed, left open: whoever owns
    the directory closes it with :func:`wm_core.reporting.summaries.close`)."""
    writer = summaries.writer(summary_dir)
    for statistic in STATISTICS:
        for name, value in quality.aggregate(statistic).items():
            if not math.isnan(value):
                writer.add_scalar(f"planning_quality/{name}/{statistic}", value, global_step)
    writer.flush()
