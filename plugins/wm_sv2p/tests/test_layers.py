"""CDNA kernels, compositing, the KL schedule and image conversion, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from wm_sv2p.latent import KLSchedule, kl_to_prior
from wm_sv2p.model import to_uint8, to_unit_float
from wm_sv2p.networks import CDNA, apply_kernels, composite


def test_uint8_frames_become_pixels_over_256_and_back():
    frame = tf.constant([[0, 128, 255]], tf.uint8)
    unit = to_unit_float(frame).numpy()
    np.testing.assert_allclose(unit, [[0.0, 0.5, 255 / 256]], rtol=1e-6)
    np.testing.assert_array_equal(to_uint8(to_unit_float(frame)).numpy(), [[0, 128, 255]])


def test_int32_images_are_rejected_not_read_as_black():
    with pytest.raises(TypeError, match="uint8"):
        to_unit_float(tf.constant([[255]], tf.int32))


def one_hot_weights(batch: int, size: int, count: int, chosen: int) -> tf.Tensor:
    """Per-pixel blend weights ``[batch, size, size, count]`` selecting transformation ``chosen``."""
    weights = np.zeros((batch, size, size, count), np.float32)
    weights[..., chosen] = 1.0
    return tf.constant(weights)


def test_identity_kernel_keeps_frame_and_shift_kernel_moves_it_one_pixel():
    frame = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    kernels = np.zeros((2, 3, 3, 2), np.float32)
    kernels[:, 1, 1, 0] = 1.0  # identity
    kernels[:, 1, 0, 1] = 1.0  # output(x) = input(x - 1): content moves right
    kept = apply_kernels(tf.constant(frame), tf.constant(kernels), one_hot_weights(2, 4, 2, 0))
    moved = apply_kernels(tf.constant(frame), tf.constant(kernels), one_hot_weights(2, 4, 2, 1))
    assert moved.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(kept.numpy(), frame)
    np.testing.assert_array_equal(moved.numpy()[:, :, 1:], frame[:, :, :-1])
    np.testing.assert_array_equal(moved.numpy()[:, :, 0], 0.0)


def test_transformations_are_blended_per_pixel():
    frame = np.arange(1 * 4 * 4 * 2, dtype=np.float32).reshape(1, 4, 4, 2)
    kernels = np.zeros((1, 3, 3, 2), np.float32)
    kernels[:, 1, 1, 0] = 1.0  # identity
    kernels[:, 1, 1, 1] = 0.5  # half the brightness
    weights = np.random.default_rng(0).uniform(0, 1, (1, 4, 4, 2)).astype(np.float32)
    blended = apply_kernels(tf.constant(frame), tf.constant(kernels), tf.constant(weights))
    expected = frame * (weights[..., :1] + 0.5 * weights[..., 1:])
    np.testing.assert_allclose(blended.numpy(), expected, rtol=1e-6)


def test_each_example_gets_its_own_kernels():
    frame = np.ones((2, 4, 4, 1), np.float32)
    kernels = np.zeros((2, 3, 3, 1), np.float32)
    kernels[0, 1, 1, 0] = 1.0
    kernels[1, 1, 1, 0] = 0.5
    moved = apply_kernels(tf.constant(frame), tf.constant(kernels), one_hot_weights(2, 4, 1, 0)).numpy()
    np.testing.assert_array_equal(moved[0], 1.0)
    np.testing.assert_array_equal(moved[1], 0.5)


def test_cdna_kernels_are_non_negative_and_sum_to_one():
    cdna = CDNA(num_masks=3, kernel=5)
    kernels = cdna(tf.random.normal([4, 2, 2, 8], seed=1)).numpy()
    assert kernels.shape == (4, 5, 5, 3)
    assert kernels.min() >= 0.0
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_composite_is_the_softmax_weighted_blend():
    frame = np.full((1, 1, 1, 1), 0.2, np.float32)
    generated = np.full((1, 1, 1, 1), 1.0, np.float32)
    kernels = np.full((1, 1, 1, 1), 0.5, np.float32)  # the one transformation: 0.1
    logits = np.log(np.array([[[[1.0, 3.0, 4.0]]]], np.float32))  # weights 1/8, 3/8, 4/8
    blended = composite(*map(tf.constant, (frame, generated, kernels, logits))).numpy()
    np.testing.assert_allclose(blended, [[[[0.2 / 8 + 3 / 8 + 0.1 * 4 / 8]]]], rtol=1e-6)


def test_kl_schedule_has_three_phases():
    schedule = KLSchedule(deterministic_steps=2, posterior_steps=3, kl_ramp_steps=4, kl_weight=0.1)
    weights = [float(schedule.weight(step)) for step in range(11)]
    np.testing.assert_allclose(
        weights, [0, 0, 0, 0, 0, 0.025, 0.05, 0.075, 0.1, 0.1, 0.1], atol=1e-7
    )
    assert [bool(schedule.uses_posterior(step)) for step in (0, 1, 2, 9)] == [False, False, True, True]


def test_kl_schedule_rejects_negative_lengths():
    with pytest.raises(ValueError, match="posterior_steps"):
        KLSchedule(posterior_steps=-1)


def test_kl_to_standard_normal_matches_closed_form():
    mean = tf.fill([1, 2, 2, 1], 1.0)
    std = tf.fill([1, 2, 2, 1], 2.0)
    expected = np.log(1 / 2.0) + (4.0 + 1.0) / 2 - 0.5  # per element, all equal
    np.testing.assert_allclose(kl_to_prior(mean, std).numpy(), [expected], rtol=1e-5)


def test_moved_names_keep_working_and_name_their_new_place():
    import wm_sv2p.model
    import wm_sv2p.networks
    import wm_sv2p.training

    with pytest.warns(DeprecationWarning, match="wm_sv2p.layers moved to wm_sv2p.networks"):
        from wm_sv2p import layers
    assert layers is wm_sv2p.networks
    with pytest.warns(DeprecationWarning, match="wm_sv2p.training.sequence_loss moved to wm_sv2p.model.sequence_loss"):
        assert wm_sv2p.training.sequence_loss is wm_sv2p.model.sequence_loss
