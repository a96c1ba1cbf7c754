"""Sampling distributions over action sequences, one per kind of action space.

A search planner keeps one of these per decision and refits it to the best
proposals.  Both kinds share one interface:

* ``sample(rng, count) -> float32 [count, H, A]`` — action vectors (see
  :mod:`wm_core.api.spaces`), inside the action bounds.
* ``fit(actions [K, H, A], weights [K]) -> distribution`` — the weighted
  maximum-likelihood refit to ``K`` chosen proposals (weights need not sum
  to one; they are normalised).
* ``first_action() -> float32 [A]`` — the action the planner takes.
* ``shifted(initial) -> distribution`` — the plan moved one step on, its last
  step taken from ``initial`` (warm start for the next decision).

Distributions are immutable values: every method returns a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from wm_core.api import spaces

__all__ = ["Gaussian", "Categorical", "Distribution", "initial_distribution"]


def _normalised(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, np.float64)
    return weights / weights.sum()


@dataclass(frozen=True)
class Gaussian:
    """Independent Gaussians per step and action dimension, clipped to bounds.

    :param mean, stdev: ``float32 [H, A]``.
    :param low, high: ``float32 [A]`` action bounds; samples are clipped.
    :param min_stdev: floor applied to the refitted ``stdev``.
    """

    mean: np.ndarray
    stdev: np.ndarray
    low: np.ndarray
    high: np.ndarray
    min_stdev: float = 0.0

    @classmethod
    def spanning(
        cls, space: gym.spaces.Box, horizon: int, min_stdev: float = 0.0
    ) -> Gaussian:
        """Mean the middle of the bounds, stdev half their range, every step."""
        low, high = spaces.action_bounds(space)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(
                f"search planners need finite action bounds, got low={low} high={high}"
            )
        mean = np.tile((low + high) / 2, (horizon, 1)).astype(np.float32)
        stdev = np.tile((high - low) / 2, (horizon, 1)).astype(np.float32)
        return cls(mean, stdev, low, high, min_stdev)

    @property
    def horizon(self) -> int:
        return self.mean.shape[0]

    def with_noise(self, noise: np.ndarray) -> np.ndarray:
        """``clip(mean + stdev * noise)`` for unit noise ``[count, H, A]``."""
        actions = self.mean + self.stdev * noise
        return np.clip(actions, self.low, self.high, out=actions).astype(np.float32, copy=False)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        noise = rng.standard_normal((count, *self.mean.shape), dtype=np.float32)
        return self.with_noise(noise)

    def fit(self, actions: np.ndarray, weights: np.ndarray) -> Gaussian:
        weights = _normalised(weights).astype(np.float32)
        mean = np.einsum("k,kha->ha", weights, actions)
        variance = np.einsum("k,kha->ha", weights, np.square(actions - mean))
        stdev = np.maximum(np.sqrt(variance), self.min_stdev)
        return Gaussian(mean, stdev.astype(np.float32), self.low, self.high, self.min_stdev)

    def blend(self, other: Gaussian, momentum: float) -> Gaussian:
        """``momentum * self + (1 - momentum) * other`` for mean and stdev."""
        return Gaussian(
            (momentum * self.mean + (1 - momentum) * other.mean).astype(np.float32),
            (momentum * self.stdev + (1 - momentum) * other.stdev).astype(np.float32),
            self.low,
            self.high,
            self.min_stdev,
        )

    def first_action(self) -> np.ndarray:
        return self.plan()[0]

    def plan(self) -> np.ndarray:
        """The sequence acted on: the mean clipped to the bounds, ``float32 [H, A]``."""
        return np.clip(self.mean, self.low, self.high).astype(np.float32)

    def shifted(self, initial: Gaussian) -> Gaussian:
        """Mean moved one step on (last step: ``initial``'s); stdev ``initial``'s."""
        mean = np.concatenate([self.mean[1:], initial.mean[-1:]])
        return Gaussian(mean, initial.stdev, self.low, self.high, self.min_stdev)


@dataclass(frozen=True)
class Categorical:
    """Independent categorical distributions per step over ``n`` actions.

    :param probabilities: ``float32 [H, n]``, rows sum to one.  Samples are
        one-hot vectors ``[count, H, n]``.
    """

    probabilities: np.ndarray

    @classmethod
    def uniform(cls, space: gym.spaces.Discrete, horizon: int) -> Categorical:
        size = spaces.action_dim(space)
        return cls(np.full((horizon, size), 1.0 / size, np.float32))

    @property
    def horizon(self) -> int:
        return self.probabilities.shape[0]

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        horizon, size = self.probabilities.shape
        cumulative = np.cumsum(self.probabilities, axis=-1)
        draws = rng.random((count, horizon, 1), dtype=np.float32) * cumulative[:, -1:]
        indices = np.minimum((draws >= cumulative).sum(axis=-1), size - 1)
        return np.eye(size, dtype=np.float32)[indices]

    def fit(self, actions: np.ndarray, weights: np.ndarray) -> Categorical:
        """Weighted action frequencies per step: ``sum_k w_k actions[k]``."""
        weights = _normalised(weights).astype(np.float32)
        return Categorical(np.einsum("k,khn->hn", weights, actions))

    def first_action(self) -> np.ndarray:
        return self.plan()[0]

    def plan(self) -> np.ndarray:
        """The sequence acted on: each step's mode, one-hot ``float32 [H, n]``."""
        size = self.probabilities.shape[1]
        return np.eye(size, dtype=np.float32)[np.argmax(self.probabilities, axis=-1)]

    def shifted(self, initial: Categorical) -> Categorical:
        """Probabilities moved one step on, each step half-mixed with ``initial``.

        The mixing plays the part of the Gaussian's stdev reset: a refitted
        categorical is often one-hot, and without it the next decision could
        never try another action.
        """
        moved = np.concatenate([self.probabilities[1:], initial.probabilities[-1:]])
        return Categorical((0.5 * moved + 0.5 * initial.probabilities).astype(np.float32))


Distribution = Gaussian | Categorical


def initial_distribution(
    space: gym.Space, horizon: int, min_stdev: float = 0.0
) -> Distribution:
    """The distribution a search starts from: wide Gaussian or uniform categorical."""
    if spaces.is_discrete(space):
        return Categorical.uniform(space, horizon)
    return Gaussian.spanning(space, horizon, min_stdev)
