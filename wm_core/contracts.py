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
  :func:`wm_core.simulate.simulate` adds ``seed`` ``int64 [T+1]``, the seed
  the environment was reset with, on every row (older files lack it).

Actions
-------
World models and planners see every action as a ``float32`` vector of size
``A = wm_core.spaces.action_dim(space)``: the action itself for a ``Box``
space, a one-hot vector for a ``Discrete`` space.  :func:`wm_core.spaces.
to_env_action` turns it back into what ``env.step`` takes.

World models (the functional contract of the seed)
--------------------------------------------------
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
    observed row was ``t``.  ``predict_fn`` never mutates ``state``.
``train_fn(data_path) -> None``
    Trains on the episodes stored under ``data_path`` (see
    :mod:`wm_core.npz`); owns its checkpoints.

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
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Episode",
    "Predictions",
    "State",
    "ResetFn",
    "ObserveFn",
    "PredictFn",
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


class WorldModel:
    """Convenience base: a world model as an object with the four functions.

    Subclasses implement :meth:`reset`, :meth:`observe`, :meth:`predict` and
    optionally :meth:`train`; :attr:`reset_fn` and friends hand out the
    functional form the planners take.
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
    def train_fn(self) -> TrainFn:
        return self.train
