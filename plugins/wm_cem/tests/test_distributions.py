"""Gaussian and categorical distributions: sampling and refits against hand-computed values."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from wm_cem.distributions import Categorical, Gaussian, initial_distribution

BOX = gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 4], np.float32))


def test_initial_gaussian_spans_the_bounds():
    gaussian = initial_distribution(BOX, horizon=3)
    assert isinstance(gaussian, Gaussian)
    np.testing.assert_array_equal(gaussian.mean, [[0, 2]] * 3)
    np.testing.assert_array_equal(gaussian.stdev, [[1, 2]] * 3)


def test_unbounded_box_is_rejected():
    with pytest.raises(ValueError, match="finite action bounds"):
        initial_distribution(gym.spaces.Box(-np.inf, np.inf, (2,)), horizon=3)


def test_initial_categorical_is_uniform():
    categorical = initial_distribution(gym.spaces.Discrete(4), horizon=2)
    assert isinstance(categorical, Categorical)
    np.testing.assert_allclose(categorical.probabilities, np.full((2, 4), 0.25))


def test_gaussian_samples_are_clipped_float32():
    samples = Gaussian.spanning(BOX, 5).sample(np.random.default_rng(0), 2000)
    assert samples.shape == (2000, 5, 2) and samples.dtype == np.float32
    assert samples[..., 0].min() == -1 and samples[..., 0].max() == 1  # clipping hits the bounds
    assert samples[..., 1].min() == 0 and samples[..., 1].max() == 4


def test_gaussian_fit_is_the_weighted_mean_and_stdev():
    elites = np.array([[[0.0, 1.0]], [[1.0, 3.0]], [[0.5, 2.0]]], np.float32)  # [K=3, H=1, A=2]
    fitted = Gaussian.spanning(BOX, 1).fit(elites, np.array([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(fitted.mean, [[0.5, 2.0]])  # (0 + 1 + 2*0.5)/4, (1 + 3 + 4)/4
    np.testing.assert_allclose(fitted.stdev, [[np.sqrt(0.125), np.sqrt(0.5)]], rtol=1e-6)


def test_gaussian_fit_respects_min_stdev():
    elites = np.zeros((4, 2, 2), np.float32)
    fitted = Gaussian.spanning(BOX, 2, min_stdev=0.05).fit(elites, np.ones(4))
    np.testing.assert_array_equal(fitted.stdev, np.full((2, 2), 0.05, np.float32))


def test_gaussian_shift_moves_the_mean_and_resets_the_stdev():
    initial = Gaussian.spanning(BOX, 3)
    plan = Gaussian(np.array([[0.1, 1], [0.2, 2], [0.3, 3]], np.float32), np.full((3, 2), 0.01, np.float32), initial.low, initial.high)
    shifted = plan.shifted(initial)
    np.testing.assert_allclose(shifted.mean, [[0.2, 2], [0.3, 3], [0, 2]])
    np.testing.assert_array_equal(shifted.stdev, initial.stdev)


def test_categorical_fit_counts_actions_per_step_with_many_elites():
    # 5 elites, horizon 2, 3 actions: more elites than actions, the case the original broke on.
    indices = np.array([[0, 2], [1, 2], [0, 2], [0, 1], [2, 2]])
    elites = np.eye(3, dtype=np.float32)[indices]
    fitted = Categorical.uniform(gym.spaces.Discrete(3), 2).fit(elites, np.ones(5))
    np.testing.assert_allclose(fitted.probabilities, [[3 / 5, 1 / 5, 1 / 5], [0, 1 / 5, 4 / 5]], rtol=1e-6)
    weighted = Categorical.uniform(gym.spaces.Discrete(3), 2).fit(elites, np.array([1, 1, 1, 1, 4.0]))
    np.testing.assert_allclose(weighted.probabilities[0], [3 / 8, 1 / 8, 4 / 8], rtol=1e-6)


def test_categorical_samples_are_one_hot_with_the_given_frequencies():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]], np.float32)
    samples = Categorical(probabilities).sample(np.random.default_rng(0), 20000)
    assert samples.shape == (20000, 2, 3) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples.sum(-1), 1.0)
    np.testing.assert_allclose(samples.mean(0), probabilities, atol=0.01)


def test_categorical_acts_with_the_first_step_mode():
    action = Categorical(np.array([[0.2, 0.5, 0.3], [1, 0, 0]], np.float32)).first_action()
    np.testing.assert_array_equal(action, [0, 1, 0])
    assert action.dtype == np.float32


def test_categorical_shift_keeps_every_action_possible():
    plan = Categorical(np.array([[1, 0], [0, 1]], np.float32))
    shifted = plan.shifted(Categorical.uniform(gym.spaces.Discrete(2), 2))
    np.testing.assert_allclose(shifted.probabilities, [[0.25, 0.75], [0.5, 0.5]])
