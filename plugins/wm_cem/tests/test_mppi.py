"""MPPI's update: a proper softmax-weighted average of the elites."""

from __future__ import annotations

import numpy as np
import pytest

from wm_cem import MPPI
from wm_cem.distributions import Gaussian
from wm_cem.mppi import exponential_weights


def make_mppi(task, model, objective, **settings):
    return MPPI(task=task, objective_fn=objective, **model.parts(), **{"horizon": 2, "proposals": 20, **settings})


def test_weights_are_a_softmax_of_scores_over_temperature_times_their_spread():
    scores = np.array([0.0, -1.0, -2.0])  # standard deviation sqrt(2/3)
    weights = exponential_weights(scores, temperature=0.5)
    logits = scores / (0.5 * np.sqrt(2 / 3))
    np.testing.assert_allclose(weights, np.exp(logits) / np.exp(logits).sum())
    assert np.isfinite(exponential_weights(np.array([1e4, 0.0]), temperature=1e-3)).all()


def test_weights_do_not_depend_on_the_scale_of_the_objective():
    scores = np.array([3.0, 1.0, -0.5, 2.0])
    np.testing.assert_allclose(exponential_weights(scores, 1.0),
                               exponential_weights(1000.0 * scores - 7.0, 1.0))


def test_equal_scores_weigh_equally():
    np.testing.assert_array_equal(exponential_weights(np.full(4, 2.5), 1.0), np.full(4, 0.25))


def test_mean_is_not_shrunk_by_the_number_of_elites(box2_task, target_model, total_reward):
    planner = make_mppi(box2_task, target_model(np.zeros((2, 2))), total_reward, fraction=0.5)
    elites = np.full((10, 2, 2), 0.8, np.float32)  # ten identical elites at 0.8
    refitted = planner.refit(planner.initial, elites, np.linspace(0, -3, 10).astype(np.float32))
    np.testing.assert_allclose(refitted.mean, np.full((2, 2), 0.8), rtol=1e-6)  # the original gave 0.08


def test_mean_is_the_weighted_average(box2_task, target_model, total_reward):
    planner = make_mppi(box2_task, target_model(np.zeros((1, 2))), total_reward, horizon=1, temperature=2.0)
    elites = np.array([[[1.0, 2.0]], [[-1.0, 0.0]]], np.float32)
    refitted = planner.refit(planner.initial, elites, np.array([0.0, -2.0], np.float32))
    first = 1 / (1 + np.exp(-1.0))  # scores 0, -2: spread 1, logits 0/2 and -2/2
    np.testing.assert_allclose(refitted.mean, [[first - (1 - first), 2 * first]], rtol=1e-6)
    assert isinstance(refitted, Gaussian)


def test_temperature_must_be_positive(box2_task, target_model, total_reward):
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        make_mppi(box2_task, target_model(np.zeros((2, 2))), total_reward, temperature=0)
