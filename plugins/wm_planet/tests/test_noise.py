"""Random draws: independent streams, the inversion sampler, and how the RSSM uses them."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from wm_core.tasks.toy import PointTask
from wm_planet.model import RecurrentStateSpaceModel
from wm_planet.noise import generator, standard_normal
from wm_planet.rssm import RSSM

NORMAL = statistics.NormalDist()


def words(seed: int, stream: str, count: int) -> np.ndarray:
    return generator(seed, stream).uniform_full_int([count], tf.uint64).numpy()


def test_draws_are_the_normal_quantiles_of_the_generators_23_bit_halves():
    drawn = standard_normal(generator(3, "check"), [4]).numpy()
    word = words(3, "check", 2)  # the same generator state: the words behind the draws
    halves = [int(word[0]) >> 41, int(word[1]) >> 41, (int(word[0]) >> 9) & (2**23 - 1),
              (int(word[1]) >> 9) & (2**23 - 1)]
    expected = [NORMAL.inv_cdf((2 * half + 1) / 2**24) for half in halves]
    np.testing.assert_allclose(drawn, expected, atol=2e-6)


def test_the_extreme_bins_give_the_extreme_draws():
    # k = 0 and k = 2**23 - 1: the quantiles at 2**-24 and 1 - 2**-24, +-5.2947.
    extremes = tf.math.ndtri(tf.constant([2.0**-24, 1.0 - 2.0**-24])).numpy()
    np.testing.assert_allclose(extremes, [-5.294704, 5.294704], atol=1e-5)
    drawn = standard_normal(generator(0, "range"), [200_000]).numpy()
    assert np.all(np.abs(drawn) <= 5.2948) and np.all(np.isfinite(drawn))


def test_a_million_draws_match_the_normal_quantiles_and_moments():
    count = 1_000_000
    drawn = standard_normal(generator(0, "moments"), [count]).numpy().astype(np.float64)
    assert abs(drawn.mean()) < 5 / math.sqrt(count)
    assert abs(drawn.std() - 1.0) < 5 / math.sqrt(2 * count)
    for probability in (0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999):
        exact = NORMAL.inv_cdf(probability)
        standard_error = math.sqrt(probability * (1 - probability) / count) / NORMAL.pdf(exact)
        assert abs(np.quantile(drawn, probability) - exact) < 5 * standard_error, probability


def test_the_two_halves_of_a_word_are_uncorrelated():
    count = 400_000
    drawn = standard_normal(generator(1, "halves"), [count]).numpy()
    high, low = drawn[: count // 2], drawn[count // 2:]  # word i gives draws i and count/2 + i
    assert abs(np.corrcoef(high, low)[0, 1]) < 5 / math.sqrt(count // 2)


def test_each_seed_and_stream_has_its_own_numbers():
    # tf.random.Generator.from_seed(s) and from_seed(s + 1) share all but one block.
    reference = words(0, "predict", 20_000)
    for seed, stream in ((1, "predict"), (0, "observe"), (0, "train"), (2, "predict")):
        assert np.intersect1d(reference, words(seed, stream, 20_000)).size == 0, (seed, stream)
    np.testing.assert_array_equal(reference, words(0, "predict", 20_000))


def test_a_negative_model_seed_is_refused_when_the_model_is_made():
    # Streams are keyed by numpy's SeedSequence, which takes no negative seeds.
    with pytest.raises(ValueError, match="seed must be >= 0"):
        RecurrentStateSpaceModel(task=PointTask(), seed=-1)


def test_draws_are_the_same_with_and_without_xla():
    shape = [3, 1000, 7]
    eager = standard_normal(generator(5, "xla"), shape).numpy()
    noise = generator(5, "xla")
    compiled = tf.function(lambda: standard_normal(noise, shape), jit_compile=True)().numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def small_cell() -> tuple[RSSM, dict[str, tf.Tensor]]:
    tf_keras.utils.set_random_seed(0)
    cell = RSSM(deter_size=8, stoch_size=3, hidden_size=8)
    rng = np.random.default_rng(0)
    start = {"deter": rng.normal(size=(1, 8)), "stoch": rng.normal(size=(1, 3))}
    return cell, {key: tf.constant(value, tf.float32) for key, value in start.items()}


def test_sampled_rollouts_have_the_priors_mean_and_spread_with_fresh_noise_each_step():
    cell, start = small_cell()
    count = 20_000
    starts = {key: tf.repeat(value, count, 0) for key, value in start.items()}
    actions = tf.constant(np.random.default_rng(1).uniform(-1, 1, (1, 2, 2)), tf.float32)
    actions = tf.repeat(actions, count, 0)
    sampled = cell.imagine(actions, starts, generator(0, "rollout"))
    # Step 1 from one start: the prior is the same for every row.
    _, mean, std = cell.prior_step(starts, actions[:, 0])
    standardised = ((sampled["stoch"][:, 0] - mean) / std).numpy()
    assert np.all(np.abs(standardised.mean(0)) < 5 / math.sqrt(count))
    assert np.all(np.abs(standardised.std(0) - 1.0) < 5 / math.sqrt(2 * count))
    # Step 2's prior depends on step 1's draw; its noise must be new.
    first = {"deter": sampled["deter"][:, 0], "stoch": sampled["stoch"][:, 0]}
    _, mean, std = cell.prior_step(first, actions[:, 1])
    second = ((sampled["stoch"][:, 1] - mean) / std).numpy()
    assert np.all(np.abs(second.std(0) - 1.0) < 5 / math.sqrt(2 * count))
    for unit in range(3):
        assert abs(np.corrcoef(standardised[:, unit], second[:, unit])[0, 1]) < 5 / math.sqrt(count)


def test_a_horizon_unknown_when_tracing_draws_the_same_rollout():
    cell, start = small_cell()
    starts = {key: tf.repeat(value, 5, 0) for key, value in start.items()}
    actions = tf.constant(np.random.default_rng(2).uniform(-1, 1, (5, 4, 2)), tf.float32)
    unrolled = cell.imagine(actions, starts, generator(0, "scan"))
    noise = generator(0, "scan")
    scanned = tf.function(
        lambda actions: cell.imagine(actions, starts, noise),
        input_signature=[tf.TensorSpec([5, None, 2], tf.float32)],
    )(actions)
    for key in ("deter", "stoch"):
        np.testing.assert_allclose(scanned[key].numpy(), unrolled[key].numpy(), atol=1e-5)


@pytest.mark.parametrize("known_horizon", [True, False])
def test_one_start_row_shared_by_all_rollouts_equals_that_row_repeated(known_horizon):
    cell, start = small_cell()
    repeated = {key: tf.repeat(value, 6, 0) for key, value in start.items()}
    actions = tf.constant(np.random.default_rng(3).uniform(-1, 1, (6, 3, 2)), tf.float32)
    horizon = 3 if known_horizon else None
    rollouts = [
        tf.function(
            lambda actions, noise=generator(0, "share"), starts=starts: cell.imagine(actions, starts, noise),
            input_signature=[tf.TensorSpec([6, horizon, 2], tf.float32)],
        )(actions)
        for starts in (start, repeated)
    ]
    shared, tiled = rollouts
    for key in ("deter", "stoch"):
        assert shared[key].shape == (6, 3, tiled[key].shape[-1])
        np.testing.assert_allclose(shared[key].numpy(), tiled[key].numpy(), atol=1e-6)
    assert not np.allclose(shared["stoch"][0].numpy(), shared["stoch"][1].numpy())  # own noise per row
