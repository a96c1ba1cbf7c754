"""TD-MPC2's arithmetic against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from wm_tdmpc.networks import TwoHot, random_shift, simnorm, symexp, symlog
from wm_tdmpc.training import n_step_td_targets, percentile_range, td_targets


def test_symlog_and_symexp_by_hand():
    x = tf.constant([0.0, math.e - 1.0, -(math.e**2 - 1.0)])
    np.testing.assert_allclose(symlog(x).numpy(), [0.0, 1.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(symexp(tf.constant([0.0, 1.0, -2.0])).numpy(), x.numpy(), rtol=1e-6)


def test_two_hot_puts_the_weight_on_the_two_neighbouring_bins():
    two_hot = TwoHot(bins=5, vmin=-2.0, vmax=2.0)  # bins at -2, -1, 0, 1, 2 (symlog space)
    x = tf.constant([math.exp(0.25) - 1.0, symexp(tf.constant(2.0)).numpy(), -100.0, 0.0])
    np.testing.assert_allclose(
        two_hot.encode(x).numpy(),
        [[0, 0, 0.75, 0.25, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]],
        atol=1e-6,
    )


def test_two_hot_decodes_the_expected_bin_and_scores_cross_entropy():
    two_hot = TwoHot(bins=5, vmin=-2.0, vmax=2.0)
    logits = tf.math.log(tf.constant([[1e-30, 1e-30, 0.75, 0.25, 1e-30]]))
    np.testing.assert_allclose(two_hot.decode(logits).numpy(), [math.exp(0.25) - 1.0], rtol=1e-5)
    uniform = tf.zeros([1, 5])
    np.testing.assert_allclose(two_hot.decode(uniform).numpy(), [0.0], atol=1e-6)
    np.testing.assert_allclose(two_hot.cross_entropy(uniform, tf.constant([3.0])).numpy(), [math.log(5)], rtol=1e-6)
    # target 0.25 of the way from bin 2 to bin 3: -(0.75 log p2 + 0.25 log p3)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(
        two_hot.cross_entropy(logits, tf.constant([math.exp(0.25) - 1.0])).numpy(), [expected], rtol=1e-5
    )


def test_simnorm_is_a_softmax_per_group():
    x = tf.constant([[0.0, math.log(3.0), 1.0, 1.0]])
    np.testing.assert_allclose(simnorm(x, 2).numpy(), [[0.25, 0.75, 0.5, 0.5]], rtol=1e-6)


def test_td_target_is_reward_plus_discounted_minimum_of_the_two_target_heads():
    rewards = tf.constant([1.0, -0.5])
    heads = tf.constant([[2.0, 4.0], [3.0, 1.0]])  # [2 heads, batch 2]
    np.testing.assert_allclose(td_targets(rewards, 0.9, heads).numpy(), [1.0 + 0.9 * 2.0, -0.5 + 0.9 * 1.0])


def test_an_n_step_td_target_sums_the_discounted_rewards_then_bootstraps():
    rewards = tf.constant([[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]])  # [3 steps, batch 2]
    heads = tf.constant([[2.0, 4.0], [3.0, 1.0]])
    np.testing.assert_allclose(
        n_step_td_targets(rewards, 0.5, heads).numpy(),
        [1.0 + 0.5 * 2.0 + 0.25 * 3.0 + 0.125 * 2.0, 0.0 + 0.5 * 1.0 - 0.25 * 1.0 + 0.125 * 1.0],
        rtol=1e-6,
    )


def test_percentile_range_equals_numpys():
    values = np.random.default_rng(0).normal(size=37).astype(np.float32)
    expected = np.percentile(values, 95) - np.percentile(values, 5)
    np.testing.assert_allclose(percentile_range(tf.constant(values)).numpy(), expected, rtol=1e-5)


def test_random_shift_moves_each_image_by_at_most_pad_pixels():
    images = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6, 1)
    noise = tf.random.Generator.from_seed(3)
    shifted = random_shift(tf.constant(images), 2, noise).numpy()
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="edge")
    for index in range(2):
        crops = [padded[index, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(shifted[index], crop) for crop in crops)
    assert not np.array_equal(shifted[0], images[0]) or not np.array_equal(shifted[1], images[1])
    np.testing.assert_array_equal(random_shift(tf.constant(images), 0, noise).numpy(), images)


@pytest.mark.parametrize("bins, vmin, vmax", [(1, -1.0, 1.0), (5, 1.0, 1.0)])
def test_a_degenerate_support_is_refused(bins, vmin, vmax):
    with pytest.raises(ValueError, match="two-hot needs"):
        TwoHot(bins, vmin, vmax)
