from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from wm_core.api import spaces


def test_discrete_actions_are_one_hot_vectors():
    space = gym.spaces.Discrete(4, start=1)
    assert spaces.action_dim(space) == 4
    vector = spaces.to_action_vector(space, 3)
    np.testing.assert_array_equal(vector, [0, 0, 1, 0])
    assert spaces.to_env_action(space, vector) == 3


def test_box_actions_are_clipped_and_reshaped():
    space = gym.spaces.Box(-1.0, 2.0, (2, 1), np.float32)
    action = spaces.to_env_action(space, np.array([5.0, -3.0], np.float32))
    assert action.shape == (2, 1)
    np.testing.assert_array_equal(action.ravel(), [2.0, -1.0])


def test_samples_stay_in_bounds_and_have_requested_shape():
    rng = np.random.default_rng(0)
    box = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32))
    samples = spaces.sample_action_vectors(box, rng, (100, 3))
    assert samples.shape == (100, 3, 2) and samples.dtype == np.float32
    assert samples[..., 1].min() >= 0.0 and samples[..., 1].max() <= 5.0
    one_hot = spaces.sample_action_vectors(gym.spaces.Discrete(3), rng, (50,))
    np.testing.assert_array_equal(one_hot.sum(-1), np.ones(50))


def test_wrong_vector_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        spaces.to_env_action(gym.spaces.Box(-1, 1, (2,)), np.zeros(3))


def test_unsupported_space_is_rejected():
    with pytest.raises(TypeError, match="MultiBinary"):
        spaces.action_dim(gym.spaces.MultiBinary(3))


def test_batched_conversion_matches_one_at_a_time():
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    vectors = np.array([[[0.5, 3.0]], [[-2.0, 0.0]]], np.float32)
    batched = spaces.to_env_actions(box, vectors)
    assert batched.shape == (2, 1, 2)
    np.testing.assert_array_equal(batched[1, 0], spaces.to_env_action(box, vectors[1, 0]))
    discrete = gym.spaces.Discrete(3, start=2)
    one_hot = np.eye(3, dtype=np.float32)[[[2, 0]]]
    np.testing.assert_array_equal(spaces.to_env_actions(discrete, one_hot), [[4, 2]])
