"""CDNA kernels, compositing, the KL schedule and image conversion, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from wm_sv2p.latent import KLSchedule, kl_to_prior
from wm_sv2p.layers import CDNA, apply_kernels, composite
from wm_sv2p.model import to_uint8, to_unit_float


def test_white_uint8_frame_becomes_one_and_back():
    frame = tf.constant([[0, 128, 255]], tf.uint8)
    unit = to_unit_float(frame).numpy()
    np.testing.assert_allclose(unit, [[0.0, 128 / 255, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(to_uint8(to_unit_float(frame)).numpy(), [[0, 128, 255]])


def test_int32_images_are_rejected_not_read_as_black():
    with pytest.raises(TypeError, match="uint8"):
        to_unit_float(tf.constant([[255]], tf.int32))


def test_identity_kernel_keeps_frame_and_shift_kernel_moves_it_one_pixel():
    frame = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    kernels = np.zeros((2, 3, 3, 2), np.float32)
    kernels[:, 1, 1, 0] = 1.0  # identity
    kernels[:, 1, 0, 1] = 1.0  # output(x) = input(x - 1): content moves right
    moved = apply_kernels(tf.constant(frame), tf.constant(kernels)).numpy()
    assert moved.shape == (2, 4, 4, 3, 2)
    np.testing.assert_array_equal(moved[..., 0], frame)
    np.testing.assert_array_equal(moved[:, :, 1:, :, 1], frame[:, :, :-1])
    np.testing.assert_array_equal(moved[:, :, 0, :, 1], 0.0)


def test_each_example_gets_its_own_kernels():
    frame = np.ones((2, 4, 4, 1), np.float32)
    kernels = np.zeros((2, 3, 3, 1), np.float32)
    kernels[0, 1, 1, 0] = 1.0
    kernels[1, 1, 1, 0] = 0.5
    moved = apply_kernels(tf.constant(frame), tf.constant(kernels)).numpy()
    np.testing.assert_array_equal(moved[0], 1.0)
    np.testing.assert_array_equal(moved[1], 0.5)


def test_cdna_kernels_are_non_negative_and_sum_to_one():
    cdna = CDNA(num_masks=3, kernel=5)
    kernels = cdna.normalized_kernels(tf.random.normal([4, 2, 2, 8], seed=1)).numpy()
    assert kernels.shape == (4, 5, 5, 3)
    assert kernels.min() >= 0.0
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_composite_is_the_softmax_weighted_blend():
    candidates = np.zeros((1, 1, 1, 1, 2), np.float32)
    candidates[..., 0], candidates[..., 1] = 0.2, 1.0
    logits = np.array([[[[0.0, np.log(3.0)]]]], np.float32)  # weights 1/4, 3/4
    blended = composite(tf.constant(candidates), tf.constant(logits)).numpy()
    np.testing.assert_allclose(blended, [[[[0.2 / 4 + 3 / 4]]]], rtol=1e-6)


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
