"""Planners: the planner contract, a model-keeping base, random and wrappers.

Contract (see :mod:`wm_core.contracts`): ``planner.reset(**kwargs)`` once per
episode, then ``action, prediction = planner(prev_image, prev_action,
prev_reward)`` once per step.  Actions are ``float32 [A]`` action vectors
(one-hot for discrete tasks).

:class:`ModelPlanner` owns a world model's ``state``: it calls ``reset_fn`` on
reset and ``observe_fn`` with every new episode row, then :meth:`ModelPlanner.
plan` decides from the state.  Search planners (CEM, MPPI, ...) subclass it.

The wrappers take any planner as ``base_planner`` and always forward every
call to it, so a model-based base planner keeps its state in step with the
episode even on the steps where the wrapper overrides its action.
"""

from __future__ import annotations

import zlib
from typing import Any

import gin
import numpy as np

from wm_core import spaces
from wm_core.contracts import (
    ObjectiveFn,
    ObserveFn,
    PredictFn,
    Predictions,
    ResetFn,
    State,
)

__all__ = [
    "Planner",
    "ModelPlanner",
    "Random",
    "RandomColdStart",
    "GaussianRandomNoise",
    "EpsilonGreedy",
    "Randomizer",
]

Decision = tuple[np.ndarray, Predictions | None]


class Planner:
    """Base class: decides one ``float32 [A]`` action vector per call.

    Randomness comes from ``self.rng``.  With a planner ``seed``, every
    :meth:`reset` that carries the episode's ``seed`` restarts ``rng`` from
    ``(planner seed, episode seed, class name)``: an episode's random draws
    do not depend on the episodes that ran before it in this process (a
    resumed run acts as the uninterrupted one would), and a wrapper and its
    base given the same seed draw different numbers.  Subclasses that
    override :meth:`reset` call ``super().reset(**kwargs)``.
    """

    def __init__(self, task: Any, seed: int | None = None):
        self.task = task
        self.action_space = task.action_space
        self.action_dim = spaces.action_dim(self.action_space)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, **kwargs: Any) -> None:
        """Start of an episode; ``kwargs`` carries at least ``seed`` (the
        episode's environment seed, an ``int >= 0``) and, from
        :func:`~wm_core.simulate.simulate`, ``episode_index``."""
        episode_seed = kwargs.get("seed")
        if self.seed is not None and episode_seed is not None:
            salt = zlib.crc32(type(self).__qualname__.encode())
            self.rng = np.random.default_rng([self.seed, episode_seed, salt])

    def __call__(
        self, prev_image: np.ndarray, prev_action: np.ndarray, prev_reward: float
    ) -> Decision:
        raise NotImplementedError

    def random_action(self) -> np.ndarray:
        """One uniformly random action vector ``float32 [A]``."""
        return spaces.sample_action_vectors(self.action_space, self.rng)


class ModelPlanner(Planner):
    """A planner that keeps a world model's state and plans from it.

    :param predict_fn, observe_fn, reset_fn: the world model (seed contract).
    :param objective_fn: scores predictions, ``float32 [P]``.
    """

    def __init__(
        self,
        task: Any,
        predict_fn: PredictFn,
        observe_fn: ObserveFn,
        reset_fn: ResetFn,
        objective_fn: ObjectiveFn,
        seed: int | None = None,
    ):
        super().__init__(task, seed)
        self.predict_fn = predict_fn
        self.observe_fn = observe_fn
        self.reset_fn = reset_fn
        self.objective_fn = objective_fn
        self.state: State = None

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.state = self.reset_fn(**kwargs)

    def __call__(
        self, prev_image: np.ndarray, prev_action: np.ndarray, prev_reward: float
    ) -> Decision:
        self.state = self.observe_fn(
            np.asarray(prev_image)[None],
            np.asarray(prev_action, np.float32)[None],
            np.asarray([prev_reward], np.float32),
            self.state,
        )
        return self.plan(self.state)

    def plan(self, state: State) -> Decision:
        """Choose an action from the model state (subclasses implement)."""
        raise NotImplementedError


