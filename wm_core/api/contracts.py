"""The contracts every world model, planner, objective and task honours.

This module is the single place where shapes, dtypes and ownership are
written down; :mod:`wm_core.testing` checks them.

Episodes
--------
An episode is a ``dict[str, np.ndarray]`` whose arrays share a leading time
axis of length ``T + 1``:

* ``image``  ``uint8   [T+1, H, W, C]`` — row ``t`` is the frame seen after
  the ``t``-th action (row 0: the frame returned by ``reset``).
* ``action`` ``float32 [T+1, A]`` — row ``t`` is the action that *led to*
  ``image[t]``; row 0 is zeros.
* ``reward`` ``float32 [T+1]`` — row ``t`` is the reward received for
  ``action[t]``; row 0 is zero.
* extras a task adds (``discount``, ``state``...), same leading axis;
  :func:`wm_core.rollout.simulate.simulate` adds ``seed`` ``int64 [T+1]``, the seed
  the environment was reset with, on every row (optional: readers must not
  require it).

Actions
-------
World models and planners see every action as a ``float32`` vector of size
``A = wm_core.api.spaces.action_dim(space)``: the action itself for a ``Box``
space, a one-hot vector for a ``Discrete`` space.  :func:`wm_core.api.spaces.
to_env_action` turns it back into what ``env.step`` takes.

World models (the functional contract of the original World Models Library)
-----------------------------------------------------------------------------
``reset_fn(**kwargs) -> state``
    Called at the start of every episode (``kwargs`` carries at least
    ``seed``, the seed the real environment was reset with).
``observe_fn(last_frames, last_actions, last_rewards, state) -> state``
    ``last_frames`` ``uint8 [T, H, W, C]``, ``last_actions`` ``float32
    [T, A]``, ``last_rewards`` ``float32 [T]``: the ``T >= 1`` newest episode
    rows (at the start of an episode, row 0: the first frame, a zero action
    and a zero reward).  Returns the new state; the old one stays valid.
``predict_fn(future_actions, state) -> predictions``
    ``future_actions`` ``float32 [P, H, A]`` — ``P`` proposals of ``H``
    actions, the first applied right after the last observed frame.
    ``predictions`` is a ``dict`` of NumPy arrays with leading dims
    ``[P, H]``: ``reward`` ``float32 [P, H]`` is required, ``image`` ``uint8
    [P, H, h, w, C]`` optional.  ``predictions[k][:, j]`` is the outcome of
    ``future_actions[:, j]``, i.e. episode row ``t + 1 + j`` when the last
    observed row was ``t``.  One key is the exception to the ``[P, H]``
    lead: ``value`` ``float32 [P]`` (optional, finite), a model's estimate
    of the discounted return after the last action (the value of the state
    the plan ends in), for objectives that bootstrap with it.
    ``predict_fn`` never mutates ``state``.
``predict_batch_fn(future_actions, states) -> predictions`` (optional)
    The batched form, for planning in several environments at once:
    ``future_actions`` ``float32 [N, P, H, A]``, ``states`` a sequence of
    ``N`` states; ``predictions`` has leading dims ``[N, P, H]``
    (``reward`` ``float32 [N, P, H]``, ``image`` optional ``uint8 [N, P, H,
    h, w, C]``).  Row ``i`` means what ``predict_fn(future_actions[i],
    states[i])`` means (equal for models whose predictions are
    deterministic; :func:`wm_core.testing.check_world_model` compares them).
    Models without it get :func:`batched`, which loops over ``predict_fn``.
``propose_fn(state, horizon, count, seed=0) -> proposals`` (optional)
    Action sequences the model suggests from ``state`` (e.g. a learned
    policy prior's): ``float32 [count, horizon, A]`` in the action bounds;
    the same ``seed`` gives the same proposals.  Search planners mix them
    into their population when configured to (``wm_cem``'s
    ``policy_proposals``).  Never mutates ``state``.
``train_fn(data_path) -> None``
    Trains on the episodes stored under ``data_path`` (see
    :mod:`wm_core.data.npz`); owns its checkpoints.

``state`` is a pytree (nested dicts/tuples/lists of arrays) owned by the
caller — usually a planner.  A world model keeps nothing per-episode in
itself.

Objectives
----------
``objective_fn(predictions) -> scores``: ``float32 [P]``, one finite score per
proposal; higher is better.

Planners
--------
``planner.reset(**kwargs)`` at the start of every episode, then once per step
``action, prediction = planner(prev_image, prev_action, prev_reward)`` with
the newest episode row (``uint8 [H, W, C]``, ``float32 [A]``, ``float``).
``action`` is a ``float32 [A]`` action vector; ``prediction`` is the
prediction for the plan the action starts (``dict`` of ``[H, ...]`` arrays,
row ``j`` for episode row ``t + 1 + j``) or ``None`` for planners without a
model.

Several environments at once (``num_envs``): a :class:`BatchPlanner`
decides for ``N`` environment slots in one call, ``reset_slot(slot,
**kwargs)`` when an episode starts in a slot, then ``actions, predictions =
decide(slots, prev_images uint8 [N, H, W, C], prev_actions float32 [N, A],
prev_rewards float32 [N])`` for the ``N`` slots deciding this step
(``actions`` ``float32 [N, A]``, ``predictions`` a list of ``N``
per-planner predictions or ``None``).  Row ``i`` is what a separate planner
for slot ``slots[i]`` would decide: an episode's actions do not depend on
the slot it runs in or on the other slots.
:func:`wm_core.planning.planners.batch_planner` makes one from any planner.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "Episode",
    "Predictions",
    "State",
    "ResetFn",
    "ObserveFn",
    "PredictFn",
    "PredictBatchFn",
    "ProposeFn",
    "batched",
    "BatchPlanner",
    "TrainFn",
    "ObjectiveFn",
    "Planner",
    "WorldModel",
    "ContractError",
]

Episode = dict[str, np.ndarray]
Predictions = dict[str, np.ndarray]
State = Any

ResetFn = Callable[..., State]
ObserveFn = Callable[[np.ndarray, np.ndarray, np.ndarray, State], State]
PredictFn = Callable[[np.ndarray, State], Predictions]
PredictBatchFn = Callable[[np.ndarray, Sequence[State]], Predictions]
ProposeFn = Callable[..., np.ndarray]
TrainFn = Callable[[str], None]
ObjectiveFn = Callable[[Predictions], np.ndarray]


class ContractError(ValueError):
    """A component broke the shapes, dtypes or rules of this module."""


@runtime_checkable
class Planner(Protocol):
    """Decides actions, one call per environment step (see module docs)."""

    def reset(self, **kwargs: Any) -> None: ...

    def __call__(
        self, prev_image: np.ndarray, prev_action: np.ndarray, prev_reward: float
    ) -> tuple[np.ndarray, Predictions | None]: ...


def batched(predict_fn: PredictFn) -> PredictBatchFn:
    """The batched form of ``predict_fn``: one ``predict_fn`` call per state.

    ``batched(predict_fn)(future_actions [N, P, H, A], states)`` stacks
    ``predict_fn(future_actions[i], states[i])`` for ``i < N`` along a new
    leading axis (every call must return the same keys).  The fallback for
    models that have no ``predict_batch_fn``.
    """

    def predict_batch_fn(future_actions: np.ndarray, states: Sequence[State]) -> Predictions:
        future_actions = np.asarray(future_actions)
        if future_actions.ndim != 4 or len(future_actions) != len(states) or not len(states):
            raise ContractError(
                f"predict_batch_fn takes future_actions float32 [N, P, H, A] and N states; got "
                f"actions of shape {future_actions.shape} and {len(states)} states"
            )
        rows = [predict_fn(actions, state) for actions, state in zip(future_actions, states)]
        keys = [sorted(row) if isinstance(row, dict) else type(row).__name__ for row in rows]
        if any(key != keys[0] for key in keys) or not isinstance(rows[0], dict):
            raise ContractError(f"predict_fn returned different keys for the rows of a batch: {keys}")
        return {key: np.stack([np.asarray(row[key]) for row in rows]) for key in rows[0]}

    predict_batch_fn.predict_fn = predict_fn  # type: ignore[attr-defined]
    return predict_batch_fn


@runtime_checkable
class BatchPlanner(Protocol):
    """Decides for several environment slots at once (see module docs).

    ``reset_slot(slot, **kwargs)``: an episode starts in environment slot
    ``slot``; ``kwargs`` as :meth:`Planner.reset` (``seed``,
    ``episode_index``).  ``decide(slots, prev_images uint8 [N, H, W, C],
    prev_actions float32 [N, A], prev_rewards float32 [N])`` returns
    ``(actions float32 [N, A], predictions)``, ``predictions`` a list of
    ``N`` entries (``dict`` of ``[H, ...]`` arrays, or ``None``), row ``i``
    for slot ``slots[i]``.  ``N`` may be less than the number of slots
    (episodes end at different times).
    """

    def reset_slot(self, slot: int, **kwargs: Any) -> None: ...

    def decide(
        self,
        slots: Sequence[int],
        prev_images: np.ndarray,
        prev_actions: np.ndarray,
        prev_rewards: np.ndarray,
    ) -> tuple[np.ndarray, list[Predictions | None]]: ...


class WorldModel:
    """Convenience base: a world model as an object with the four functions.

    Subclasses implement :meth:`reset`, :meth:`observe`, :meth:`predict` and
    optionally :meth:`train` and :meth:`predict_batch` (default: one
    :meth:`predict` per state); :attr:`reset_fn` and friends hand out the
    functional form the planners take.  Model plugins subclass
    :class:`wm_core.models.base.WorldModelBase`, which implements these four
    with the contract's checks and calls the plugin's own methods.
    """

    def reset(self, **kwargs: Any) -> State:
        raise NotImplementedError

    def observe(
        self,
        last_frames: np.ndarray,
        last_actions: np.ndarray,
        last_rewards: np.ndarray,
        state: State,
    ) -> State:
        raise NotImplementedError

    def predict(self, future_actions: np.ndarray, state: State) -> Predictions:
        raise NotImplementedError

    def predict_batch(self, future_actions: np.ndarray, states: Sequence[State]) -> Predictions:
        """``future_actions float32 [N, P, H, A]``, ``N`` states -> ``[N, P, H]``-led
        predictions.  Default: :meth:`predict` state by state (:func:`batched`)."""
        return batched(self.predict)(future_actions, states)

    def train(self, data_path: str) -> None:
        """Default: nothing to learn."""

    @property
    def reset_fn(self) -> ResetFn:
        return self.reset

    @property
    def observe_fn(self) -> ObserveFn:
        return self.observe

    @property
    def predict_fn(self) -> PredictFn:
        return self.predict

    @property
    def predict_batch_fn(self) -> PredictBatchFn:
        return self.predict_batch

    @property
    def train_fn(self) -> TrainFn:
        return self.train
