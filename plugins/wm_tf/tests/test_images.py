from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

from wm_tf.images import postprocess, preprocess


def test_five_bit_levels_match_hand_computed_values():
    pixels = tf.constant([0, 7, 8, 200, 255], tf.uint8)
    # floor(p / 8) / 32 - 0.5
    expected = np.array([0, 0, 1, 25, 31]) / 32 - 0.5
    np.testing.assert_allclose(preprocess(pixels).numpy(), expected, atol=1e-7)


def test_eight_bits_from_zero_are_pixels_over_256():
    pixels = tf.constant([0, 1, 128, 255], tf.uint8)
    np.testing.assert_allclose(preprocess(pixels, 8, offset=0.0).numpy(), [0, 1 / 256, 0.5, 255 / 256])
    roundtrip = postprocess(preprocess(pixels, 8, offset=0.0), 8, offset=0.0).numpy()
    np.testing.assert_array_equal(roundtrip, [0, 1, 128, 255])


def test_dequantisation_noise_stays_within_one_bin():
    pixels = tf.fill([64, 64, 3], tf.constant(200, tf.uint8))
    noisy = preprocess(pixels, noise=tf.random.Generator.from_seed(0)).numpy()
    offset = noisy - (25 / 32 - 0.5)
    assert offset.min() >= 0.0 and offset.max() < 1 / 32
    assert offset.std() > 0.005  # ~ (1/32)/sqrt(12) = 0.009 for uniform noise


def test_postprocess_inverts_preprocess_up_to_quantisation():
    pixels = tf.constant(np.arange(256, dtype=np.uint8))
    roundtrip = postprocess(preprocess(pixels)).numpy()
    np.testing.assert_array_equal(roundtrip, (np.arange(256) // 8) * 8)


def test_postprocess_clips_out_of_range_means():
    assert postprocess(tf.constant([-3.0, 3.0])).numpy().tolist() == [0, 248]
    assert postprocess(tf.constant([-0.1, 1.2]), 8, offset=0.0).numpy().tolist() == [0, 255]


def test_preprocess_rejects_float_frames():
    with pytest.raises(TypeError, match="must be uint8, got float32"):
        preprocess(tf.zeros([2, 2], tf.float32))


def test_planets_old_module_path_warns_and_is_this_module():
    import wm_tf.images

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from wm_planet import preprocess as old  # noqa: PLC0415
    assert old is wm_tf.images
    assert any("wm_planet.preprocess moved to wm_tf.images" in str(w.message) for w in caught)