@gin.configurable(module="wm")
class Random(Planner):
    """Uniformly random actions; no model, so the prediction is ``None``."""

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        return self.random_action(), None


class _Wrapper(Planner):
    """Forwards every call to ``base_planner``; subclasses edit its decision."""

    def __init__(self, task: Any, base_planner: Planner, seed: int | None = None):
        super().__init__(task, seed)
        self.base_planner = base_planner

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.base_planner.reset(**kwargs)


@gin.configurable(module="wm")
class RandomColdStart(_Wrapper):
    """Random actions for the first ``random_episodes`` episodes, then the base.

    Episodes are counted by the resets seen; ``reset(episode_index=i)``
    moves the count forward to ``i + 1`` when the caller numbers episodes
    (a resumed ``train_eval_loop`` starts past its random episodes).  The base planner is neither reset nor called
    during the random episodes (there is usually no trained model yet).
    """

    def __init__(self, task: Any, random_episodes: int, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if random_episodes < 0:
            raise ValueError(f"random_episodes must be >= 0, got {random_episodes}")
        self.random_episodes = random_episodes
        self.episodes_started = 0

    @property
    def is_cold(self) -> bool:
        return self.episodes_started <= self.random_episodes

    def reset(self, **kwargs: Any) -> None:
        Planner.reset(self, **kwargs)  # the base is reset only once warm
        numbered = kwargs.get("episode_index", -1) + 1
        self.episodes_started = max(self.episodes_started + 1, numbered)
        if not self.is_cold:
            self.base_planner.reset(**kwargs)

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        if self.is_cold:
            return self.random_action(), None
        return self.base_planner(prev_image, prev_action, prev_reward)


@gin.configurable(module="wm")
class GaussianRandomNoise(_Wrapper):
    """Adds ``N(0, stdev**2)`` noise to the base action, clipped to the bounds.

    For discrete tasks the noise is added to the one-hot vector and the
    result is the one-hot of its argmax.
    """

    def __init__(self, task: Any, stdev: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if stdev < 0:
            raise ValueError(f"stdev must be >= 0, got {stdev}")
        self.stdev = float(stdev)
        self.low, self.high = spaces.action_bounds(self.action_space)

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        action, prediction = self.base_planner(prev_image, prev_action, prev_reward)
        noisy = action + self.rng.normal(0.0, self.stdev, size=action.shape)
        if spaces.is_discrete(self.action_space):
            noisy = np.eye(self.action_dim, dtype=np.float32)[np.argmax(noisy)]
        return np.clip(noisy, self.low, self.high).astype(np.float32), prediction


@gin.configurable(module="wm")
class EpsilonGreedy(_Wrapper):
    """Each step, with probability ``epsilon``, a random action instead of the base's."""

    def __init__(self, task: Any, epsilon: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        action, prediction = self.base_planner(prev_image, prev_action, prev_reward)
        if self.rng.random() < self.epsilon:
            return self.random_action(), None
        return action, prediction


@gin.configurable(module="wm")
class Randomizer(_Wrapper):
    """Each *episode*, with probability ``rand_prob``, acts randomly throughout.

    Episode-level exploration (``EpsilonGreedy`` is the step-level kind).
    The base planner is still reset and called so its state stays current.
    """

    def __init__(self, task: Any, rand_prob: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if not 0.0 <= rand_prob <= 1.0:
            raise ValueError(f"rand_prob must be in [0, 1], got {rand_prob}")
        self.rand_prob = float(rand_prob)
        self.episode_is_random = False

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.episode_is_random = bool(self.rng.random() < self.rand_prob)

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        action, prediction = self.base_planner(prev_image, prev_action, prev_reward)
        if self.episode_is_random:
            return self.random_action(), None
        return action, prediction
